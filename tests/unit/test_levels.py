import pytest

from cali.contracts.levels import Level


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ERR", Level.ERROR),
        ("severe", Level.ERROR),
        ("FATAL", Level.FATAL),
        ("CRITICAL", Level.FATAL),
        ("warning", Level.WARN),
        ("Warn", Level.WARN),
        ("information", Level.INFO),
        ("dpanic", Level.FATAL),
        ("trace", Level.TRACE),
        (40, Level.ERROR),
        ("30", Level.WARN),
        (3, Level.ERROR),
        (4, Level.WARN),
        ("nonsense", Level.INFO),
        (None, Level.INFO),
    ],
)
def test_aliases_normalise(raw: str | int | None, expected: Level) -> None:
    assert Level.parse(raw) is expected


def test_levels_are_ordered() -> None:
    assert Level.DEBUG < Level.INFO < Level.WARN < Level.ERROR < Level.FATAL


def test_configured_levels_are_strict() -> None:
    from pydantic import ValidationError

    from cali.contracts.settings import ConsumerSettings

    assert Level.from_name("warning") is Level.WARN and Level.from_name("40") is Level.ERROR
    with pytest.raises(ValueError, match="unknown log level 'EROR'"):
        Level.from_name("EROR")
    # A typo in the deployed configuration must fail loudly, not alert on every INFO line.
    with pytest.raises(ValidationError, match="min_level"):
        ConsumerSettings(min_level="WRAN")
    with pytest.raises(ValidationError, match="level_overrides"):
        ConsumerSettings(level_overrides={"payments": "INFOO"})
    assert ConsumerSettings(level_overrides={"payments": "info"}).level_overrides == {"payments": Level.INFO}
