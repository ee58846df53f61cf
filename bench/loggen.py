"""Speed of ``cali loggen`` and of the Fluent Bit emulation the local pipeline runs on.

Run from the repository root::

    .venv/bin/python -m bench.loggen                # 5,000 events of the mixed scenario
    .venv/bin/python -m bench.loggen --events 20000

Prints events per second of ``generate()`` (which runs every event through the
Kubernetes configuration) and raw lines per second of the emulation reading one raw log
file with the plain-files configuration (what ``cali demo --input FILE`` does). Times are
process CPU time, so a loaded machine does not make the numbers look worse than they are.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cali_local.fluentbit import FILES_CONFIG, FluentBitPipeline, LogSource, iter_file_records
from cali_local.loggen import generate

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ENV = {
    "CALI_ENV": "bench",
    "CALI_CLUSTER": "bench",
    "HOSTNAME": "bench",
    "AWS_REGION": "x",
    "CALI_STREAM_NAME": "x",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()

    began = time.process_time()
    events = list(generate("mixed", seed=1, count=args.events, start=START))
    gen_seconds = time.process_time() - began
    lines = sum(len(e.lines) for e in events if not e.malformed)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mixed.log"
        path.write_text("".join(e.raw + "\n" for e in events))
        pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
        began = time.process_time()
        records = sum(1 for _ in iter_file_records(path, pipeline, source=LogSource(str(path)), time=START))
        emu_seconds = time.process_time() - began

    print(
        json.dumps(
            {
                "events": len(events),
                "raw_lines": lines,
                "generate_events_per_s": round(len(events) / gen_seconds),
                "emulation_lines_per_s": round(lines / emu_seconds),
                "emulation_records": records,
                "records_match_events": records == len(events),
            }
        )
    )


if __name__ == "__main__":
    main()
