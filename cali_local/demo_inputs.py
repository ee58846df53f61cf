"""What the demo puts into the stream: generated scenarios or a user's file.

Every input ends up as the exact bytes Fluent Bit's ``kinesis_streams`` output would put
into Kinesis, so the handlers see what they see in production.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cali.contracts.levels import Level
from cali_local.fluentbit import FILES_CONFIG, FluentBitPipeline, LogSource, iter_file_records
from cali_local.loggen import GeneratedEvent, generate

Wave = list[bytes]


def generated_events(
    scenario: str,
    *,
    count: int,
    seed: int,
    bad_fraction: float,
    environment: str = "dev",
    start: datetime | None = None,
) -> list[GeneratedEvent]:
    return list(
        generate(
            scenario, seed=seed, count=count, environment=environment, bad_fraction=bad_fraction, start=start
        )
    )


def split_waves(events: list[GeneratedEvent], waves: int = 2) -> list[Wave]:
    """Consecutive slices: an incident spanning a boundary shows its throttled update."""
    size = -(-len(events) // waves)
    return [[e.data for e in events[i : i + size]] for i in range(0, len(events), size)]


def generated_waves(
    scenario: str,
    *,
    count: int,
    seed: int,
    bad_fraction: float,
    environment: str = "dev",
    start: datetime | None = None,
) -> list[Wave]:
    events = generated_events(
        scenario, count=count, seed=seed, bad_fraction=bad_fraction, environment=environment, start=start
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


# What `cali demo --input` gives the handlers so a replay alerts as production would on the
# same lines: no skew bound (the lines' own times are the point of a replay, even years
# old) and the deployed throttle window, measured in the lines' own time.
REPLAY_ENV: dict[str, str] = {
    "MAX_EVENT_AGE_SECONDS": str(100 * 365 * 86_400),
    "MAX_EVENT_AHEAD_SECONDS": str(100 * 365 * 86_400),
}
PRODUCTION_THROTTLE_WINDOW_SECONDS = 900


def input_files(paths: Sequence[Path]) -> list[Path]:
    """The files behind ``--input``: files as given, directories walked (sorted, hidden skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(str(path))
    return found


@dataclass
class InputSummary:
    """What the consumer will read from the input: formats and where levels come from."""

    events: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    level_sources: Counter[str] = field(default_factory=Counter)
    inferred: Counter[str] = field(default_factory=Counter)  # level name -> events


def summarise_input(waves: Iterable[Wave]) -> InputSummary:
    """Read the records as the consumer will (same decoder, same normaliser)."""
    from cali.ingest.decoding import decode_payload
    from cali.ingest.events import REPLAY_TIME_RULE, prepare_event

    summary = InputSummary()
    now = datetime.now(UTC)
    for wave in waves:
        for data in wave:
            for event in decode_payload(data).events:
                prepared = prepare_event(event, now, time_rule=REPLAY_TIME_RULE)
                if not isinstance(prepared, dict):
                    continue
                summary.events += 1
                summary.formats[str(prepared.get("log_format", "json event"))] += 1
                source = str(prepared.get("level_source", "json"))
                summary.level_sources[source] += 1
                if source == "inferred":
                    level = prepared.get("level")
                    summary.inferred[level.name if isinstance(level, Level) else str(level)] += 1
    return summary


def files_waves(paths: Sequence[Path], *, environment: str = "dev") -> list[Wave]:
    """One wave with every input file, in order."""
    wave: Wave = []
    for path in input_files(paths):
        for part in file_waves(path, environment=environment):
            wave += part
    return [wave]


def file_waves(path: Path, *, environment: str = "dev") -> list[Wave]:
    """One wave from a file of Fluent Bit JSON lines (sent as they are, even broken ones)
    or of raw log lines (grouped by the Fluent Bit rules for plain files; the service is
    the file's name, as Fluent Bit's path parser sets it)."""
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
    source = LogSource(f"/var/log/app/{path.name}")
    return [[record.data for record in iter_file_records(path, pipeline, source=source)]]
