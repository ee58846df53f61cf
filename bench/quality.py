"""Benchmark of the local data-quality run: every check over 1 million archived records.

Run: ``python -m bench.quality [--records 1000000] [--keep DIR]``

Writes an archive (the run day and its 7-day baseline, 8 services in 4 log formats, 24
hours a day, GZIP objects like Firehose's) to a temporary folder, then times, in one
process: loading the raw lines into DuckDB (the engine's Python decoder, which keeps lines
with invalid UTF-8), the eight check queries, Great Expectations judging their rows, and
the whole ``run_quality``. Side by side it loads the same objects with DuckDB's own CSV
reader (which refuses invalid UTF-8, so the archive here has none) and prints the ratio.
Prints wall and CPU seconds; the machine's other load affects wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lambdas"))

from cali.quality.checks import CHECKS, QualitySettings, judge  # noqa: E402
from cali.quality.engines import DuckDbEngine  # noqa: E402
from cali.quality.runner import run_quality  # noqa: E402
from cali_local.archive import write_raw  # noqa: E402

DAY = date(2026, 12, 3)
T = TypeVar("T")
SERVICES = ("checkout", "payments", "catalog", "search", "auth", "orders", "shipping", "gateway")


def _line(rng: random.Random, service: str, at: datetime, i: int) -> bytes:
    error = rng.random() < 0.02
    kind = i % 4
    if kind == 0:  # pino
        doc: dict[str, object] = {
            "level": 50 if error else 30,
            "time": int(at.timestamp() * 1000),
            "service": service,
            "msg": f"request {i} failed: upstream timeout"
            if error
            else f"request {i} completed in {i % 300}ms",
        }
    elif kind == 1:  # zap
        doc = {
            "level": "error" if error else "info",
            "ts": at.timestamp(),
            "service": service,
            "msg": f"order {i} rejected" if error else f"order {i} accepted",
        }
    elif kind == 2:  # logback JSON
        doc = {
            "@timestamp": at.isoformat(),
            "level": "ERROR" if error else "INFO",
            "app": service,
            "message": f"Charge {i} declined by issuer" if error else f"Charge {i} authorized",
        }
    else:  # Fluent Bit record with a parsed time
        doc = {
            "time": at.isoformat(),
            "severity": "warn" if error else "debug",
            "service": service,
            "log": f"tick {i}",
        }
    return json.dumps(doc).encode()


def write_archive(root: Path, records: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    hours = 8 * 24
    per_object = records // (hours * len(SERVICES))
    written = 0
    for back in range(8):
        day = DAY - timedelta(days=back)
        for hour in range(24):
            arrival = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
            for service in SERVICES:
                lines = [
                    _line(rng, service, arrival + timedelta(seconds=i * 3600 // per_object), i)
                    for i in range(per_object)
                ]
                write_raw(root, arrival, lines, name=f"{service}.gz")
                written += len(lines)
    return written


def _first(engine: DuckDbEngine, query: str) -> list[dict[str, Any]]:
    return engine.run([query])[0]


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="write the archive here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="cali-bench-quality-"))
    try:
        written, wall, _ = _timed(lambda: write_archive(root, args.records))
        size = sum(p.stat().st_size for p in root.rglob("*.gz"))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(
            f"archive: {written:,} records, 8 days x 24 h x {len(SERVICES)} services, "
            f"{size / 1e6:.1f} MB gzip (written in {wall:.1f} s)"
        )

        engine = DuckDbEngine(root)
        _, load_wall, load_cpu = _timed(engine.connection)
        import duckdb

        native = duckdb.connect(config={"threads": 2})
        glob = root / "raw" / "year=*" / "month=*" / "day=*" / "hour=*" / "*.gz"

        def native_count() -> int:
            row = native.execute(
                f"SELECT COUNT(*) FROM read_csv('{glob}', columns = {{'line': 'VARCHAR'}}, "
                "delim = '\x1e', quote = '', escape = '', header = false, auto_detect = false, "
                "hive_partitioning = true)"
            ).fetchone()
            assert row is not None
            return int(row[0])

        native_rows, native_wall, _ = _timed(native_count)
        assert native_rows == written, (native_rows, written)
        print(
            f"load raw lines: engine (Python decode -> Arrow) {load_wall:.2f} s wall, {load_cpu:.2f} s CPU; "
            f"DuckDB read_csv {native_wall:.2f} s wall; ratio {load_wall / native_wall:.1f}x"
        )

        settings = QualitySettings()
        queries = [check.sql(DAY, settings) for check in CHECKS]
        results = []
        total_query = 0.0
        for check, query in zip(CHECKS, queries, strict=True):
            rows, wall, _ = _timed(partial(_first, engine, query))
            results.append(rows)
            total_query += wall
            print(f"  query {check.name:<17} {wall:6.2f} s  {len(rows):>5} rows")
        print(f"queries: {total_query:.2f} s wall")
        _, judge_wall, _ = _timed(
            lambda: [judge(c, r, settings) for c, r in zip(CHECKS, results, strict=True)]
        )
        print(f"Great Expectations judging: {judge_wall:.2f} s wall (first use imports GX)")

        fresh = DuckDbEngine(root)
        report, run_wall, run_cpu = _timed(lambda: run_quality(fresh, DAY, environment="bench"))
        print(
            f"run_quality end to end (load + queries + judging): {run_wall:.2f} s wall, "
            f"{run_cpu:.2f} s CPU, {written / run_wall:,.0f} records/s; "
            f"{len(report.checks) - len(report.failed)}/{len(report.checks)} checks passed"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
