"""The two engines that run the archive SQL: DuckDB on a local copy, Athena on S3.

Both take Athena-dialect SQL (:mod:`cali.quality.sql`) and return rows as dicts of plain
Python values (int, float, str, None), so everything after the query is engine-blind.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from cali.ingest.dlq import DlqEntry
from cali.quality.sql import DLQ_TABLE, RAW_TABLE, to_duckdb

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

Row = dict[str, Any]
_DLQ_HOUR: Final = "dlq/([0-9]{4})/([0-9]{2})/([0-9]{2})/([0-9]{2})/"


def athena_names(environment: str) -> tuple[str, str]:
    """(workgroup, Glue database) of an environment; Glue names take no hyphens."""
    return f"cali-{environment}", f"cali_{environment.replace('-', '_')}"


class QueryError(RuntimeError):
    """A query failed on the engine; the message carries the engine's reason."""


class Engine(Protocol):
    name: str

    def run(self, queries: Sequence[str]) -> list[list[Row]]:
        """Run Athena-dialect queries, results in the same order (engines may overlap them)."""
        ...


# The DLQ's columns are DlqEntry's fields (the Glue table's too); both engines read them as text.
DLQ_COLUMNS: Final = tuple(DlqEntry.model_fields)


@dataclass
class DuckDbEngine:
    """DuckDB over a folder laid out like the archive bucket (``raw/…``, ``dlq/…``).

    ``raw_lines`` reads every line of the gzip objects as one text column, exactly like the
    Glue table's text SerDe; the partition columns come from the Hive-style folder names,
    as strings, as Athena's projection gives them. ``dlq_entries`` takes its hour from the
    path (``dlq/YYYY/MM/DD/HH/``), as the Glue table's location template does.
    """

    root: Path
    name: str = "duckdb"
    threads: int = 2
    _connection: Any = field(default=None, init=False, repr=False)

    def connection(self) -> Any:
        if self._connection is None:
            import duckdb

            connection = duckdb.connect(config={"threads": self.threads})
            connection.register("raw_lines_loaded", self._raw_lines())
            connection.execute(f"CREATE VIEW {RAW_TABLE} AS SELECT * FROM raw_lines_loaded")
            connection.execute(self._dlq_view())
            self._connection = connection
        return self._connection

    def _raw_lines(self) -> Any:
        """Every line of every raw object, decoded as Athena's text SerDe does.

        Read in Python rather than with DuckDB's CSV reader: the archive keeps the bytes
        producers sent, invalid UTF-8 included, which the reader rejects (failing the whole
        query) or skips (losing the line). Here such bytes become U+FFFD and the line stays.
        """
        import pyarrow as pa

        columns: dict[str, list[str]] = {"line": [], "year": [], "month": [], "day": [], "hour": []}
        for path in sorted(self.root.glob("raw/year=*/month=*/day=*/hour=*/*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            lines = data.decode("utf-8", errors="replace").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            partition = [part.split("=", 1)[1] for part in path.parts[-5:-1]]
            columns["line"].extend(lines)
            for name, value in zip(("year", "month", "day", "hour"), partition, strict=True):
                columns[name].extend([value] * len(lines))
        return pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()})

    def _dlq_view(self) -> str:
        dlq_glob = self.root / "dlq" / "*" / "*" / "*" / "*" / "*.json"
        parts = ", ".join(
            f"regexp_extract(filename, '{_DLQ_HOUR}', {i}) AS {name}"
            for i, name in enumerate(("year", "month", "day", "hour"), start=1)
        )
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in DLQ_COLUMNS)
        if not any(self.root.glob("dlq/*/*/*/*/*.json")):
            empty = ", ".join(f"NULL AS {c}" for c in (*DLQ_COLUMNS, "year", "month", "day", "hour"))
            return f"CREATE VIEW {DLQ_TABLE} AS SELECT {empty} WHERE false"
        return (
            f"CREATE VIEW {DLQ_TABLE} AS SELECT {', '.join(DLQ_COLUMNS)}, {parts} FROM read_json("
            f"'{dlq_glob}', columns = {{{columns}}}, format = 'auto', filename = true)"
        )

    def run(self, queries: Sequence[str]) -> list[list[Row]]:
        connection = self.connection()
        results = []
        for query in queries:
            try:
                cursor = connection.execute(to_duckdb(query))
            except Exception as error:  # duckdb.Error has no stable subclass for all causes
                raise QueryError(f"duckdb: {error}") from error
            names = [d[0] for d in cursor.description]
            results.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
        return results


_ATHENA_TYPES: Final = {
    "tinyint": int,
    "smallint": int,
    "integer": int,
    "bigint": int,
    "double": float,
    "float": float,
    "real": float,
    "decimal": float,
    "boolean": lambda v: v == "true",
}


@dataclass
class AthenaEngine:
    """Athena through one workgroup (its output location, encryption and scan limit apply).

    Queries start together and are polled until all finish: a run takes as long as its
    slowest query, not the sum.
    """

    client: AthenaClient
    workgroup: str
    database: str
    name: str = "athena"
    poll_seconds: float = 1.0
    timeout_seconds: float = 600.0

    def run(self, queries: Sequence[str]) -> list[list[Row]]:
        ids = [
            self.client.start_query_execution(
                QueryString=query,
                QueryExecutionContext={"Database": self.database},
                WorkGroup=self.workgroup,
            )["QueryExecutionId"]
            for query in queries
        ]
        self._wait(ids)
        return [self._rows(query_id) for query_id in ids]

    def _wait(self, ids: list[str]) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        pending = set(ids)
        while pending:
            # One call for all pending queries (up to 50 ids): polling each id would spend
            # Athena's per-account GetQueryExecution rate on a loop.
            response = self.client.batch_get_query_execution(QueryExecutionIds=sorted(pending))
            for execution in response["QueryExecutions"]:
                query_id, status = execution["QueryExecutionId"], execution["Status"]
                state = status["State"]
                if state == "SUCCEEDED":
                    pending.discard(query_id)
                elif state in ("FAILED", "CANCELLED"):
                    reason = status.get("StateChangeReason", state)
                    raise QueryError(f"athena query {query_id} {state.lower()}: {reason}")
            for missing in response.get("UnprocessedQueryExecutionIds", []):
                raise QueryError(f"athena query {missing['QueryExecutionId']}: {missing.get('ErrorMessage')}")
            if pending:
                if time.monotonic() > deadline:
                    for query_id in pending:
                        self.client.stop_query_execution(QueryExecutionId=query_id)
                    raise QueryError(
                        f"athena: {len(pending)} queries still running after {self.timeout_seconds:.0f} s"
                    )
                time.sleep(self.poll_seconds)

    def _rows(self, query_id: str) -> list[Row]:
        rows: list[Row] = []
        names: list[str] = []
        casts: list[Any] = []
        paginator = self.client.get_paginator("get_query_results")
        first = True
        for page in paginator.paginate(QueryExecutionId=query_id):
            result_set = page["ResultSet"]
            if not names:
                info = result_set["ResultSetMetadata"]["ColumnInfo"]
                names = [c["Name"] for c in info]
                casts = [_ATHENA_TYPES.get(c["Type"], str) for c in info]
            data = result_set["Rows"]
            if first:  # the first row of the first page repeats the column names
                data, first = data[1:], False
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append(
                    {
                        n: (None if v is None else cast(v))
                        for n, v, cast in zip(names, values, casts, strict=True)
                    }
                )
        return rows
