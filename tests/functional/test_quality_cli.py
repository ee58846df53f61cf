"""`cali archive query` and `cali quality run` on a local archive, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cali_cli.main import main
from tests.support import quality_support as qs


def test_archive_query_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qs.Week(tmp_path).write()
    sql = (
        "SELECT COALESCE(JSON_EXTRACT_SCALAR(line, '$.service'), JSON_EXTRACT_SCALAR(line, '$.app')) "
        "AS service, COUNT(*) AS n FROM raw_lines WHERE year = '2026' AND month = '12' AND day = '03' "
        "GROUP BY 1 ORDER BY 1"
    )
    assert main(["archive", "query", "--local", "--archive", str(tmp_path), "--json", sql]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"service": "billing", "n": 180}, {"service": "orders", "n": 180}]


def test_archive_query_reports_engine_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qs.Week(tmp_path).write()
    assert main(["archive", "query", "--archive", str(tmp_path), "SELECT nope FROM raw_lines"]) == 1
    assert "cali archive: duckdb:" in capsys.readouterr().err


def test_archive_query_without_archive_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["archive", "query", "--archive", str(tmp_path / "none"), "SELECT 1"]) == 1
    assert "make demo" in capsys.readouterr().err


def test_quality_run_exit_status_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "archive"
    qs.Week(archive).write()
    assert main(["quality", "run", "--local", "--archive", str(archive)]) == 0
    assert "8/8 checks passed" in capsys.readouterr().out
    qs.Week(archive, today_edits=[qs.only("billing", qs.silent)]).write()
    for path in archive.glob("raw/year=2026/month=12/day=03/hour=*/billing.gz"):
        path.unlink()
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    code = main(
        [
            "quality",
            "run",
            "--archive",
            str(archive),
            "--date",
            "2026-12-03",
            "--json",
            str(out_json),
            "--html",
            str(out_html),
        ]
    )
    assert code == 1
    text = capsys.readouterr().out
    assert "FAIL  volume" in text and "service=billing" in text
    assert json.loads(out_json.read_text())["checks"][0]["passed"] is False
    assert "FAIL" in out_html.read_text()


def test_env_runs_on_the_environments_athena_workgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cali.quality.engines import DuckDbEngine

    qs.Week(tmp_path).write()
    fake = qs.FakeAthena(DuckDbEngine(tmp_path).connection())
    seen: dict[str, str] = {}
    original = fake.start_query_execution

    def start(QueryString: str, QueryExecutionContext: Any, WorkGroup: str) -> Any:
        seen.update(workgroup=WorkGroup, database=QueryExecutionContext["Database"])
        return original(QueryString, QueryExecutionContext, WorkGroup)

    fake.start_query_execution = start  # type: ignore[method-assign]
    monkeypatch.setattr("boto3.client", lambda name, *a, **k: fake)
    monkeypatch.setattr("cali.quality.engines.AthenaEngine.poll_seconds", 0.0)
    sql = "SELECT COUNT(*) AS n FROM raw_lines WHERE year = '2026' AND month = '12' AND day = '03'"
    assert main(["archive", "query", "--env", "prod-eu", "--json", sql]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 360}
    assert seen == {"workgroup": "cali-prod-eu", "database": "cali_prod_eu"}
    assert main(["quality", "run", "--env", "prod-eu", "--date", "2026-12-03"]) == 0
    assert "(prod-eu, athena): 8/8 checks passed" in capsys.readouterr().out


def test_download_copies_one_days_archive_from_a_bucket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cali archive download` from a bucket (moto here; the demo's moto server or AWS alike)."""
    import boto3
    from moto import mock_aws

    source = tmp_path / "bucket"
    qs.Week(source).write()
    qs.dead_letters(source, 2)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        for path in source.rglob("*"):
            if path.is_file():
                s3.put_object(Bucket="archive", Key=str(path.relative_to(source)), Body=path.read_bytes())
        target = tmp_path / "copy"
        assert (
            main(["archive", "download", "--bucket", "archive", "--date", "2026-12-03", "--to", str(target)])
            == 0
        )
    assert "copied 8 objects" in capsys.readouterr().out  # 3 hours x 2 services + 2 DLQ entries
    assert {p.parent.parent.name for p in target.glob("raw/*/*/*/*/*.gz")} == {"day=03"}
    sql = "SELECT COUNT(*) AS n FROM raw_lines WHERE year = '2026' AND month = '12' AND day = '03'"
    assert main(["archive", "query", "--archive", str(target), "--json", sql]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 360}
