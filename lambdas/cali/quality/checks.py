"""The daily checks: each is one SQL query (cali.quality.sql) and Great Expectations rules over its rows.

The engine (DuckDB or Athena) does the heavy part, reducing a day and its 7-day baseline of
raw lines to a few rows per service; Great Expectations then judges those rows with the
same expectation suite whichever engine produced them, so the verdicts agree by
construction once the rows do (a test compares the rows of both SQL spellings).

Why Great Expectations over Soda Core: GX 1.x is actively released (1.24, 2026-10), was
the seed's plan, installs next to the pinned pandas/numpy/pyarrow without changing any of
them, and its expectations give per-row reasons (``unexpected_index_list``) that the report
shows. Soda Core 4 would add an OpenTelemetry exporter stack and pin PyAthena; Soda Core 3
is the superseded line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cali.quality.sql import check_sql


class QualitySettings(BaseModel):
    """Thresholds of the checks (defaults suit a service that logs tens of lines an hour or more)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_expected_per_hour: float = Field(
        10.0, description="baseline lines/hour below which an hour is not judged"
    )
    silent_ratio: float = Field(0.1, description="an hour under this share of its baseline is 'silent'")
    spike_ratio: float = Field(3.0, description="an hour at or over this multiple of its baseline fails")
    # Per service: sporadic bad lines are the DLQ's business; 5% means a producer lost a field.
    max_violation_share: float = 0.05
    max_unparsed_share: float = 0.05
    max_dlq_share: float = 0.02
    min_records_for_mix: int = 50
    max_level_drift: float = 0.25
    max_skewed_share: float = 0.05
    max_duplicate_share: float = 0.01
    max_new_fingerprints: int = 25


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    keys: tuple[str, ...]
    expectations: Callable[[QualitySettings], list[Any]]
    params: Callable[[QualitySettings], dict[str, object]] = lambda _s: {}
    #: The rule in words, for the report (the expectation says it in GX's terms).
    rule: Callable[[QualitySettings], str] = lambda _s: ""

    def sql(self, day: date, settings: QualitySettings) -> str:
        return check_sql(self.name, day, **self.params(settings))


def _gx() -> Any:
    # GX's usage statistics would try the network from a Lambda without egress.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


def _between(
    column: str, *, low: float | None = None, high: float | None = None, strict_high: bool = False
) -> Any:
    return _gx().expectations.ExpectColumnValuesToBeBetween(
        column=column, min_value=low, max_value=high, strict_max=strict_high
    )


CHECKS: tuple[Check, ...] = (
    Check(
        "volume",
        "Records per service and hour vs the trailing 7-day baseline",
        ("service", "hour"),
        lambda s: [_between("ratio", low=s.silent_ratio, high=s.spike_ratio, strict_high=True)],
        lambda s: {"min_expected": s.min_expected_per_hour},
        rule=lambda s: (
            f"an hour is under {s.silent_ratio:.0%} of its baseline (silent) or at {s.spike_ratio:g}x or "
            f"more; hours whose baseline has fewer than {s.min_expected_per_hour:g} lines are not judged"
        ),
    ),
    Check(
        "required_fields",
        "Required fields present (service, message) and typed (level, timestamp)",
        ("service",),
        lambda s: [_between("violation_share", high=s.max_violation_share)],
        rule=lambda s: (
            f"more than {s.max_violation_share:.0%} of a service's lines lack a service or a message, "
            "or carry a level or time that does not parse"
        ),
    ),
    Check(
        "unparsed_share",
        "Lines that are not JSON or that no Fluent Bit parser structured",
        ("service",),
        lambda s: [_between("unparsed_share", high=s.max_unparsed_share)],
        rule=lambda s: (
            f"more than {s.max_unparsed_share:.0%} of a service's lines are not JSON or were not parsed"
        ),
    ),
    Check(
        "dlq_share",
        "Records sent to the dead-letter queue, by reason",
        ("reason",),
        lambda s: [_between("dlq_share", high=s.max_dlq_share)],
        rule=lambda s: (
            f"more than {s.max_dlq_share:.0%} of the day's archived lines went to the dead-letter queue"
        ),
    ),
    Check(
        "level_mix",
        "Level mix drift per service vs the baseline (total variation distance)",
        ("service",),
        lambda s: [_between("drift", high=s.max_level_drift)],
        lambda s: {"min_records": s.min_records_for_mix},
        rule=lambda s: (
            f"a service's level mix moved more than {s.max_level_drift:.0%} "
            "(total variation distance) from its baseline"
        ),
    ),
    Check(
        "time_skew",
        "Event time more than 15 minutes outside its arrival hour",
        ("service",),
        lambda s: [_between("skewed_share", high=s.max_skewed_share)],
        rule=lambda s: (
            f"more than {s.max_skewed_share:.0%} of a service's lines carry a time over 15 minutes "
            "outside their arrival hour"
        ),
    ),
    Check(
        "duplicates",
        "Duplicate records (identical timestamped lines)",
        ("service",),
        lambda s: [_between("duplicate_share", high=s.max_duplicate_share)],
        rule=lambda s: (
            f"more than {s.max_duplicate_share:.0%} of a service's timestamped lines are exact repeats"
        ),
    ),
    Check(
        "new_fingerprints",
        "WARN+ message templates no baseline day had",
        ("service", "template"),
        lambda s: [_gx().expectations.ExpectTableRowCountToBeBetween(max_value=s.max_new_fingerprints)],
        rule=lambda s: f"more than {s.max_new_fingerprints} WARN+ message templates that no baseline day had",
    ),
)
CHECKS_BY_NAME = {check.name: check for check in CHECKS}


class Unexpected(BaseModel):
    expectation: str
    bounds: dict[str, Any]
    unexpected_count: int
    rows: list[dict[str, Any]]
    observed: Any = None


class Verdict(BaseModel):
    passed: bool
    failures: list[Unexpected]


@cache
def _context() -> Any:
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def judge(check: Check, rows: Sequence[dict[str, Any]], settings: QualitySettings) -> Verdict:
    """Validate a check's rows with its expectation suite; failed expectations carry the rows."""
    import pandas as pd

    gx = _gx()
    context = _context()
    source_name = f"cali-{check.name}"
    try:
        source = context.data_sources.get(source_name)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(source_name)
        source.add_dataframe_asset(check.name).add_batch_definition_whole_dataframe("day")
    batch_definition = source.get_asset(check.name).get_batch_definition("day")
    expectations = check.expectations(settings)
    # No rows (no baseline yet, nothing new): an empty frame that still has the judged columns.
    judged = [e.column for e in expectations if getattr(e, "column", None)]
    frame = pd.DataFrame(list(rows), columns=list(rows[0]) if rows else [*check.keys, *judged])
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name=check.name, expectations=expectations)
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(check.keys)},
    )
    failures = [
        Unexpected(
            expectation=outcome.expectation_config.type,
            bounds={k: v for k, v in outcome.expectation_config.kwargs.items() if k != "batch_id"},
            unexpected_count=int(outcome.result.get("unexpected_count", 0) or 0),
            rows=_full_rows(check, rows, outcome.result.get("unexpected_index_list") or []),
            observed=_plain_value(outcome.result.get("observed_value")),
        )
        for outcome in result.results
        if not outcome.success
    ]
    return Verdict(passed=bool(result.success), failures=failures)


def _full_rows(
    check: Check, rows: Sequence[dict[str, Any]], unexpected: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The check's whole rows for GX's unexpected (key columns + value) entries: the report
    shows the records and the baseline next to the ratio, not the ratio alone."""
    by_key = {tuple(row.get(k) for k in check.keys): row for row in rows}
    found = []
    for entry in unexpected:
        key = tuple(_plain_value(entry.get(k)) for k in check.keys)
        found.append(_plain(by_key.get(key, entry)))
    return found


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain_value(value) for key, value in row.items()}


def _plain_value(value: Any) -> Any:
    # numpy scalars from pandas -> JSON-friendly Python values
    return value.item() if hasattr(value, "item") else value
