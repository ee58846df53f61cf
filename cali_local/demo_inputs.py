"""What the demo puts into the stream: generated scenarios or a user's file.

Every input ends up as the exact bytes Fluent Bit's ``kinesis_streams`` output would put
into Kinesis, so the handlers see what they see in production.
"""

from __future__ import annotations

import json
from pathlib import Path

from cali_local.fluentbit_emulation import FILES_CONFIG, FluentBitPipeline, iter_file_records
from cali_local.loggen import GeneratedEvent, generate

Wave = list[bytes]


def generated_events(
    scenario: str, *, count: int, seed: int, bad_fraction: float, environment: str = "dev"
) -> list[GeneratedEvent]:
    return list(
        generate(scenario, seed=seed, count=count, environment=environment, bad_fraction=bad_fraction)
    )


def split_waves(events: list[GeneratedEvent], waves: int = 2) -> list[Wave]:
    """Consecutive slices: an incident spanning a boundary shows its throttled update."""
    size = -(-len(events) // waves)
    return [[e.data for e in events[i : i + size]] for i in range(0, len(events), size)]


def generated_waves(
    scenario: str, *, count: int, seed: int, bad_fraction: float, environment: str = "dev"
) -> list[Wave]:
    events = generated_events(
        scenario, count=count, seed=seed, bad_fraction=bad_fraction, environment=environment
    )
    return split_waves(events)


def _looks_like_json_lines(path: Path) -> bool:
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    return isinstance(json.loads(line), dict)
                except ValueError:
                    return False
    return False


def file_waves(path: Path, *, environment: str = "dev") -> list[Wave]:
    """One wave from a file of Fluent Bit JSON lines (sent as they are, even broken ones)
    or of raw log lines (grouped and parsed by the Fluent Bit rules for plain files)."""
    if _looks_like_json_lines(path):
        with path.open("rb") as handle:
            return [[line.rstrip(b"\r\n") + b"\n" for line in handle if line.strip()]]
    pipeline = FluentBitPipeline.load(
        FILES_CONFIG,
        env={
            "CALI_ENV": environment,
            "CALI_CLUSTER": "cali-local",
            "HOSTNAME": "localhost",
            "AWS_REGION": "us-east-1",
            "CALI_STREAM_NAME": f"cali-{environment}-logs",
            "NODE_NAME": "localhost",
        },
    )
    return [[record.data for record in iter_file_records(path, pipeline)]]
