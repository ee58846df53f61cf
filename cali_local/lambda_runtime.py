"""What the Lambda runtime does around a handler that the local pipeline must do too.

CloudWatch receives the handlers' metrics as Embedded Metric Format lines on stdout and
their logs as JSON lines; locally the metrics are summed for the report and the logs go
to a file, so the terminal shows the report and not thousands of log lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class EmfMetrics:
    """Sums of every EMF metric seen, by Powertools ``service`` dimension then metric name."""

    totals: dict[str, dict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )

    def ingest(self, text: str) -> None:
        for line in text.splitlines():
            if '"_aws"' not in line:
                continue
            try:
                blob = json.loads(line)
            except ValueError:
                continue
            service = str(blob.get("service", "unknown"))
            for directive in blob["_aws"].get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    value = blob.get(metric["Name"], 0)
                    values = value if isinstance(value, list) else [value]
                    self.totals[service][metric["Name"]] += sum(float(v) for v in values)

    def snapshot(self) -> EmfMetrics:
        """A frozen copy: later invocations keep adding to ``self``, not to the copy."""
        copy = EmfMetrics()
        for service, metrics in self.totals.items():
            copy.totals[service].update(metrics)
        return copy

    def get(self, service: str, name: str) -> int:
        return int(self.totals.get(service, {}).get(name, 0))

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {service: dict(metrics) for service, metrics in self.totals.items()}


def with_metrics_capture(handler: Handler, metrics: EmfMetrics, log: IO[str] | None = None) -> Handler:
    """Wrap a handler so that what it prints (EMF blobs) is summed instead of shown."""

    def wrapped(event: dict[str, Any], context: Any) -> Any:
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
                # An invocation that had nothing to count is normal here; Lambda logs it too.
                warnings.filterwarnings("ignore", message="No application metrics to publish")
                return handler(event, context)
        finally:
            printed = buffer.getvalue()
            metrics.ingest(printed)
            if log is not None:
                log.write(printed)

    return wrapped


@contextlib.contextmanager
def lambda_logs_to(path: Path) -> Iterator[IO[str]]:
    """Send every stdout log handler (Powertools Logger binds one at import) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        moved: list[logging.StreamHandler[Any]] = []
        loggers = [
            logging.getLogger(),
            *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
        ]
        for logger in loggers:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (
                    sys.stdout,
                    sys.__stdout__,
                ):
                    handler.setStream(log)
                    moved.append(handler)
        # Module loggers without a handler would fall back to stderr (logging.lastResort).
        root_handler = logging.StreamHandler(log)
        logging.getLogger().addHandler(root_handler)
        try:
            yield log
        finally:
            logging.getLogger().removeHandler(root_handler)
            for handler in moved:
                handler.setStream(sys.stdout)
