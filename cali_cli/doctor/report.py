"""What every doctor check returns, and how a report is printed (text or JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable here (e.g. no Grafana configured), never a problem


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""  # what to do about a warn/fail, as a command or a cdk.json change

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, Status.OK, detail)

    @classmethod
    def warn(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, Status.WARN, detail, fix)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, Status.FAIL, detail, fix)

    @classmethod
    def skip(cls, name: str, detail: str) -> Check:
        return cls(name, Status.SKIP, detail)


@dataclass(frozen=True)
class Report:
    target: str
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, target: str, checks: Iterable[Check]) -> Report:
        return cls(target, tuple(checks))

    @property
    def exit_code(self) -> int:
        """1 when any check failed; warnings alone do not fail a pipeline."""
        return 1 if any(check.status is Status.FAIL for check in self.checks) else 0

    def counts(self) -> dict[str, int]:
        return {status.value: sum(c.status is status for c in self.checks) for status in Status}

    def to_json(self) -> str:
        return json.dumps(
            {
                "target": self.target,
                "exit_code": self.exit_code,
                "counts": self.counts(),
                "checks": [{**asdict(check), "status": check.status.value} for check in self.checks],
            },
            indent=2,
        )

    def to_text(self) -> str:
        width = max((len(check.name) for check in self.checks), default=10)
        lines = [f"cali doctor: {self.target}"]
        for check in self.checks:
            lines.append(f"  {check.status.value:<4}  {check.name:<{width}}  {check.detail}")
            if check.fix and check.status in (Status.WARN, Status.FAIL):
                lines.append(f"  {'':<4}  {'':<{width}}  fix: {check.fix}")
        counts = self.counts()
        lines.append(
            f"{counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail, {counts['skip']} skipped"
        )
        return "\n".join(lines)
