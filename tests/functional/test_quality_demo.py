"""The demo's closing report: over the demo's own generated logs, the seeded baseline makes
exactly one check fail, the silent service's volume (what `make demo` promises)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cali.quality.engines import DuckDbEngine
from cali.quality.runner import run_quality
from cali_cli.commands.quality import newest_day
from cali_local.archive import write_raw
from cali_local.demo_inputs import generated_waves
from cali_local.quality_demo import SILENT_SERVICE, SILENT_SERVICE_LINES_PER_HOUR, seed_baseline


def test_seeded_baseline_fails_only_the_silent_service(tmp_path: Path) -> None:
    # Generated events carry their own (current) time, as the demo's do: archive them in
    # the hour they are generated in, as Firehose would.
    arrival = datetime.now(UTC)
    # The demo's defaults: the mixed scenario with 1% malformed records, as Firehose archives it.
    for number, wave in enumerate(generated_waves("mixed", count=4000, seed=7, bad_fraction=0.01)):
        write_raw(tmp_path, arrival, wave, name=f"wave-{number}.gz")
    day = newest_day(tmp_path)
    assert day == arrival.date()
    seed_baseline(tmp_path, day)
    report = run_quality(DuckDbEngine(tmp_path), day, environment="demo")
    assert [c.name for c in report.failed] == ["volume"], report.to_text()
    (failure,) = report.failed[0].failures
    assert [(r["service"], r["records"], r["expected"]) for r in failure.rows] == [
        (SILENT_SERVICE, 0, float(SILENT_SERVICE_LINES_PER_HOUR))
    ]
