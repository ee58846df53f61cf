"""The knowledge collection in Milvus: runbooks and resolved incidents, searchable by meaning.

Locally the URI is a Milvus Lite file (``./.cali/milvus.db``); in AWS it is a Milvus or
Zilliz Cloud endpoint whose ``{uri, token}`` come from Secrets Manager. Both speak the
same ``MilvusClient`` API, so nothing else changes.

Upserts are idempotent: every row stores a hash of its content and of the embedding model,
and an entry whose hash has not changed is neither embedded nor written again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from cali.analysis.embeddings import Embedder, check_dimension
from cali.contracts.analysis import SimilarIncident
from cali.knowledge.base import KnowledgeEntry
from cali.knowledge.relevance import TermStats, entry_text, example_lines, terms

if TYPE_CHECKING:
    from cali.contracts.settings import AnalyzerSettings

Origin = Literal["kb_folder", "resolved_incident"]
"""Where a row came from: the sync prunes folder rows whose file was deleted, but never
resolved incidents (their DynamoDB items expire; the lesson they carry should not)."""

# Byte budgets of the VARCHAR fields. Milvus counts max_length in bytes, so text is cut at
# a UTF-8 boundary before it is written; the full text stays in the source file or item.
FIELD_BYTES: dict[str, int] = {
    "id": 128,
    "title": 512,
    "service": 128,
    "fingerprint": 32,
    "source": 16,
    "origin": 32,
    "root_cause": 8192,
    "resolution": 8192,
    "runbook_url": 1024,
    "tags": 1024,
    "content_hash": 64,
    "lexicon": 4096,
    "examples": 4096,
}
OUTPUT_FIELDS = [
    "title",
    "service",
    "fingerprint",
    "source",
    "origin",
    "root_cause",
    "resolution",
    "runbook_url",
    "tags",
    "created_at",
    "content_hash",
    "lexicon",
    "examples",
]
ROW_FORMAT = 2
"""Part of every row's hash: rows written by a CALI that derived ``lexicon``/``examples``
differently are rewritten by the next sync."""
FINGERPRINT_BOOST = 0.15
"""Added to the cosine score of an entry recorded for the very fingerprint being analysed
(capped at 1.0): the same log template seen and resolved before is the strongest evidence
retrieval can give, stronger than any wording similarity."""


TERM_STATS_MAX_AGE_SECONDS = 3600.0


class KnowledgeStoreError(RuntimeError):
    """Milvus is unreachable, or the collection is not what this code expects."""


class UpsertReport(BaseModel):
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _cut(value: str | None, field: str) -> str:
    data = (value or "").encode("utf-8")[: FIELD_BYTES[field]]
    return data.decode("utf-8", errors="ignore")


_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _literal(value: str) -> str:
    # Filter templating (filter_params) is not supported by Milvus Lite, so values are
    # escaped here. Milvus knows \\ \" \n \r \t but no \u or \x escape (JSON would
    # write other control characters, e.g. an ANSI colour code, as \u001b): those go raw.
    return '"' + "".join(_LITERAL_ESCAPES.get(char, char) for char in value) + '"'


def _row_hash(entry: KnowledgeEntry, model_name: str, origin: Origin) -> str:
    return hashlib.sha256(f"{entry.content_hash()}|{model_name}|{origin}|{ROW_FORMAT}".encode()).hexdigest()


class KnowledgeStore:
    """A Milvus collection of :class:`KnowledgeEntry` vectors."""

    def __init__(self, client: Any, *, collection: str, dim: int) -> None:
        self._client = client
        self.collection = collection
        self.dim = dim
        self._ready = False
        self._stats: tuple[float, TermStats] | None = None

    @classmethod
    def connect(
        cls,
        uri: str,
        *,
        token: str | None = None,
        collection: str,
        dim: int,
        timeout_seconds: float = 10.0,
    ) -> KnowledgeStore:
        """``uri`` is a Milvus Lite file path (``*.db``) or an ``http(s)://`` endpoint."""
        from pymilvus import MilvusClient

        if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        try:
            # A bounded connect: an unreachable server must fail the call (and degrade the
            # analysis), not hang the Lambda until its own timeout.
            client = MilvusClient(uri=uri, token=token or "", timeout=timeout_seconds)
        except Exception as exc:  # pymilvus raises several unrelated types for "cannot connect"
            raise KnowledgeStoreError(f"cannot connect to Milvus at {_redact_uri(uri)}: {exc}") from exc
        return cls(client, collection=collection, dim=dim)

    @classmethod
    def from_settings(cls, settings: AnalyzerSettings) -> KnowledgeStore:
        """In AWS the secret wins (``MILVUS_SECRET_ARN``); locally ``LOCAL_MILVUS_URI``."""
        uri, token = settings.local_milvus_uri, None
        if settings.milvus_secret_arn:
            from aws_lambda_powertools.utilities import parameters

            secret = parameters.get_secret(settings.milvus_secret_arn, transform="json", max_age=300)
            raw_uri = secret.get("uri") if isinstance(secret, dict) else None
            raw_token = secret.get("token") if isinstance(secret, dict) else None
            if not isinstance(raw_uri, str) or not raw_uri.strip() or not isinstance(raw_token, str | None):
                raise KnowledgeStoreError("the Milvus secret must be JSON with a string 'uri' (and 'token')")
            # Stripped: a newline pasted with a value would make every connection fail.
            uri, token = raw_uri.strip(), (raw_token or "").strip() or None
        return cls.connect(
            uri, token=token, collection=settings.milvus_collection, dim=settings.embedding_dim
        )

    def close(self) -> None:
        self._client.close()

    # -- schema ---------------------------------------------------------------------------

    def ensure_collection(self) -> None:
        """Create the collection if missing; otherwise check its vector size. Then load it."""
        from pymilvus import DataType, MilvusClient

        if self._client.has_collection(self.collection):
            described = self._client.describe_collection(self.collection)
            fields = {field["name"]: field for field in described["fields"]}
            vector = fields.get("vector")
            if vector is None:
                raise KnowledgeStoreError(f"collection {self.collection!r} has no 'vector' field")
            check_dimension(
                f"Milvus collection {self.collection!r} vector field", self.dim, int(vector["params"]["dim"])
            )
            missing = {"id", "content_hash", *OUTPUT_FIELDS} - set(fields)
            if missing:
                raise KnowledgeStoreError(
                    f"collection {self.collection!r} lacks fields {sorted(missing)}: it was created by "
                    "another tool or an older CALI; drop it (cali knowledge sync --recreate) and resync"
                )
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=FIELD_BYTES["id"])
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            for name in OUTPUT_FIELDS:
                if name == "created_at":
                    schema.add_field(name, DataType.INT64)
                else:
                    schema.add_field(name, DataType.VARCHAR, max_length=FIELD_BYTES[name])
            index = self._client.prepare_index_params()
            # AUTOINDEX lets Milvus/Zilliz pick the index; Lite serves it as flat search,
            # which is exact and plenty fast for a knowledge base of thousands of entries.
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
            self._client.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level="Strong"
            )
        self._client.load_collection(self.collection)
        self._ready = True

    def has_collection(self) -> bool:
        return bool(self._client.has_collection(self.collection))

    def drop_collection(self) -> None:
        if self._client.has_collection(self.collection):
            self._client.drop_collection(self.collection)
        self._ready = False

    def _require_ready(self) -> None:
        if not self._ready:
            self.ensure_collection()

    # -- writes ---------------------------------------------------------------------------

    def existing_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        self._require_ready()
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            rows = self._client.get(
                self.collection, ids=list(ids[start : start + 500]), output_fields=["content_hash"]
            )
            found.update({str(row["id"]): str(row["content_hash"]) for row in rows})
        return found

    def upsert(
        self, entries: Iterable[KnowledgeEntry], embedder: Embedder, *, origin: Origin = "kb_folder"
    ) -> UpsertReport:
        """Embed and write entries whose content changed; skip the rest."""
        check_dimension(f"embedder {embedder.model_name}", self.dim, embedder.dim)
        entries = list(entries)
        ids = [entry.id for entry in entries]
        if len(set(ids)) != len(ids):
            raise ValueError("upsert() got the same id twice")
        existing = self.existing_hashes(ids)
        self._stats = None
        report = UpsertReport()
        changed: list[tuple[KnowledgeEntry, str]] = []
        for entry in entries:
            row_hash = _row_hash(entry, embedder.model_name, origin)
            if existing.get(entry.id) == row_hash:
                report.unchanged += 1
                continue
            changed.append((entry, row_hash))
            if entry.id in existing:
                report.updated += 1
            else:
                report.inserted += 1
        for start in range(0, len(changed), 64):
            chunk = changed[start : start + 64]
            vectors = embedder.embed([entry.text_for_embedding() for entry, _ in chunk])
            rows = [
                _to_row(entry, vector, row_hash, origin)
                for (entry, row_hash), vector in zip(chunk, vectors, strict=True)
            ]
            self._client.upsert(self.collection, rows)
        return report

    def delete(self, ids: Sequence[str]) -> int:
        self._require_ready()
        if not ids:
            return 0
        self._stats = None
        result = self._client.delete(self.collection, ids=list(ids))
        # pymilvus returns the deleted ids (Lite) or {"delete_count": n} (server).
        if isinstance(result, dict):
            return int(result.get("delete_count", len(ids)))
        return len(result)

    # -- reads ----------------------------------------------------------------------------

    def list_rows(self, *, origin: Origin | None = None, limit: int = 16_384) -> list[dict[str, Any]]:
        """Rows without vectors, for listing and pruning (Milvus caps a query at 16,384)."""
        self._require_ready()
        rows = self._client.query(
            self.collection,
            filter=f"origin == {_literal(origin)}" if origin else 'id != ""',
            output_fields=["id", *OUTPUT_FIELDS],
            limit=limit,
        )
        return sorted((dict(row) for row in rows), key=lambda row: str(row["id"]))

    def term_stats(self) -> TermStats:
        """Document frequencies over every entry, for the relevance check (cached: entries
        change only with a sync, and an hour-old frequency table judges just as well)."""
        now = time.monotonic()
        if self._stats is None or now - self._stats[0] > TERM_STATS_MAX_AGE_SECONDS:
            rows = self.list_rows()
            lexicons = (str(row.get("lexicon") or "").split() for row in rows)
            self._stats = (now, TermStats.from_term_sets(lexicons))
        return self._stats[1]

    def search(
        self,
        vector: Sequence[float],
        *,
        top_k: int,
        min_score: float,
        service: str | None = None,
        source: str | None = None,
        fingerprint: str | None = None,
        include_generic: bool = True,
    ) -> list[SimilarIncident]:
        """The ``top_k`` entries most similar to ``vector`` with cosine ``>= min_score``.

        ``service`` keeps that service's entries and, with ``include_generic``, entries that
        name no service (most runbooks). ``fingerprint`` boosts entries recorded for that
        exact log template and admits them even below the floor.
        """
        self._require_ready()
        check_dimension("query vector", self.dim, len(vector))
        clauses = []
        if service:
            services = [service, ""] if include_generic else [service]
            clauses.append(f"service in [{', '.join(_literal(s) for s in services)}]")
        if source:
            clauses.append(f"source == {_literal(source)}")
        where = " and ".join(clauses)
        hits: dict[str, tuple[float, dict[str, Any]]] = {}
        for hit in self._search(vector, where, top_k):
            if hit["distance"] >= min_score:
                hits[str(hit["id"])] = (float(hit["distance"]), hit["entity"])
        if fingerprint:
            same = f"fingerprint == {_literal(fingerprint)}"
            for hit in self._search(vector, f"{where} and {same}" if where else same, top_k):
                score = min(1.0, float(hit["distance"]) + FINGERPRINT_BOOST)
                hits[str(hit["id"])] = (score, hit["entity"])
        ranked = sorted(hits.items(), key=lambda item: (-item[1][0], item[0]))[:top_k]
        return [_to_similar(entry_id, score, entity) for entry_id, (score, entity) in ranked]

    def _search(self, vector: Sequence[float], where: str, limit: int) -> list[dict[str, Any]]:
        results = self._client.search(
            self.collection,
            data=[list(vector)],
            limit=limit,
            filter=where,
            output_fields=OUTPUT_FIELDS,
            search_params={"metric_type": "COSINE"},
        )
        return [dict(hit) for hit in results[0]] if results else []


def _to_row(entry: KnowledgeEntry, vector: list[float], row_hash: str, origin: Origin) -> dict[str, Any]:
    return {
        "id": _cut(entry.id, "id"),
        "vector": vector,
        "title": _cut(entry.title, "title"),
        "service": _cut(entry.service, "service"),
        "fingerprint": _cut(entry.fingerprint, "fingerprint"),
        "source": entry.source,
        "origin": origin,
        "root_cause": _cut(entry.root_cause, "root_cause"),
        "resolution": _cut(entry.resolution, "resolution"),
        "runbook_url": _cut(entry.runbook_url, "runbook_url"),
        "tags": _cut(",".join(entry.tags), "tags"),
        "created_at": int(entry.created_at.timestamp()),
        "content_hash": row_hash,
        # The relevance check's inputs (cali.knowledge.relevance), derived once per write.
        "lexicon": _cut(" ".join(sorted(_lexicon(entry))), "lexicon"),
        "examples": _cut("\n".join(example_lines(entry.symptoms)), "examples"),
    }


def _lexicon(entry: KnowledgeEntry) -> set[str]:
    return terms(entry_text(entry.title, entry.tags, entry.symptoms))


def _to_similar(entry_id: str, score: float, entity: dict[str, Any]) -> SimilarIncident:
    return SimilarIncident(
        id=entry_id,
        title=str(entity.get("title") or entry_id),
        source="incident" if entity.get("source") == "incident" else "runbook",
        score=round(score, 4),
        service=entity.get("service") or None,
        root_cause=entity.get("root_cause") or None,
        resolution=entity.get("resolution") or None,
        runbook_url=entity.get("runbook_url") or None,
        fingerprint=entity.get("fingerprint") or None,
        tags=[tag for tag in str(entity.get("tags") or "").split(",") if tag],
        lexicon=tuple(str(entity.get("lexicon") or "").split()),
        examples=tuple(line for line in str(entity.get("examples") or "").splitlines() if line),
    )


def _redact_uri(uri: str) -> str:
    # A server URI may carry credentials (user:password@host); never log them.
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
