import pytest

from cali.levels import Level


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ERR", Level.ERROR), ("severe", Level.ERROR), ("FATAL", Level.FATAL),
        ("CRITICAL", Level.FATAL), ("warning", Level.WARN), ("Warn", Level.WARN),
        ("information", Level.INFO), ("dpanic", Level.FATAL), ("trace", Level.TRACE),
        (40, Level.ERROR), ("30", Level.WARN), (3, Level.ERROR), (4, Level.WARN),
        ("nonsense", Level.INFO), (None, Level.INFO),
    ],
)
def test_aliases_normalise(raw: str | int | None, expected: Level) -> None:
    assert Level.parse(raw) is expected


def test_levels_are_ordered() -> None:
    assert Level.DEBUG < Level.INFO < Level.WARN < Level.ERROR < Level.FATAL
