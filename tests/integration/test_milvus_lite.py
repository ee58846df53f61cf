"""The knowledge store, the sync and the knowledge_sync handler on a real Milvus Lite file.

One Milvus Lite database per module (each file has its own server), collections per test
topic; the real local embedder, loaded once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cali.analysis.embeddings import EmbeddingDimensionError, LocalOnnxEmbedder
from cali.knowledge.base import KnowledgeEntry, default_knowledge_dir
from cali.knowledge.store import KnowledgeStore
from cali.knowledge.sync import sync_knowledge
from cali_testing.knowledge import InMemoryResolvedIncidentSource

pytestmark = pytest.mark.xdist_group("milvus")


class CountingEmbedder:
    """The real local embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: LocalOnnxEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dim = inner.dim
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def db_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "knowledge.db")


@pytest.fixture(scope="module")
def local() -> LocalOnnxEmbedder:
    return LocalOnnxEmbedder()


@pytest.fixture
def embedder(local: LocalOnnxEmbedder) -> CountingEmbedder:
    return CountingEmbedder(local)


@pytest.fixture(scope="module")
def store(db_uri: str) -> Iterator[KnowledgeStore]:
    knowledge = KnowledgeStore.connect(db_uri, collection="store_tests", dim=384)
    knowledge.ensure_collection()
    yield knowledge
    knowledge.close()


def _entry(entry_id: str, title: str, symptoms: str, **extra: Any) -> KnowledgeEntry:
    return KnowledgeEntry(
        id=entry_id,
        source=extra.pop("source", "runbook"),
        title=title,
        symptoms=symptoms,
        root_cause=extra.pop("root_cause", "See symptoms."),
        resolution=extra.pop("resolution", "Follow the runbook."),
        created_at=datetime(2025, 5, 1, tzinfo=UTC),
        **extra,
    )


POOL = _entry(
    "t-pool",
    "Connection pool exhausted",
    "HikariPool-1 - Connection is not available, request timed out after 30000ms",
    service="orders-api",
    fingerprint="1111111111111111",
    source="incident",
)
CERT = _entry("t-cert", "Certificate expired", "x509: certificate has expired or is not yet valid")
DISK = _entry("t-disk", "Disk full", "ENOSPC: no space left on device, write", service="billing")


def test_ensure_collection_is_idempotent_and_checks_the_dimension(store: KnowledgeStore) -> None:
    store.ensure_collection()
    wrong = KnowledgeStore(store._client, collection=store.collection, dim=768)
    with pytest.raises(EmbeddingDimensionError) as caught:
        wrong.ensure_collection()
    assert "768" in str(caught.value) and "384" in str(caught.value)
    assert "store_tests" in str(caught.value)


def test_upsert_embeds_only_what_changed(store: KnowledgeStore, embedder: CountingEmbedder) -> None:
    first = store.upsert([POOL, CERT, DISK], embedder)
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    assert embedder.texts == 3

    again = store.upsert([POOL, CERT, DISK], embedder)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert embedder.texts == 3  # nothing re-embedded

    edited = CERT.model_copy(update={"resolution": "Renew with cert-manager."})
    third = store.upsert([POOL, edited, DISK], embedder)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 2)
    assert embedder.texts == 4
    rows = {row["id"]: row for row in store.list_rows()}
    assert rows["t-cert"]["resolution"] == "Renew with cert-manager."
    assert rows["t-pool"]["origin"] == "kb_folder" and rows["t-pool"]["created_at"] == 1746057600


def test_upsert_refuses_an_embedder_of_another_size(store: KnowledgeStore) -> None:
    class Wide:
        model_name, dim = "wide", 1536

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            raise AssertionError("must not be called")

    with pytest.raises(EmbeddingDimensionError, match="1536"):
        store.upsert([POOL], Wide())


def _query(embedder: CountingEmbedder, text: str) -> list[float]:
    return embedder.embed([text])[0]


def test_search_ranks_by_meaning(store: KnowledgeStore, embedder: CountingEmbedder) -> None:
    store.upsert([POOL, CERT, DISK], embedder)
    hits = store.search(
        _query(embedder, "all database connections busy, request waited 30 s"), top_k=3, min_score=-1
    )
    assert hits[0].id == "t-pool"
    assert hits[0].source == "incident" and hits[0].service == "orders-api"
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_search_filters_and_similarity_floor(store: KnowledgeStore, embedder: CountingEmbedder) -> None:
    store.upsert([POOL, CERT, DISK], embedder)
    vector = _query(embedder, "volume is 100% full, writes fail")
    # service filter keeps that service and service-agnostic entries
    assert {h.id for h in store.search(vector, top_k=5, min_score=-1, service="billing")} == {
        "t-disk",
        "t-cert",
    }
    strict = store.search(vector, top_k=5, min_score=-1, service="billing", include_generic=False)
    assert [h.id for h in strict] == ["t-disk"]
    assert [h.id for h in store.search(vector, top_k=5, min_score=-1, source="incident")] == ["t-pool"]
    assert store.search(vector, top_k=5, min_score=-1, service='x" or id != "') == [
        h for h in store.search(vector, top_k=5, min_score=-1) if h.service is None
    ]  # quotes in a value cannot widen the filter
    for odd in ["billing\x1b[0m", "a\\b\u0007", 'tab\tnew\nline"\\']:
        # A control character in a service name (ANSI colours) must not break the filter
        # expression, which would drop retrieval and the LLM analysis for the incident.
        assert {h.id for h in store.search(vector, top_k=5, min_score=-1, service=odd)} == {"t-cert"}
    # the floor drops weak matches entirely
    floor = store.search(_query(embedder, "the recipe needs two eggs and flour"), top_k=3, min_score=0.5)
    assert floor == []


def test_fingerprint_match_is_boosted_even_below_the_floor(
    store: KnowledgeStore, embedder: CountingEmbedder
) -> None:
    store.upsert([POOL, CERT, DISK], embedder)
    vector = _query(embedder, "certificate expired on the payments endpoint")
    plain = store.search(vector, top_k=3, min_score=0.3)
    assert "t-pool" not in [h.id for h in plain]
    boosted = store.search(vector, top_k=3, min_score=0.3, fingerprint="1111111111111111")
    assert "t-pool" in [h.id for h in boosted]


def test_delete(store: KnowledgeStore, embedder: CountingEmbedder) -> None:
    gone = _entry("t-gone", "Temporary", "will be deleted")
    store.upsert([gone], embedder)
    assert store.delete(["t-gone"]) == 1
    assert "t-gone" not in {row["id"] for row in store.list_rows()}
    assert store.delete([]) == 0


# --- the sync over the real knowledge base ----------------------------------------------


@pytest.fixture(scope="module")
def kb_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("kb") / "knowledge_base"
    shutil.copytree(default_knowledge_dir(), target)
    return target


RESOLVED_ITEM = {
    "pk": "incident#c22a646fc783fe48-20260601T0900",
    "sk": "meta",
    "status": "resolved",
    "title": "inventory-api pool exhausted by batch import",
    "fingerprint": "c22a646fc783fe48",
    "service": "inventory-api",
    "template": "<*> - Connection is not available, request timed out after <*>",
    "root_cause": "nightly import held connections in long transactions",
    "resolution": "commit every 500 rows; moved the import to a replica",
    "resolved_at": "2026-06-01T10:00:00Z",
}


def test_sync_indexes_folder_and_resolved_incidents_idempotently(
    db_uri: str, kb_copy: Path, embedder: CountingEmbedder
) -> None:
    knowledge = KnowledgeStore.connect(db_uri, collection="sync_tests", dim=384)
    incidents = InMemoryResolvedIncidentSource(
        [RESOLVED_ITEM, {**RESOLVED_ITEM, "pk": "incident#broken", "root_cause": ""}]
    )
    report = sync_knowledge(knowledge, embedder, kb_dir=kb_copy, incidents=incidents)
    files = len(list(kb_copy.glob("*/*.md")))
    assert report.kb_entries == files >= 25 and report.kb.inserted == files
    assert (report.incidents_read, report.incidents.inserted, report.incidents_invalid) == (1, 1, 1)
    assert "incident#broken" in report.problems[0]

    before = embedder.texts
    again = sync_knowledge(knowledge, embedder, kb_dir=kb_copy, incidents=incidents)
    assert (again.kb.unchanged, again.incidents.unchanged, again.pruned) == (files, 1, 0)
    assert embedder.texts == before

    hits = knowledge.search(
        _query(embedder, "HikariPool-2 - Connection is not available, request timed out after 20000ms"),
        top_k=5,
        min_score=0.3,
    )
    assert {"rb-db-connection-pool-exhaustion", "incident#c22a646fc783fe48-20260601T0900"} <= {
        h.id for h in hits
    }

    # a broken file is reported, indexed entries stay (no pruning on a partial read) ...
    removed = kb_copy / "runbooks" / "rb-clock-skew.md"
    text = removed.read_text()
    removed.write_text("not a knowledge file")
    partial = sync_knowledge(knowledge, embedder, kb_dir=kb_copy)
    assert partial.kb_invalid == 1 and partial.pruned == 0
    assert "rb-clock-skew" in {row["id"] for row in knowledge.list_rows()}
    # ... and a deleted file's entry is removed, but never a resolved incident
    removed.unlink()
    pruned = sync_knowledge(knowledge, embedder, kb_dir=kb_copy)
    assert pruned.pruned == 1
    ids = {row["id"] for row in knowledge.list_rows()}
    assert "rb-clock-skew" not in ids and RESOLVED_ITEM["pk"] in ids
    removed.write_text(text)
    # An empty folder (a packaging or path mistake) must not wipe the knowledge base.
    empty = kb_copy.parent / "empty-kb"
    empty.mkdir()
    nothing = sync_knowledge(knowledge, embedder, kb_dir=empty)
    assert nothing.pruned == 0 and nothing.kb_entries == 0 and "no knowledge file" in nothing.problems[0]
    assert "rb-db-connection-pool-exhaustion" in {row["id"] for row in knowledge.list_rows()}
    knowledge.close()


# --- the Lambda handler ------------------------------------------------------------------


@dataclass
class LambdaContext:
    function_name: str = "cali-test-knowledge-sync"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:cali-test-knowledge-sync"
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"


def test_handler_syncs_with_configuration_from_the_environment(
    db_uri: str, kb_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from knowledge_sync import handler as module

    from cali.contracts.settings import knowledge_sync_settings

    monkeypatch.setenv("LOCAL_MILVUS_URI", db_uri)
    monkeypatch.setenv("MILVUS_COLLECTION", "handler_tests")
    monkeypatch.setenv("KNOWLEDGE_DIR", str(kb_copy))
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CALI")
    knowledge_sync_settings.cache_clear()
    module.dependencies.cache_clear()  # a new execution environment
    monkeypatch.setattr(
        module, "incident_source", lambda settings: InMemoryResolvedIncidentSource([RESOLVED_ITEM])
    )
    try:
        first = module.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext())
        files = len(list(kb_copy.glob("*/*.md")))
        assert first["kb"] == {"inserted": files, "updated": 0, "unchanged": 0}
        assert first["incidents"] == {"inserted": 1, "updated": 0, "unchanged": 0}
        second = module.handler({}, LambdaContext())
        assert second["kb"]["unchanged"] == files and second["incidents"]["unchanged"] == 1
        out = capsys.readouterr().out
        assert '"KnowledgeEntriesUpserted"' in out and '"Namespace":"CALI"' in out.replace(" ", "")
    finally:
        module.dependencies().close()
        module.dependencies.cache_clear()
        knowledge_sync_settings.cache_clear()


# --- the operator CLI --------------------------------------------------------------------


def test_cli_sync_search_list(
    db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from cali_cli.commands import knowledge

    parser = argparse.ArgumentParser(prog="cali")
    knowledge.register(parser.add_subparsers(dest="command", required=True))

    def cali(*argv: str) -> tuple[int, str, str]:
        args = parser.parse_args(["knowledge", *argv])
        code = int(args.func(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    monkeypatch.delenv("LOCAL_MILVUS_URI", raising=False)
    common = ("--milvus-uri", db_uri, "--collection", "cli_tests")
    assert cali("search", "anything", *common)[0] == 1  # nothing indexed yet: says so

    folder = tmp_path / "kb" / "runbooks"
    folder.mkdir(parents=True)
    for name in ("rb-disk-full-enospc", "rb-clock-skew", "rb-kubernetes-oomkilled"):
        shutil.copy(default_knowledge_dir() / "runbooks" / f"{name}.md", folder)
    code, out, _ = cali("sync", "--dir", str(folder.parent), *common)
    assert code == 0 and "3 entries (3 new, 0 updated, 0 unchanged)" in out
    code, out, _ = cali("sync", "--dir", str(folder.parent), *common)
    assert "(0 new, 0 updated, 3 unchanged)" in out

    code, out, _ = cali("search", "No space left on device while writing /var/tmp/x", "--json", *common)
    hits = json.loads(out)
    assert code == 0 and hits[0]["id"] == "rb-disk-full-enospc" and len(hits) <= 5

    code, out, err = cali("list", *common)
    assert code == 0 and out.count("runbook") == 3 and "3 entries" in err

    # Like the analyzer, the search redacts before embedding: with the OpenAI provider,
    # log lines piped in would otherwise leave the account as they are.
    seen: list[str] = []
    real = knowledge._embedder

    def recording(settings: Any) -> Any:
        inner = real(settings)

        class Recording:
            model_name, dim = inner.model_name, inner.dim

            def embed(self, texts: Sequence[str]) -> list[list[float]]:
                seen.extend(texts)
                return inner.embed(texts)

        return Recording()

    monkeypatch.setattr(knowledge, "_embedder", recording)
    code, out, _ = cali("search", "disk full for bob@example.com password=hunter2", "--json", *common)
    assert code == 0 and seen == ["disk full for <EMAIL_1> password=<SECRET_1>"]

    (folder / "broken.md").write_text("---\nid: x\n")
    code, out, err = cali("sync", "--dir", str(folder.parent), *common)
    assert code == 1 and "broken.md" in err and "1 invalid file(s)" in out
