"""Every format of the corpus (tests/unit/data/formats_corpus.yaml) parses as expected."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cali.ingest.normalise import FORMATS, parse_line

CORPUS = Path(__file__).parent / "data" / "formats_corpus.yaml"
ARRIVAL = datetime(2026, 12, 1, tzinfo=UTC)


def _cases() -> list[Any]:
    entries = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    return [
        pytest.param(entry["source"], case, id=f"{entry['source'][:40]}#{index}")
        for entry in entries
        for index, case in enumerate(entry["lines"])
    ]


def test_the_corpus_covers_at_least_thirty_formats() -> None:
    entries = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    assert len(entries) >= 30
    assert all(len(entry["lines"]) >= 1 for entry in entries)
    assert sum(len(entry["lines"]) for entry in entries) >= 90


@pytest.mark.parametrize(("source", "case"), _cases())
def test_corpus_line(source: str, case: dict[str, Any]) -> None:
    parsed = parse_line(case["line"], ARRIVAL)
    expected_time = case["time"]
    got_time = parsed.timestamp
    if expected_time is None:
        assert got_time is None, f"{source}: {parsed}"
    else:
        assert got_time == datetime.fromisoformat(expected_time.replace("Z", "+00:00")), f"{source}: {parsed}"
    assert (parsed.level.name if parsed.level is not None else None) == case["level"], f"{source}: {parsed}"
    assert parsed.level_source == case["level_source"], f"{source}: {parsed}"
    assert parsed.message == case["message"], f"{source}: {parsed}"
    for key, value in (case.get("fields") or {}).items():
        assert parsed.fields.get(key) == value, f"{source}: field {key} in {parsed.fields}"


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_every_table_row_matches_its_own_example(fmt: Any) -> None:
    # The example documents the row (docs/ingest.md prints it): it must be what the row reads.
    parsed = parse_line(fmt.example, ARRIVAL)
    assert parsed.format.split("+")[0] == fmt.name, parsed


def test_the_ingest_doc_lists_every_table_row() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "ingest.md").read_text(encoding="utf-8")
    missing = [fmt.name for fmt in FORMATS if f"`{fmt.name}`" not in doc]
    assert missing == [], f"docs/ingest.md lacks {missing}: regenerate its format table"
