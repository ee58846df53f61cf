"""Parsing the knowledge-base folder, and the bundled knowledge base itself."""
# ruff: noqa: E501  (real log lines, quoted whole)

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cali.knowledge.base import (
    KnowledgeBaseError,
    KnowledgeEntry,
    default_knowledge_dir,
    load_knowledge_base,
    parse_entry,
    scan_knowledge_base,
)

VALID = """\
---
id: rb-sample
source: runbook
title: Sample runbook
service: orders-api
fingerprint: 0123456789abcdef
tags: [Database, "pool", database]
runbook_url: https://runbooks.example.com/sample
created_at: 2025-01-02
---
## Symptoms
```
ERROR HikariPool-1 - Connection is not available
```
## Root cause
Pool too small.
## Resolution
1. Raise it.
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the bundled knowledge base -----------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> list[KnowledgeEntry]:
    return load_knowledge_base(default_knowledge_dir())


def test_bundled_knowledge_base_is_valid_and_large_enough(bundled: list[KnowledgeEntry]) -> None:
    assert len(bundled) >= 25
    assert len({entry.id for entry in bundled}) == len(bundled)
    assert {entry.source for entry in bundled} == {"runbook", "incident"}


def test_bundled_entries_have_real_sections_and_links(bundled: list[KnowledgeEntry]) -> None:
    for entry in bundled:
        assert len(entry.symptoms) > 150, entry.id
        assert len(entry.root_cause) > 80, entry.id
        assert len(entry.resolution) > 80, entry.id
        assert "```" in entry.symptoms, f"{entry.id}: symptoms should quote log lines"
        assert entry.runbook_url and entry.runbook_url.startswith("https://"), entry.id
        assert entry.tags, entry.id


def test_bundled_incidents_name_their_service_and_fingerprint(bundled: list[KnowledgeEntry]) -> None:
    incidents = [entry for entry in bundled if entry.source == "incident"]
    assert len(incidents) >= 8
    for entry in incidents:
        assert entry.service, entry.id
        assert entry.fingerprint and re.fullmatch(r"[0-9a-f]{16}", entry.fingerprint), entry.id


# The message part (what the consumer fingerprints) of each past incident's headline line.
INCIDENT_HEADLINES = {
    "inc-2025-04-orders-hikari-pool": "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    "inc-2025-06-checkout-oomkilled": 'Container "checkout" in pod "checkout-6b7d9f5c8-4hq2n" exceeded its memory limit, killing',
    "inc-2025-08-payments-cert-expired": 'processor client: Post "https://api.acquirer.example/v2/authorize": x509: certificate has expired or is not yet valid: current time 2025-08-14T00:00:03Z is after 2025-08-13T23:59:59Z',
    "inc-2025-09-search-flood-stage": "bulk request failed: cluster_block_exception: index [catalog-v7] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]",
    "inc-2025-10-notifications-dns-eai-again": "smtp send failed: Error: getaddrinfo EAI_AGAIN smtp-relay.internal",
    "inc-2025-11-cart-typeerror-deploy": "TypeError: Cannot read properties of undefined (reading 'price')",
    "inc-2026-01-billing-secret-rotation": 'invoice-run: psycopg.OperationalError: connection failed: FATAL:  password authentication failed for user "billing_svc"',
    "inc-2026-02-inventory-dynamodb-throttling": "reserve sku=VAL-ROSE-12 failed: An error occurred (ProvisionedThroughputExceededException) when calling the UpdateItem operation: The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "inc-2026-03-ledger-kafka-lag": "[Consumer clientId=ledger-1, groupId=ledger] consumer poll timeout has expired. This means the time between subsequent calls to poll() was longer than the configured max.poll.interval.ms",
    "inc-2026-04-reports-lambda-timeout": "Task timed out after 900.10 seconds",
    "inc-2026-05-shipping-redis-timeouts": "io.lettuce.core.RedisCommandTimeoutException: Command timed out after 1 second(s)",
}


def test_incident_fingerprints_match_the_current_fingerprint_algorithm(bundled: list[KnowledgeEntry]) -> None:
    """A stale fingerprint silently disables the exact-match boost in retrieval."""
    from cali.fingerprint import fingerprint

    incidents = {entry.id: entry for entry in bundled if entry.source == "incident"}
    assert set(INCIDENT_HEADLINES) == set(incidents)
    for entry_id, headline in INCIDENT_HEADLINES.items():
        entry = incidents[entry_id]
        assert headline in entry.symptoms, entry_id
        assert entry.fingerprint == fingerprint(headline).id, (
            f"{entry_id}: fingerprint {entry.fingerprint} is stale; the fingerprint algorithm now gives "
            f"{fingerprint(headline).id} for its headline: update the file's front matter"
        )


@pytest.mark.parametrize(
    "needle",
    [
        r"HikariPool",
        r"OOMKilled",
        r"OutOfMemoryError: Java heap space",
        r"504|upstream timed out",
        r"x509",
        r"ENOSPC|No space left on device",
        r"429|ThrottlingException",
        r"NXDOMAIN|EAI_AGAIN|UnknownHostException",
        r"NullPointerException",
        r"TypeError: Cannot read properties of undefined",
        r"IteratorAge|behind the tip of the stream",
        r"max\.poll\.interval\.ms",
        r"AccessDenied|password authentication failed",
        r"maxmemory|RedisCommandTimeoutException",
        r"[Dd]eadlock",
        r"SlowDown",
        r"CrashLoopBackOff",
        r"Task timed out after",
        r"ApproximateAgeOfOldestMessage|queue .* messages visible",
        r"RequestTimeTooSkewed",
        r"SSLHandshakeException",
    ],
)
def test_bundled_knowledge_base_covers_the_common_failures(
    bundled: list[KnowledgeEntry], needle: str
) -> None:
    assert any(re.search(needle, entry.symptoms) for entry in bundled), needle


def test_files_sit_in_the_folder_of_their_source() -> None:
    for path in default_knowledge_dir().glob("*/*.md"):
        entry = parse_entry(path.read_text(encoding="utf-8"), path)
        assert path.parent.name == entry.source + "s"
        assert path.stem == entry.id


# --- the parser -------------------------------------------------------------------------


def test_parse_valid_entry(tmp_path: Path) -> None:
    entry = parse_entry(VALID, tmp_path / "x.md")
    assert entry.id == "rb-sample"
    assert entry.tags == ("database", "pool")
    assert entry.created_at == datetime(2025, 1, 2, tzinfo=UTC)
    assert entry.symptoms.startswith("```") and "HikariPool" in entry.symptoms
    assert entry.root_cause == "Pool too small."
    assert entry.resolution == "1. Raise it."


def test_text_for_embedding_describes_the_problem_not_the_fix(tmp_path: Path) -> None:
    text = parse_entry(VALID, tmp_path / "x.md").text_for_embedding()
    assert "Sample runbook" in text and "HikariPool" in text and "database, pool" in text
    assert "Pool too small." in text
    assert "Raise it" not in text


def test_content_hash_follows_content(tmp_path: Path) -> None:
    first = parse_entry(VALID, tmp_path / "x.md")
    assert first.content_hash() == parse_entry(VALID, tmp_path / "y.md").content_hash()
    changed = parse_entry(VALID.replace("Raise it.", "Raise it to 40."), tmp_path / "x.md")
    assert changed.content_hash() != first.content_hash()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (VALID.replace("---\nid:", "id:", 1), "must start with a '---'"),
        ("---\nid: rb-x\ntitle: Never closed\n", "not closed"),
        (VALID.replace("created_at: 2025-01-02\n---", "created_at: 2025-01-02"), "got '```'"),
        (VALID.replace("service: orders-api", "owner: team-a"), "unknown front-matter key 'owner'"),
        (VALID.replace("service: orders-api", "title: again"), "duplicate front-matter key 'title'"),
        (VALID.replace("service: orders-api", "  service orders-api"), "expected 'key: value'"),
        (VALID.replace('tags: [Database, "pool", database]', "tags: [a, b"), "list must be written"),
        (VALID.replace("## Root cause\nPool too small.\n", ""), "missing or empty section(s): ## Root cause"),
        (VALID.replace("## Resolution\n1. Raise it.\n", "## Resolution\n\n"), "## Resolution"),
        (VALID + "## Timeline\n10:00 paged\n", "unknown section(s) ['Timeline']"),
        (VALID.replace("## Root cause", "## Symptoms"), "duplicate section"),
        (VALID.replace("---\n## Symptoms", "---\nstray text\n## Symptoms"), "text before the first"),
        (VALID.replace("id: rb-sample", "id: rb sample!"), "id:"),
        (VALID.replace("source: runbook", "source: wiki"), "source:"),
        (VALID.replace("created_at: 2025-01-02", "created_at: yesterday"), "created_at:"),
        (VALID.replace("fingerprint: 0123456789abcdef", "fingerprint: XYZ"), "fingerprint:"),
        (VALID.replace("https://runbooks.example.com/sample", "runbooks/sample"), "runbook_url:"),
    ],
)
def test_parse_errors_name_the_file_and_problem(tmp_path: Path, broken: str, message: str) -> None:
    with pytest.raises(KnowledgeBaseError, match=re.escape(message)) as caught:
        parse_entry(broken, tmp_path / "broken.md")
    assert "broken.md" in str(caught.value)


def test_load_reports_every_broken_file_duplicate_and_misplaced_source(tmp_path: Path) -> None:
    _write(tmp_path, "runbooks/rb-sample.md", VALID)
    _write(tmp_path, "runbooks/copy.md", VALID)
    _write(tmp_path, "incidents/rb-other.md", VALID.replace("rb-sample", "rb-other"))
    _write(tmp_path, "runbooks/broken.md", "no front matter")
    _write(tmp_path, "README.md", "# How to write entries")
    entries, problems = scan_knowledge_base(tmp_path)
    assert [entry.id for entry in entries] == ["rb-sample"]
    assert len(problems) == 3
    joined = "\n".join(problems)
    assert "duplicate id 'rb-sample'" in joined
    assert "source 'runbook' in the incidents/ folder" in joined
    assert "broken.md:1" in joined
    with pytest.raises(KnowledgeBaseError, match="3 invalid knowledge file"):
        load_knowledge_base(tmp_path)


def test_load_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="not found"):
        load_knowledge_base(tmp_path / "nope")
