"""The knowledge base: runbooks and past incidents as markdown files with front matter.

A file looks like this (``lambdas/knowledge_base/{runbooks,incidents}/<id>.md``)::

    ---
    id: rb-db-connection-pool-exhaustion
    source: runbook
    title: Database connection pool exhausted (HikariCP)
    service: orders-api
    fingerprint: 3f9c0a7be41d2c55
    tags: [database, hikaricp, postgres]
    runbook_url: https://runbooks.example.com/db/connection-pool
    created_at: 2025-03-14
    ---
    ## Symptoms
    ...
    ## Root cause
    ...
    ## Resolution
    ...

The front matter is deliberately not YAML: one ``key: value`` per line, lists only as
``[a, b]``, no nesting. A strict little format is enough here and every mistake in it is
reported with its file and line instead of being read as something else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

KnowledgeSource = Literal["runbook", "incident"]
REQUIRED_SECTIONS = ("Symptoms", "Root cause", "Resolution")
FRONT_MATTER_KEYS = frozenset(
    {"id", "source", "title", "service", "fingerprint", "tags", "runbook_url", "created_at"}
)
_KEY_LINE = re.compile(r"^(?P<key>[a-z_]+):(?:\s+(?P<value>.*))?$")


class KnowledgeBaseError(ValueError):
    """A knowledge-base file (or item) that cannot be read; the message names it."""


class KnowledgeEntry(BaseModel):
    """One runbook or resolved past incident, as indexed in Milvus."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:#-]{0,127}$")
    source: KnowledgeSource
    title: str = Field(min_length=3, max_length=300)
    service: str | None = Field(None, max_length=120)
    fingerprint: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    symptoms: str = Field(min_length=1, max_length=20_000)
    root_cause: str = Field(min_length=1, max_length=6_000)
    resolution: str = Field(min_length=1, max_length=6_000)
    runbook_url: str | None = Field(None, max_length=500, pattern=r"^https?://\S+$")
    tags: tuple[str, ...] = ()
    created_at: datetime

    @field_validator("created_at", mode="before")
    @classmethod
    def _aware(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return f"{value}T00:00:00Z"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if isinstance(value, Iterable) and not isinstance(value, str):
            return tuple(sorted({str(tag).strip().lower() for tag in value if str(tag).strip()}))
        return value

    @field_validator("service", "fingerprint", "runbook_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def text_for_embedding(self) -> str:
        """What the vector stands for: how the problem looks, named and tagged.

        Queries are incident descriptions and log lines, so the symptoms lead; the title,
        tags and root cause add the vocabulary people use for the same problem. The
        resolution is left out: its steps ("restart", "roll back") are alike across
        unrelated problems and would only blur the vectors.
        """
        parts = [self.title]
        if self.service:
            parts.append(f"Service: {self.service}")
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags))
        parts.append(f"Symptoms: {self.symptoms}")
        parts.append(f"Root cause: {self.root_cause}")
        return "\n".join(parts)

    def content_hash(self) -> str:
        """Changes whenever anything stored or embedded changes (idempotent upserts)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _parse_value(raw: str, where: str) -> str | list[str]:
    raw = raw.strip()
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise KnowledgeBaseError(f"{where}: a list must be written [a, b, c] on one line")
        return [_unquote(item) for item in raw[1:-1].split(",") if item.strip()]
    return _unquote(raw)


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def parse_front_matter(lines: list[str], path: Path) -> tuple[dict[str, str | list[str]], int]:
    """The front matter as a dict and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        raise KnowledgeBaseError(f"{path}:1: a knowledge file must start with a '---' front-matter line")
    fields: dict[str, str | list[str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            return fields, number
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _KEY_LINE.match(line.rstrip())
        where = f"{path}:{number}"
        if not match:
            raise KnowledgeBaseError(f"{where}: expected 'key: value', got {line.rstrip()!r}")
        key = match["key"]
        if key not in FRONT_MATTER_KEYS:
            raise KnowledgeBaseError(
                f"{where}: unknown front-matter key {key!r} (allowed: {', '.join(sorted(FRONT_MATTER_KEYS))})"
            )
        if key in fields:
            raise KnowledgeBaseError(f"{where}: duplicate front-matter key {key!r}")
        fields[key] = _parse_value(match["value"] or "", where)
    raise KnowledgeBaseError(f"{path}: front matter is not closed by a '---' line")


def parse_sections(lines: list[str], path: Path, first_line: int) -> dict[str, str]:
    """``## Heading`` sections of the body; text before the first heading is not allowed."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(lines, start=first_line):
        if line.startswith("## "):
            heading = line[3:].strip()
            if heading in sections:
                raise KnowledgeBaseError(f"{path}:{number}: duplicate section '## {heading}'")
            current = sections.setdefault(heading, [])
        elif current is not None:
            current.append(line)
        elif line.strip() and not line.startswith("# "):
            raise KnowledgeBaseError(f"{path}:{number}: text before the first '## Section' heading")
    return {heading: "\n".join(body).strip() for heading, body in sections.items()}


def parse_entry(text: str, path: Path) -> KnowledgeEntry:
    lines = text.splitlines()
    fields, body_start = parse_front_matter(lines, path)
    sections = parse_sections(lines[body_start:], path, body_start + 1)
    missing = [name for name in REQUIRED_SECTIONS if not sections.get(name)]
    if missing:
        raise KnowledgeBaseError(
            f"{path}: missing or empty section(s): {', '.join('## ' + name for name in missing)}"
        )
    unknown = sorted(set(sections) - set(REQUIRED_SECTIONS))
    if unknown:
        raise KnowledgeBaseError(
            f"{path}: unknown section(s) {unknown}; use only {', '.join(REQUIRED_SECTIONS)}"
        )
    try:
        return KnowledgeEntry.model_validate(
            {
                **fields,
                "symptoms": sections["Symptoms"],
                "root_cause": sections["Root cause"],
                "resolution": sections["Resolution"],
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise KnowledgeBaseError(f"{path}: {problems}") from exc


def scan_knowledge_base(directory: Path) -> tuple[list[KnowledgeEntry], list[str]]:
    """Every valid ``*.md`` under ``directory`` (recursively, sorted by id) and the problems.

    ``README.md`` files are documentation, not entries. All problems are collected so one
    run shows every broken file.
    """
    if not directory.is_dir():
        raise KnowledgeBaseError(f"knowledge base folder not found: {directory}")
    entries: dict[str, tuple[KnowledgeEntry, Path]] = {}
    problems: list[str] = []
    for path in sorted(directory.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            entry = parse_entry(path.read_text(encoding="utf-8"), path)
        except (KnowledgeBaseError, UnicodeDecodeError) as exc:
            problems.append(str(exc) if isinstance(exc, KnowledgeBaseError) else f"{path}: not UTF-8: {exc}")
            continue
        if entry.id in entries:
            problems.append(f"{path}: duplicate id {entry.id!r} (also in {entries[entry.id][1]})")
            continue
        expected_source = {"runbooks": "runbook", "incidents": "incident"}.get(path.parent.name)
        if expected_source and entry.source != expected_source:
            problems.append(f"{path}: source {entry.source!r} in the {path.parent.name}/ folder")
            continue
        entries[entry.id] = (entry, path)
    return [entries[key][0] for key in sorted(entries)], problems


def load_knowledge_base(directory: Path) -> list[KnowledgeEntry]:
    """Like :func:`scan_knowledge_base`, but any invalid file is an error."""
    entries, problems = scan_knowledge_base(directory)
    if problems:
        raise KnowledgeBaseError(f"{len(problems)} invalid knowledge file(s):\n" + "\n".join(problems))
    return entries


def default_knowledge_dir() -> Path:
    """``lambdas/knowledge_base`` in the repo; ``knowledge_base`` in the Lambda asset."""
    return Path(__file__).resolve().parents[2] / "knowledge_base"
