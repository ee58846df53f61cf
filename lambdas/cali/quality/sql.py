"""The SQL of the quality checks, written once in Athena's dialect (Trino) and run on both engines.

Athena runs it as written. DuckDB runs the same text after sqlglot transpiles it
(``to_duckdb``): the differences between the engines are spelling (``JSON_EXTRACT_SCALAR``
is ``->>``, ``TRY(JSON_PARSE(x))`` is ``TRY(JSON(x))``), not meaning, and a test runs every
check's SQL through both parsers.

Both engines see the same two tables (names in :data:`RAW_TABLE` and :data:`DLQ_TABLE`):

* ``raw_lines(line, year, month, day, hour)``: one row per line of the raw archive
  (``raw/year=YYYY/month=MM/day=DD/hour=HH/*.gz``, Firehose's arrival hour). A line is read as
  text, not as JSON, because the archive holds whatever producers sent: pino, zap, logback,
  Fluent Bit records, and the malformed lines the consumer sent to the DLQ. The SQL parses
  each line itself and resolves the same field aliases as the consumer (:mod:`cali.contracts.records`).
* ``dlq_entries(reason, ..., year, month, day, hour)``: one row per DLQ entry
  (``dlq/YYYY/MM/DD/HH/<id>.json``, :class:`cali.ingest.dlq.DlqEntry`).

Queries filter on the partition columns with literal values so that Athena's partition
projection reads only the eight days a run needs (the day and its 7-day baseline).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from cali.contracts.levels import _ALIASES
from cali.contracts.records import _LEVEL_KEYS, _MESSAGE_KEYS, _SERVICE_KEYS, _TIME_KEYS

RAW_TABLE: Final = "raw_lines"
DLQ_TABLE: Final = "dlq_entries"
BASELINE_DAYS: Final = 7
NO_SERVICE: Final = "(none)"
#: The column of records_cte that holds a line only when it is valid JSON.
SAFE_JSON_COLUMN: Final = "doc"
#: Arrival hour is the partition; an event more than this outside its hour is "skewed".
SKEW_TOLERANCE_SECONDS: Final = 900


def _json_path(key: str) -> str:
    # Bracket notation for keys that are not plain identifiers ("@timestamp").
    return f"$.{key}" if key.replace("_", "").isalnum() else f'$["{key}"]'


def _first_of(keys: tuple[str, ...]) -> str:
    """The first alias present, as the consumer resolves it (most specific first)."""
    return "COALESCE(" + ", ".join(f"JSON_EXTRACT_SCALAR(doc, '{_json_path(k)}')" for k in keys) + ")"


def _level_names() -> str:
    """``(alias, level)`` rows: the consumer's level aliases (cali.contracts.levels), for one join."""
    rows = ", ".join(f"('{alias}', '{level.name}')" for alias, level in sorted(_ALIASES.items()))
    return f"(VALUES {rows}) AS level_names(alias, level)"


# JSON numbers are pino/bunyan levels (10 trace .. 60 fatal), as the consumer reads them.
_PINO_LEVELS = (
    "(VALUES (10, 'TRACE'), (20, 'DEBUG'), (30, 'INFO'), (40, 'WARN'), (50, 'ERROR'), (60, 'FATAL'))"
    " AS pino_levels(number, level)"
)


# Epoch seconds of the event: a number (s, ms, µs or ns by magnitude, as the consumer reads it)
# or an ISO-8601 text; NULL when neither.
_EVENT_EPOCH = """CASE
    WHEN TRY_CAST(f.time_raw AS DOUBLE) IS NULL
      THEN TO_UNIXTIME(TRY(FROM_ISO8601_TIMESTAMP(f.time_raw)))
    WHEN ABS(TRY_CAST(f.time_raw AS DOUBLE)) < 1e11 THEN TRY_CAST(f.time_raw AS DOUBLE)
    WHEN ABS(TRY_CAST(f.time_raw AS DOUBLE)) < 1e14 THEN TRY_CAST(f.time_raw AS DOUBLE) / 1e3
    WHEN ABS(TRY_CAST(f.time_raw AS DOUBLE)) < 1e17 THEN TRY_CAST(f.time_raw AS DOUBLE) / 1e6
    ELSE TRY_CAST(f.time_raw AS DOUBLE) / 1e9
  END"""


def days_of(day: date) -> list[date]:
    """The run day and its baseline, newest first."""
    return [day - timedelta(days=offset) for offset in range(BASELINE_DAYS + 1)]


def partition_filter(days: list[date]) -> str:
    """Literal partition predicates: what lets Athena's projection read only these days."""
    return " OR ".join(f"(year = '{d:%Y}' AND month = '{d:%m}' AND day = '{d:%d}')" for d in sorted(days))


def records_cte(day: date, *, baseline: bool = True) -> str:
    """``WITH lines AS (...), records AS (...)``: one parsed row per archived line."""
    days = days_of(day) if baseline else [day]
    return f"""WITH lines AS (
  SELECT
    line,
    year || '-' || month || '-' || day AS dt,
    hour,
    CASE WHEN TRY(JSON_PARSE(line)) IS NOT NULL THEN line END AS doc,
    TO_UNIXTIME(DATE_PARSE(year || '-' || month || '-' || day || ' ' || hour, '%Y-%m-%d %H')) AS arrival_epoch
  FROM {RAW_TABLE}
  WHERE {partition_filter(days)}
), fields AS (
  SELECT
    line, dt, hour, doc, arrival_epoch,
    {_first_of(_SERVICE_KEYS)} AS service_raw,
    {_first_of(_LEVEL_KEYS)} AS level_raw,
    {_first_of(_MESSAGE_KEYS)} AS message,
    {_first_of(_TIME_KEYS)} AS time_raw
  FROM lines
), records AS (
  SELECT
    f.line, f.dt, f.hour, f.doc, f.arrival_epoch, f.service_raw, f.level_raw, f.message, f.time_raw,
    COALESCE(f.service_raw, '{NO_SERVICE}') AS service,
    COALESCE(
      level_names.level,
      pino_levels.level,
      CASE WHEN f.level_raw IS NULL THEN 'MISSING' ELSE 'OTHER' END
    ) AS level,
    {_EVENT_EPOCH} AS event_epoch
  FROM fields f
  LEFT JOIN {_level_names()} ON UPPER(TRIM(f.level_raw)) = level_names.alias
  LEFT JOIN {_PINO_LEVELS}
    ON LEAST(FLOOR(TRY_CAST(f.level_raw AS DOUBLE) / 10) * 10, 60) = pino_levels.number
)"""


def _volume(day: date) -> str:
    return f"""{records_cte(day)}, hourly AS (
  SELECT service, dt, hour, COUNT(*) AS n FROM records GROUP BY service, dt, hour
), baseline_days AS (
  SELECT COUNT(DISTINCT dt) AS days FROM hourly WHERE dt <> '{day}'
), today AS (
  SELECT service, hour, n FROM hourly WHERE dt = '{day}'
), baseline AS (
  SELECT service, hour, CAST(SUM(n) AS DOUBLE) / (SELECT days FROM baseline_days) AS expected
  FROM hourly WHERE dt <> '{day}' GROUP BY service, hour
), last_hour AS (
  SELECT COALESCE(MAX(hour), '23') AS h FROM hourly WHERE dt = '{day}'
)
SELECT
  COALESCE(t.service, b.service) AS service,
  COALESCE(t.hour, b.hour) AS hour,
  COALESCE(t.n, 0) AS records,
  COALESCE(b.expected, 0.0) AS expected,
  CASE WHEN b.expected >= {{min_expected}} THEN COALESCE(t.n, 0) / b.expected END AS ratio
FROM today t
FULL OUTER JOIN baseline b ON t.service = b.service AND t.hour = b.hour
WHERE COALESCE(t.hour, b.hour) <= (SELECT h FROM last_hour)
ORDER BY service, hour"""


def _denominator() -> str:
    # Lines without a service cannot be charged to one: their share is of the whole day, so
    # a handful of them does not read as "100% of service (none) is broken".
    return f"CASE WHEN service = '{NO_SERVICE}' THEN SUM(COUNT(*)) OVER () ELSE COUNT(*) END"


def _required_fields(day: date) -> str:
    return f"""{records_cte(day, baseline=False)}
SELECT
  service,
  COUNT(*) AS records,
  SUM(CASE WHEN service_raw IS NULL THEN 1 ELSE 0 END) AS missing_service,
  SUM(CASE WHEN message IS NULL THEN 1 ELSE 0 END) AS missing_message,
  SUM(CASE WHEN level_raw IS NOT NULL AND level = 'OTHER' THEN 1 ELSE 0 END) AS bad_level,
  SUM(CASE WHEN time_raw IS NOT NULL AND event_epoch IS NULL THEN 1 ELSE 0 END) AS bad_timestamp,
  CAST(SUM(CASE WHEN service_raw IS NULL OR message IS NULL
      OR (level_raw IS NOT NULL AND level = 'OTHER')
      OR (time_raw IS NOT NULL AND event_epoch IS NULL) THEN 1 ELSE 0 END) AS DOUBLE)
    / {_denominator()} AS violation_share
FROM records
WHERE doc IS NOT NULL
GROUP BY service
ORDER BY service"""


def _unparsed(day: date) -> str:
    # Unparsed: not JSON at all, or a JSON record with neither a level nor a time, i.e. a
    # raw line Fluent Bit wrapped in {"log": ...} because no parser matched it.
    return f"""{records_cte(day, baseline=False)}
SELECT
  service,
  COUNT(*) AS records,
  SUM(CASE WHEN doc IS NULL THEN 1 ELSE 0 END) AS not_json,
  SUM(CASE WHEN doc IS NOT NULL AND level_raw IS NULL AND time_raw IS NULL THEN 1 ELSE 0 END) AS no_parser,
  CAST(SUM(CASE WHEN doc IS NULL OR (level_raw IS NULL AND time_raw IS NULL) THEN 1 ELSE 0 END) AS DOUBLE)
    / {_denominator()} AS unparsed_share
FROM records
GROUP BY service
ORDER BY service"""


def _dlq_share(day: date) -> str:
    return f"""WITH archived AS (
  SELECT COUNT(*) AS n FROM {RAW_TABLE} WHERE {partition_filter([day])}
), dead AS (
  SELECT reason, COUNT(*) AS n FROM {DLQ_TABLE} WHERE {partition_filter([day])} GROUP BY reason
), shares AS (
  SELECT '(all)' AS reason, (SELECT COALESCE(SUM(n), 0) FROM dead) AS dlq FROM archived
  UNION ALL
  SELECT reason, n AS dlq FROM dead
)
SELECT
  s.reason,
  a.n AS archived,
  s.dlq,
  CASE WHEN a.n > 0 THEN CAST(s.dlq AS DOUBLE) / a.n END AS dlq_share
FROM shares s
CROSS JOIN archived a
ORDER BY s.reason"""


def _level_mix(day: date) -> str:
    return f"""{records_cte(day)}, counts AS (
  SELECT
    service,
    level,
    SUM(CASE WHEN dt = '{day}' THEN 1 ELSE 0 END) AS today,
    SUM(CASE WHEN dt <> '{day}' THEN 1 ELSE 0 END) AS base
  FROM records
  WHERE doc IS NOT NULL
  GROUP BY service, level
), totals AS (
  SELECT service, SUM(today) AS today, SUM(base) AS base FROM counts GROUP BY service
)
SELECT
  c.service,
  t.today AS records,
  t.base AS baseline_records,
  SUM(CASE WHEN c.level IN ('ERROR', 'FATAL') THEN c.today ELSE 0 END)
    / CAST(t.today AS DOUBLE) AS error_share,
  SUM(CASE WHEN c.level IN ('ERROR', 'FATAL') THEN c.base ELSE 0 END)
    / CAST(t.base AS DOUBLE) AS baseline_error_share,
  0.5 * SUM(ABS(c.today / CAST(t.today AS DOUBLE) - c.base / CAST(t.base AS DOUBLE))) AS drift
FROM counts c
JOIN totals t ON c.service = t.service
WHERE t.today >= {{min_records}} AND t.base >= {{min_records}}
GROUP BY c.service, t.today, t.base
ORDER BY c.service"""


def _time_skew(day: date) -> str:
    tolerance = SKEW_TOLERANCE_SECONDS
    return f"""{records_cte(day, baseline=False)}, skew AS (
  SELECT
    service,
    CASE
      WHEN event_epoch < arrival_epoch THEN arrival_epoch - event_epoch
      WHEN event_epoch > arrival_epoch + 3600 THEN event_epoch - arrival_epoch - 3600
      ELSE 0
    END AS seconds
  FROM records
  WHERE event_epoch IS NOT NULL
)
SELECT
  service,
  COUNT(*) AS records,
  SUM(CASE WHEN seconds > {tolerance} THEN 1 ELSE 0 END) AS skewed,
  CAST(SUM(CASE WHEN seconds > {tolerance} THEN 1 ELSE 0 END) AS DOUBLE) / COUNT(*) AS skewed_share,
  MAX(seconds) AS max_skew_seconds
FROM skew
GROUP BY service
ORDER BY service"""


def _duplicates(day: date) -> str:
    # Only lines that carry their own timestamp: the same line twice is then a duplicate
    # delivery; "health check ok" without a time legitimately repeats.
    return f"""{records_cte(day, baseline=False)}
SELECT
  service,
  COUNT(*) AS records,
  COUNT(*) - COUNT(DISTINCT line) AS duplicates,
  CAST(COUNT(*) - COUNT(DISTINCT line) AS DOUBLE) / COUNT(*) AS duplicate_share
FROM records
WHERE time_raw IS NOT NULL
GROUP BY service
ORDER BY service"""


def _new_fingerprints(day: date) -> str:
    # A coarse template of the message's first line (numbers and hex ids masked): cheap in
    # SQL on both engines. The day's WARN+ templates no baseline day had are "new".
    template = (
        "SUBSTR(REGEXP_REPLACE(LOWER(SPLIT_PART(message, CHR(10), 1)), '[0-9a-f]{{8,}}|[0-9]+', '#'), 1, 160)"
    )
    return f"""{records_cte(day)}, templates AS (
  SELECT service, level, dt, {template} AS template
  FROM records
  WHERE message IS NOT NULL AND level IN ('WARN', 'ERROR', 'FATAL')
), seen AS (
  SELECT DISTINCT service, template FROM templates WHERE dt <> '{day}'
), baseline_days AS (
  SELECT COUNT(DISTINCT dt) AS days FROM records WHERE dt <> '{day}'
)
SELECT t.service, t.template, MAX(t.level) AS level, COUNT(*) AS records
FROM templates t
LEFT JOIN seen s ON t.service = s.service AND t.template = s.template
WHERE t.dt = '{day}' AND s.template IS NULL AND (SELECT days FROM baseline_days) > 0
GROUP BY t.service, t.template
ORDER BY records DESC, t.service, t.template"""


CHECK_SQL: Final = {
    "volume": _volume,
    "required_fields": _required_fields,
    "unparsed_share": _unparsed,
    "dlq_share": _dlq_share,
    "level_mix": _level_mix,
    "time_skew": _time_skew,
    "duplicates": _duplicates,
    "new_fingerprints": _new_fingerprints,
}


def check_sql(name: str, day: date, **params: object) -> str:
    """The Athena SQL of one check for ``day`` (``params`` fill its ``{placeholders}``)."""
    return CHECK_SQL[name](day).format(**params)


def to_duckdb(sql: str) -> str:
    """The same query in DuckDB's spelling, and with Athena's meaning where they differ.

    Athena's JSON functions return NULL on a line that is not JSON; DuckDB's raise an error.
    The archive holds such lines (the DLQ's bad data), so every JSON extraction is guarded
    with ``json_valid`` to give users' ad-hoc queries Athena's result on both engines.
    """
    tree = sqlglot.parse_one(sql, read="athena", error_level=ErrorLevel.RAISE)
    # RAISE: a construct DuckDB cannot express fails here, loudly, instead of being dropped.
    return tree.transform(_null_on_invalid_json).sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)


def _null_on_invalid_json(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.JSONExtractScalar | exp.JSONExtract)
        and not node.meta.get("guarded")
        # ``doc`` (records_cte) is already NULL unless the line parsed: no second parse.
        and not (isinstance(node.this, exp.Column) and node.this.name == SAFE_JSON_COLUMN)
    ):
        inner = node.copy()
        inner.meta["guarded"] = True
        valid = exp.Anonymous(this="json_valid", expressions=[node.this.copy()])
        return exp.Case(ifs=[exp.If(this=valid, true=inner)])
    return node
