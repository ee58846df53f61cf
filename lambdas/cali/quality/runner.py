"""Run every check for one day on one engine and assemble the report."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

from cali.quality.checks import CHECKS, QualitySettings, judge
from cali.quality.engines import Engine
from cali.quality.report import MAX_ROWS, CheckResult, QualityReport


def run_quality(
    engine: Engine, day: date, *, environment: str, settings: QualitySettings | None = None
) -> QualityReport:
    settings = settings or QualitySettings()
    started = time.perf_counter()
    # All queries go to the engine at once: Athena runs them in parallel.
    results = engine.run([check.sql(day, settings) for check in CHECKS])
    queried = time.perf_counter()
    checks = []
    for check, rows in zip(CHECKS, results, strict=True):
        verdict = judge(check, rows, settings)
        checks.append(
            CheckResult(
                name=check.name,
                title=check.title,
                rule=check.rule(settings),
                passed=verdict.passed,
                row_count=len(rows),
                rows=[dict(row) for row in rows[:MAX_ROWS]],
                failures=verdict.failures,
            )
        )
    return QualityReport(
        day=day,
        environment=environment,
        engine=engine.name,
        generated_at=datetime.now(UTC),
        query_seconds=round(queried - started, 3),
        judge_seconds=round(time.perf_counter() - queried, 3),
        checks=checks,
    )
