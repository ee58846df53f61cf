"""Each quality check against an archive built to pass it and one built to fail it (DuckDB),
and the same verdicts through the Athena engine (an Athena API double answering the
Athena-dialect text)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cali.quality.checks import CHECKS, QualitySettings
from cali.quality.engines import AthenaEngine, DuckDbEngine, QueryError
from cali.quality.report import QualityReport
from cali.quality.runner import run_quality
from cali.quality.sql import CHECK_SQL, check_sql, to_duckdb
from tests.support import quality_support as qs

Spoiler = Callable[[Path], qs.Week]


def _report(root: Path, settings: QualitySettings | None = None) -> QualityReport:
    return run_quality(DuckDbEngine(root), qs.DAY, environment="test", settings=settings)


def _failed(report: QualityReport) -> set[str]:
    return {check.name for check in report.failed}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return qs.Week(tmp_path_factory.mktemp("clean")).write().root


def test_a_normal_week_passes_every_check(clean: Path) -> None:
    report = _report(clean)
    assert _failed(report) == set(), report.to_text()
    rows = {c.name: c.row_count for c in report.checks}
    # Every check looked at data (the new-fingerprints list is empty when nothing is new).
    assert all(rows[name] > 0 for name in rows if name != "new_fingerprints"), rows
    volume = next(c for c in report.checks if c.name == "volume")
    assert {(r["service"], r["hour"]) for r in volume.rows} == {
        (s, f"{h:02d}") for s in ("orders", "billing") for h in qs.HOURS
    }
    assert all(r["ratio"] == pytest.approx(1.0) for r in volume.rows)


CASES: dict[str, tuple[str, list[Any]]] = {
    "silent service": ("volume", [qs.only("billing", qs.silent)]),
    "tripled service": ("volume", [qs.only("orders", qs.tripled)]),
    "missing message": ("required_fields", [qs.only("orders", qs.without_message)]),
    "unparsed lines": ("unparsed_share", [qs.only("orders", qs.unparsed)]),
    "level mix drift": ("level_mix", [qs.only("orders", qs.errors_everywhere)]),
    "clock skew": ("time_skew", [qs.only("orders", qs.clock_two_hours_behind)]),
    "duplicate records": ("duplicates", [qs.only("orders", qs.duplicated)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_spoiled_day_fails_its_check(case: str, tmp_path: Path) -> None:
    check, edits = CASES[case]
    qs.Week(tmp_path, today_edits=edits).write()
    report = _report(tmp_path)
    failed = _failed(report)
    assert check in failed, report.to_text()
    # The other checks are not fooled into failing by the same change (new templates aside:
    # a spoiled service may legitimately say new things).
    assert failed - {"new_fingerprints"} == {check}, report.to_text()
    failure = next(c for c in report.checks if c.name == check).failures[0]
    assert failure.rows, "the failing rows are in the report"


def test_silent_service_row_says_what_was_expected(tmp_path: Path) -> None:
    qs.Week(tmp_path, today_edits=[qs.only("billing", qs.silent)]).write()
    report = _report(tmp_path)
    rows = next(c for c in report.checks if c.name == "volume").failures[0].rows
    assert {(r["service"], r["records"]) for r in rows} == {("billing", 0)}
    assert all(r["expected"] == pytest.approx(60.0) for r in rows)
    assert "billing" in report.to_text() and "billing" in report.slack_text()


def test_dead_letter_share(tmp_path: Path) -> None:
    qs.Week(tmp_path).write()
    qs.dead_letters(tmp_path, 3)  # 3 of 360 lines: under 2 %
    assert "dlq_share" not in _failed(_report(tmp_path))
    qs.dead_letters(tmp_path, 40)  # ids repeat: 40 distinct entries of 360 lines
    report = _report(tmp_path)
    assert _failed(report) == {"dlq_share"}, report.to_text()
    rows = next(c for c in report.checks if c.name == "dlq_share").rows
    assert {r["reason"]: r["dlq"] for r in rows} == {"(all)": 40, "missing_field:message": 40}


def test_new_fingerprints(tmp_path: Path) -> None:
    qs.Week(tmp_path, today_edits=[qs.only("orders", qs.new_errors)]).write()
    report = _report(tmp_path, QualitySettings(max_new_fingerprints=5))
    assert "new_fingerprints" in _failed(report)
    templates = {r["template"] for r in next(c for c in report.checks if c.name == "new_fingerprints").rows}
    assert "unexpected alpha state in worker" in templates and len(templates) == 6
    # The baseline's own error ("order failed: timeout after #s") is not new.
    assert not any(t.startswith("order failed") for t in templates)
    assert "new_fingerprints" not in _failed(_report(tmp_path))  # default limit 25


def test_no_baseline_judges_no_trend(tmp_path: Path) -> None:
    week = qs.Week(tmp_path).write()
    for path in sorted(week.root.glob("raw/year=*/month=*/day=*")):
        if not path.name.endswith(f"{qs.DAY:%d}"):
            for obj in path.rglob("*.gz"):
                obj.unlink()
    report = _report(tmp_path)
    assert _failed(report) == set(), report.to_text()


def test_sql_is_one_source_for_both_engines(clean: Path) -> None:
    """Athena receives the Athena text; DuckDB runs that same text transpiled, and both
    engines return the same rows, so the verdicts are the same."""
    duck = DuckDbEngine(clean)
    athena_api = qs.FakeAthena(duck.connection())
    athena = AthenaEngine(athena_api, workgroup="cali-test", database="cali_test", poll_seconds=0)  # type: ignore[arg-type]
    settings = QualitySettings()
    sources = [check.sql(qs.DAY, settings) for check in CHECKS]
    assert set(CHECK_SQL) == {check.name for check in CHECKS}
    athena_rows = athena.run(sources)
    assert athena_api.received == sources
    duck_rows = duck.run(sources)
    for check, a, d in zip(CHECKS, athena_rows, duck_rows, strict=True):
        assert len(a) == len(d), check.name
        for row_a, row_d in zip(a, d, strict=True):
            assert row_a.keys() == row_d.keys()
            for key in row_a:
                if isinstance(row_d[key], float):
                    assert row_a[key] == pytest.approx(row_d[key]), (check.name, key)
                else:
                    assert row_a[key] == row_d[key], (check.name, key)
    # Same rows in, same verdicts out.
    via_athena = run_quality(athena, qs.DAY, environment="test")
    via_duck = run_quality(duck, qs.DAY, environment="test")
    assert [(c.name, c.passed) for c in via_athena.checks] == [(c.name, c.passed) for c in via_duck.checks]


def test_athena_failure_is_a_query_error_with_athenas_reason(clean: Path) -> None:
    athena = AthenaEngine(
        qs.FakeAthena(DuckDbEngine(clean).connection()),  # type: ignore[arg-type]
        workgroup="cali-test",
        database="cali_test",
        poll_seconds=0,
    )
    with pytest.raises(QueryError, match=r"athena query q1 failed: .*nope"):
        athena.run(["SELECT COUNT(*) AS n FROM raw_lines", "SELECT nope FROM raw_lines"])


def test_athena_json_functions_return_null_on_bad_lines_locally_too(tmp_path: Path) -> None:
    # Athena's JSON_EXTRACT_SCALAR is NULL on a line that is not JSON; DuckDB would raise.
    qs.Week(tmp_path, today_edits=[qs.only("orders", qs.unparsed)]).write()
    sql = (
        "SELECT COUNT(*) AS lines, COUNT(JSON_EXTRACT_SCALAR(line, '$.service')) AS with_service "
        "FROM raw_lines WHERE year = '2026' AND month = '12' AND day = '03'"
    )
    (row,) = DuckDbEngine(tmp_path).run([sql])[0]
    assert row["lines"] == 360
    assert row["with_service"] == 360 - 180 - 36  # billing uses "app"; 36 orders lines are binary junk
    assert "json_valid" in to_duckdb(sql).lower()


def test_every_check_is_valid_athena_sql_and_translates_without_loss() -> None:
    import sqlglot
    from sqlglot.errors import ErrorLevel

    settings = QualitySettings()
    for check in CHECKS:
        text = check.sql(qs.DAY, settings)
        tree = sqlglot.parse_one(text, read="athena", error_level=ErrorLevel.RAISE)
        # Athena → Athena keeps every construct (nothing the parser did not understand) …
        tree.sql(dialect="athena", unsupported_level=ErrorLevel.RAISE)
        # … and DuckDB can express all of it.
        assert to_duckdb(text)


def test_partition_filter_names_only_the_days_needed() -> None:
    sql = check_sql("volume", qs.DAY, min_expected=10)
    assert "day = '03'" in sql and "day = '26'" in sql and "day = '25'" not in sql
