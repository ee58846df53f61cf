"""What raw lines add to the log consumer, counted instead of timed (valgrind cachegrind).

Run: ``python -m bench.consumer_counts [--raw-share 1.0] [--records 1500] [--batches 2]`` (a few minutes)

Time on a shared machine scatters by several points between runs; instruction and cache
counts do not. This runs the real handler (as ``bench.consumer`` does, AWS clients as
in-memory fakes) over the same batches sent raw and parsed upstream, each under cachegrind
with cache and branch simulation, and prints what a record costs more when it arrives raw:
instructions, L1 instruction and data misses, mispredicted branches (cachegrind's simple
predictor: far more than a modern CPU's, read it as a trend). Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
# cachegrind's summary labels (as printed, spacing loosened) -> what the report calls them
EVENTS = {
    r"I\s+refs": "instructions",
    r"I1\s+misses": "L1i misses",
    r"D1\s+misses": "L1d misses",
    r"Mispredicts": "mispredicts",
}


def run_handler(mode: str, share: float, records: int, batches: int) -> None:
    """Inside valgrind: warm the handler on both batches, then run one side (or none)."""
    sys.path.insert(0, str(ROOT / "lambdas"))
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "CALI")
    from log_consumer import handler

    from bench.consumer import _Context, kinesis_batch
    from cali.contracts.settings import ConsumerSettings
    from cali_testing.incidents import InMemoryAlertQueue, InMemoryPersistenceLayer, InMemoryThrottleStore
    from cali_testing.ingest import InMemoryDlq

    consumer = handler.compose(
        ConsumerSettings(cali_env="bench"),
        throttle_store=InMemoryThrottleStore(),
        queue=InMemoryAlertQueue(),
        dlq=InMemoryDlq(),
        persistence=InMemoryPersistenceLayer(),
    )
    rng = random.Random(7)
    start = datetime(2026, 12, 3, 12, tzinfo=UTC)
    pairs = [
        kinesis_batch(rng, records, i * records, start + timedelta(seconds=i), share) for i in range(batches)
    ]

    def invoke(batch: dict[str, Any]) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            handler.process(batch, cast(Any, _Context()), consumer)
            handler.metrics.flush_metrics()

    for sent, upstream in pairs:
        invoke(sent)
        invoke(upstream)
    for sent, upstream in pairs:
        if mode != "none":
            invoke(sent if mode == "raw" else upstream)


def counts(mode: str, args: argparse.Namespace) -> dict[str, int]:
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=yes",
        "--branch-sim=yes",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.consumer_counts",
        "--inside",
        mode,
        "--raw-share",
        str(args.raw_share),
        "--records",
        str(args.records),
        "--batches",
        str(args.batches),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": f"{ROOT / 'lambdas'}:{ROOT}"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    found = {}
    for label, name in EVENTS.items():
        match = re.search(rf"{label}:\s+([\d,]+)", done.stderr)
        if match is None:
            raise RuntimeError(f"cachegrind printed no {name}:\n{done.stderr[-2000:]}")
        found[name] = int(match.group(1).replace(",", ""))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-share", type=float, default=1.0)
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--inside", choices=("none", "raw", "upstream"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        run_handler(args.inside, args.raw_share, args.records, args.batches)
        return
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count")
        return
    with ThreadPoolExecutor(max_workers=3) as pool:
        none, raw, upstream = pool.map(lambda mode: counts(mode, args), ("none", "raw", "upstream"))
    total = args.records * args.batches
    print(
        f"log consumer, {args.batches} x {args.records} records, {args.raw_share:.0%} raw text lines "
        f"(per record, the work of warming up subtracted)"
    )
    for name in EVENTS.values():
        as_raw = (raw[name] - none[name]) / total
        parsed = (upstream[name] - none[name]) / total
        extra = as_raw - parsed
        print(f"  {name:12s} raw {as_raw:10,.0f}  parsed upstream {parsed:10,.0f}  extra {extra:9,.0f}")


if __name__ == "__main__":
    main()
