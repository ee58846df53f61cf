"""The demo report as a person reads it in a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from cali_local.pipeline import PipelineReport

WIDTH = 100


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return out


def _title(text: str) -> list[str]:
    return ["", text, "=" * len(text)]


def render_report(report: PipelineReport, *, max_slack: int = 6) -> str:
    lines = [f"CALI local pipeline: environment {report.environment}, scenario {report.scenario}"]
    lines += [f"  {name:<11} {value}" for name, value in report.services.items()]

    lines += _title("Records in and out per stage")
    lines += _table(
        ["stage", "in", "out", "detail"],
        [(s.stage, s.records_in, s.records_out, s.detail) for s in report.stages],
    )
    lines.append("")
    for check, ok in report.conservation.items():
        lines.append(f"  [{'ok' if ok else 'FAILED'}] {check}")

    if report.input_formats:
        total = sum(report.input_formats.values())
        lines += _title(f"Input formats: {total} events, as the log consumer read them")
        rows = sorted(report.input_formats.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += _table(["format", "events", "share"], [(k, v, f"{v / total:.1%}") for k, v in rows])
        sources = ", ".join(f"{k} {v}" for k, v in sorted(report.input_level_sources.items()))
        lines += ["", f"  levels from: {sources}"]
        if report.input_inferred_levels:
            inferred = ", ".join(f"{k} {v}" for k, v in sorted(report.input_inferred_levels.items()))
            lines.append(f"  inferred from the words of level-less lines (docs/ingest.md): {inferred}")

    lines += _title(f"Dead-letter queue: {len(report.dlq)} records (s3://<archive>/dlq/)")
    if report.dlq_by_reason:
        by_count = sorted(report.dlq_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        lines += _table(["reason", "records"], by_count)
        sample = report.dlq[0]
        lines += ["", f"  e.g. {sample.key}", f"       reason={sample.reason} error={sample.error[:80]}"]
        lines.append(f"       original bytes: {sample.preview!r}")
        lines.append("  Inspect and replay them with `cali dlq list` and `cali dlq replay`.")
    else:
        lines.append("  (empty)")

    lines += _title(f"Incidents analysed: {len(report.incidents)}")
    if report.incidents:
        lines += _table(
            ["kind", "level", "services", "count", "degraded", "template"],
            [
                (
                    i.get("kind"),
                    i.get("level"),
                    ",".join(i.get("services", []))[:24],
                    i.get("window_count", i.get("count")),
                    "yes" if i.get("degraded") else "no",
                    str(i.get("template", ""))[:52],
                )
                for i in report.incidents
            ],
        )

    shown = report.slack[:max_slack]
    lines += _title(f"Slack: {len(report.slack)} messages (showing {len(shown)})")
    for number, message in enumerate(shown, 1):
        where = f" (thread reply to {message.thread_ts})" if message.thread_ts else ""
        lines += ["", f"--- message {number}{where} " + "-" * 40]
        lines += [f"  {line}" for line in message.rendered.splitlines()]

    if report.lifecycle:
        lines += _title("Incident lifecycle (signed Slack requests -> slack_interactions, worker, stream)")
        lines += [f"  {line}" for line in report.lifecycle]

    lines += _title("Latency")
    lines += _table(
        ["stage", "invocations", "p50 ms", "p95 ms", "max ms"],
        [(s.stage, s.invocations, s.p50_ms, s.p95_ms, s.max_ms) for s in report.latency],
    )
    if report.seconds_to_first_alert is not None:
        lines.append(f"\n  first record into Kinesis -> first Slack alert: {report.seconds_to_first_alert} s")
    lines.append(f"  whole run: {report.total_seconds} s")
    if report.notes:
        lines += _title("Notes")
        lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)
