"""The day's quality report: one model, rendered as JSON, HTML, text, OpenSearch documents and Slack."""

from __future__ import annotations

import html
from datetime import date, datetime
from typing import Any, Final

from pydantic import BaseModel

from cali.quality.checks import Unexpected

#: Rows kept per check in the report (the full result stays queryable in the archive).
MAX_ROWS: Final = 200
QUALITY_INDEX_PREFIX: Final = "cali-quality-"


def quality_index_name(day: date) -> str:
    """One index per month, like incidents: few documents, a year of history is cheap."""
    return f"{QUALITY_INDEX_PREFIX}{day:%Y-%m}"


class CheckResult(BaseModel):
    name: str
    title: str
    rule: str = ""
    passed: bool
    row_count: int
    rows: list[dict[str, Any]]
    failures: list[Unexpected]


class QualityReport(BaseModel):
    day: date
    environment: str
    engine: str
    generated_at: datetime
    query_seconds: float
    judge_seconds: float
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def s3_prefix(self, prefix: str = "quality/") -> str:
        return f"{prefix}{self.environment}/{self.day:%Y/%m/%d}/"

    def to_text(self) -> str:
        lines = [
            f"CALI data quality, {self.day} ({self.environment}, {self.engine}): "
            f"{len(self.checks) - len(self.failed)}/{len(self.checks)} checks passed "
            f"(queries {self.query_seconds:.1f} s, checks {self.judge_seconds:.1f} s)",
        ]
        for check in self.checks:
            mark = "PASS" if check.passed else "FAIL"
            lines.append(f"  {mark}  {check.name:<17} {check.title}  [{check.row_count} rows]")
            if not check.passed and check.rule:
                lines.append(f"        fails when {check.rule}")
            for failure in check.failures:
                lines.append(f"        {_describe(failure)}")
                lines.extend(f"          {_row_text(row)}" for row in failure.rows[:10])
                if len(failure.rows) > 10:
                    lines.append(f"          ... {len(failure.rows) - 10} more")
        return "\n".join(lines)

    def to_html(self) -> str:
        sections = []
        for check in self.checks:
            status = "pass" if check.passed else "fail"
            failures = "".join(
                f"<p class='why'>{html.escape(_describe(f))}</p>{_table(f.rows)}" for f in check.failures
            )
            sections.append(
                f"<section class='{status}'><h2>{status.upper()} &middot; {html.escape(check.name)}</h2>"
                f"<p>{html.escape(check.title)} ({check.row_count} rows)</p>"
                f"<p>Fails when {html.escape(check.rule)}.</p>{failures}"
                f"<details><summary>all rows</summary>{_table(check.rows)}</details></section>"
            )
        title = f"CALI data quality {self.day} ({html.escape(self.environment)})"
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:70em}"
            "section{border-left:6px solid #2a2;padding:.2em 1em;margin:1em 0}"
            "section.fail{border-color:#c22}table{border-collapse:collapse;font-size:90%}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.why{font-weight:bold}"
            f"</style></head><body><h1>{title}</h1>"
            f"<p>{len(self.checks) - len(self.failed)} of {len(self.checks)} checks passed; engine "
            f"{html.escape(self.engine)}; generated {self.generated_at:%Y-%m-%d %H:%M} UTC.</p>"
            + "".join(sections)
            + "</body></html>\n"
        )

    def opensearch_documents(self) -> list[tuple[str, dict[str, Any]]]:
        """(document id, document) per check: a rerun of the same day overwrites, never doubles."""
        documents = []
        for check in self.checks:
            documents.append(
                (
                    f"{self.environment}-{self.day}-{check.name}",
                    {
                        "@timestamp": f"{self.day}T00:00:00Z",
                        "generated_at": self.generated_at.isoformat(),
                        "environment": self.environment,
                        "engine": self.engine,
                        "check": check.name,
                        "title": check.title,
                        "passed": check.passed,
                        "status": "pass" if check.passed else "fail",
                        "row_count": check.row_count,
                        "unexpected_count": sum(f.unexpected_count for f in check.failures),
                        "summary": "; ".join(_describe(f) for f in check.failures),
                    },
                )
            )
        return documents

    def slack_text(self, report_url: str | None = None) -> str:
        lines = [
            f":warning: *CALI data quality {self.day}* ({self.environment}): "
            f"{len(self.failed)} check(s) failed"
        ]
        for check in self.failed:
            lines.append(f"• *{check.name}*: {check.title} (fails when {check.rule})")
            for failure in check.failures:
                shown = ", ".join(_row_text(row) for row in failure.rows[:3])
                more = f" (+{len(failure.rows) - 3} more)" if len(failure.rows) > 3 else ""
                lines.append(f"    {_describe(failure)}{': ' + shown if shown else ''}{more}")
        if report_url:
            lines.append(f"Report: {report_url}")
        return "\n".join(lines)


def _describe(failure: Unexpected) -> str:
    bounds = {k: v for k, v in failure.bounds.items() if v is not None}
    if failure.observed is not None:
        return f"{failure.expectation} {bounds}: observed {failure.observed}"
    return f"{failure.expectation} {bounds}: {failure.unexpected_count} unexpected row(s)"


def _row_text(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in row.items())


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
