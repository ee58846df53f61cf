"""Archives built to pass or to fail each quality check, and an Athena API double.

``Week`` writes a normal week (the day and its 7-day baseline) of two services in three
formats (pino numbers, ISO text levels, epoch-seconds timestamps) into a folder laid out
like the archive bucket; each ``spoil_*`` changes only the day so that exactly one check
should fail.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cali.ingest.dlq import DlqEntry
from cali.quality.sql import to_duckdb
from cali_local.archive import write_dlq, write_raw

DAY = date(2026, 12, 3)
HOURS = (8, 9, 10)
Line = dict[str, Any]


@dataclass
class Week:
    root: Path
    per_hour: int = 60
    seed: int = 3
    #: service -> a function building its line number i of an hour
    today_edits: list[Callable[[str, list[Line]], list[Line]]] = field(default_factory=list)

    def lines(self, service: str, arrival: datetime, today: bool) -> list[Line]:
        rng = random.Random(f"{self.seed}{service}{arrival}")
        out: list[Line] = []
        for i in range(self.per_hour):
            at = arrival + timedelta(seconds=i * 3600 // self.per_hour + rng.randint(0, 30))
            error = i % 20 == 0
            if service == "orders":
                out.append(
                    {
                        "level": 50 if error else 30,
                        "time": int(at.timestamp() * 1000),
                        "service": "orders",
                        "msg": "order failed: timeout after 30s" if error else f"order {1000 + i} placed",
                    }
                )
            else:
                out.append(
                    {
                        "level": "ERROR" if error else "info",
                        "ts": at.timestamp(),
                        "app": "billing",
                        "message": "invoice run failed for batch 7" if error else f"invoice {i} sent",
                    }
                )
        return out

    def write(self) -> Week:
        for back in range(8):
            day = DAY - timedelta(days=back)
            for hour in HOURS:
                arrival = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
                for service in ("orders", "billing"):
                    lines = self.lines(service, arrival, today=back == 0)
                    if back == 0:
                        for edit in self.today_edits:
                            lines = edit(service, lines)
                    write_raw(self.root, arrival, [_encode(line) for line in lines], name=f"{service}.gz")
        return self


def _encode(line: Line) -> bytes:
    raw = line.get("__raw__")
    return raw if isinstance(raw, bytes) else json.dumps(line).encode()


def only(service: str, edit: Callable[[list[Line]], list[Line]]) -> Callable[[str, list[Line]], list[Line]]:
    return lambda name, lines: edit(lines) if name == service else lines


# --- one spoiler per check --------------------------------------------------------------
def silent(lines: list[Line]) -> list[Line]:
    return []


def tripled(lines: list[Line]) -> list[Line]:
    return [dict(line, msg=f"{line.get('msg')} copy {n}") for n in range(3) for line in lines]


def without_message(lines: list[Line]) -> list[Line]:
    return [
        {k: v for k, v in line.items() if k != "msg"} if i % 5 == 0 else line for i, line in enumerate(lines)
    ]


def unparsed(lines: list[Line]) -> list[Line]:
    # Fluent Bit without a matching parser wraps the raw text in "log"; some lines are not JSON.
    out: list[Line] = []
    for i, line in enumerate(lines):
        if i % 5 == 0:
            out.append({"log": f"2026-12-03 09:00:0{i % 10} orders: {line['msg']}", "service": "orders"})
        elif i % 5 == 1:
            out.append({"__raw__": b"\xff\xfe binary junk \x00 not json"})
        else:
            out.append(line)
    return out


def errors_everywhere(lines: list[Line]) -> list[Line]:
    return [
        dict(line, level=50, msg="order failed: timeout after 30s") if i % 2 else line
        for i, line in enumerate(lines)
    ]


def clock_two_hours_behind(lines: list[Line]) -> list[Line]:
    return [dict(line, time=line["time"] - 2 * 3600 * 1000) for line in lines]


def duplicated(lines: list[Line]) -> list[Line]:
    return lines + lines[: len(lines) // 10]


def new_errors(lines: list[Line]) -> list[Line]:
    words = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
    return lines + [dict(lines[0], level=50, msg=f"unexpected {word} state in worker") for word in words]


def dead_letters(root: Path, count: int) -> None:
    arrival = datetime(DAY.year, DAY.month, DAY.day, 9, 30, tzinfo=UTC)
    for i in range(count):
        write_dlq(
            root,
            DlqEntry(
                reason="missing_field:message",
                error="no message",
                shard_id="shardId-000000000000",
                sequence_number=str(1000 + i),
                partition_key="orders",
                arrival_time=arrival,
                dlq_time=arrival,
                data_base64=base64.b64encode(b'{"level":"error"}').decode(),
            ),
        )


# --- an Athena API double ---------------------------------------------------------------
class FakeAthena:
    """Athena's query API as AthenaEngine uses it, answering from DuckDB over the same archive.

    It receives the Athena-dialect text (what AWS would run), answers in Athena's wire
    format (every value a string, a header row first, 1,000 rows a page, QUEUED and
    RUNNING states before SUCCEEDED), so the engine's polling, paging and typing are real.
    """

    page_size = 1000

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.received: list[str] = []
        self._results: dict[str, tuple[list[dict[str, str]], list[list[str | None]]]] = {}
        self._polls: dict[str, int] = {}
        self._failed: dict[str, str] = {}

    def start_query_execution(self, QueryString: str, QueryExecutionContext: Any, WorkGroup: str) -> Any:
        query_id = f"q{len(self.received)}"
        self.received.append(QueryString)
        self._polls[query_id] = 0
        try:
            cursor = self.connection.execute(to_duckdb(QueryString))
        except Exception as error:  # Athena accepts the query and reports FAILED later
            self._failed[query_id] = str(error).splitlines()[0]
            return {"QueryExecutionId": query_id}
        info = [{"Name": d[0], "Type": _athena_type(str(d[1]))} for d in cursor.description]
        rows = [[None if v is None else _athena_text(v) for v in row] for row in cursor.fetchall()]
        self._results[query_id] = (info, rows)
        return {"QueryExecutionId": query_id}

    def batch_get_query_execution(self, QueryExecutionIds: list[str]) -> Any:
        if not 1 <= len(QueryExecutionIds) <= 50:
            raise ValueError("BatchGetQueryExecution takes 1 to 50 ids")  # Athena's limit
        executions = []
        for query_id in QueryExecutionIds:
            self._polls[query_id] += 1
            state = ("QUEUED", "RUNNING", "SUCCEEDED")[min(self._polls[query_id] - 1, 2)]
            status: dict[str, str] = {"State": state}
            if query_id in self._failed and state == "SUCCEEDED":
                status = {"State": "FAILED", "StateChangeReason": self._failed[query_id]}
            executions.append({"QueryExecutionId": query_id, "Status": status})
        return {"QueryExecutions": executions, "UnprocessedQueryExecutionIds": []}

    def stop_query_execution(self, QueryExecutionId: str) -> None:
        raise AssertionError("no query should time out here")

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        return self

    def paginate(self, QueryExecutionId: str) -> Any:
        info, rows = self._results[QueryExecutionId]
        header = [[c["Name"] for c in info]]
        everything = header + rows
        for start in range(0, len(everything), self.page_size):
            yield {
                "ResultSet": {
                    "ResultSetMetadata": {"ColumnInfo": info},
                    "Rows": [
                        {"Data": [{} if v is None else {"VarCharValue": v} for v in r]}
                        for r in everything[start : start + self.page_size]
                    ],
                }
            }


def _athena_type(duck: str) -> str:
    duck = duck.upper()
    if duck in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT"):
        return "bigint"
    if duck.startswith("DECIMAL") or duck in ("DOUBLE", "FLOAT"):
        return "double"
    if duck == "BOOLEAN":
        return "boolean"
    return "varchar"


def _athena_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
