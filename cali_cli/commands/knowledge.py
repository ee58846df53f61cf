"""``cali knowledge``: index the runbooks and past incidents into Milvus, search and list them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cali.analysis.embeddings import Embedder
    from cali.contracts.settings import AnalyzerSettings
    from cali.knowledge.store import KnowledgeStore

DESCRIPTION = """\
The knowledge base is a folder of markdown files, one runbook or resolved past incident
each (lambdas/knowledge_base/{runbooks,incidents}/*.md, format in docs/knowledge.md). The
incident analyzer embeds every new incident and shows the most similar entries in Slack
and to the LLM. This command manages the Milvus collection behind that search.

Locally the collection lives in a Milvus Lite file (./.cali/milvus.db, or LOCAL_MILVUS_URI) and
vectors come from the bundled all-MiniLM-L6-v2 model: no network, no account needed.
"""

EPILOG = """\
examples:
  cali knowledge sync                          index lambdas/knowledge_base (only changes are re-embedded)
  cali knowledge sync --dir ./my-runbooks      index another folder (entries of deleted files are removed)
  cali knowledge search "HikariPool connection is not available after 30000ms"
  cali knowledge search "pods restarting exit code 137" --top-k 3 --source runbook
  cali knowledge list --json
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "knowledge",
        help="index, search and list the runbooks and past incidents used for similar-incident search",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--milvus-uri",
        metavar="URI",
        help="Milvus Lite file or Milvus server URI (default: $LOCAL_MILVUS_URI or ./.cali/milvus.db)",
    )
    common.add_argument(
        "--collection", metavar="NAME", help="collection name (default: $MILVUS_COLLECTION or cali_knowledge)"
    )

    sync = actions.add_parser(
        "sync",
        parents=[common],
        help="(re)index the knowledge-base folder into Milvus",
        description="Parse every *.md of the folder, embed new or changed entries and upsert them; "
        "entries whose file was removed are deleted. Invalid files are listed and make the "
        "exit code 1, the valid ones are indexed anyway.",
    )
    sync.add_argument(
        "--dir", type=Path, metavar="FOLDER", help="knowledge-base folder (default: the bundled one)"
    )
    sync.add_argument(
        "--state-table",
        metavar="TABLE",
        help="also index incidents marked resolved in this DynamoDB state table (honours AWS_ENDPOINT_URL)",
    )
    sync.add_argument(
        "--recreate", action="store_true", help="drop the collection first and embed everything"
    )
    sync.set_defaults(func=run_sync)

    search = actions.add_parser(
        "search",
        parents=[common],
        help="find the entries most similar to a text (an incident description or log lines)",
        description="Embed the text exactly like the incident analyzer does and print the best matches "
        "with their cosine similarity (1.0 = same meaning).",
    )
    search.add_argument("text", help="text to search for; '-' reads standard input")
    search.add_argument("--top-k", type=int, default=5, metavar="N", help="number of results (default 5)")
    search.add_argument(
        "--min-score", type=float, default=0.0, metavar="S", help="similarity floor, -1..1 (default 0.0)"
    )
    search.add_argument("--service", help="only entries of this service, plus those that name no service")
    search.add_argument("--source", choices=["runbook", "incident"], help="only runbooks or only incidents")
    search.add_argument("--fingerprint", help="boost entries recorded for this log fingerprint")
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    search.set_defaults(func=run_search)

    listing = actions.add_parser("list", parents=[common], help="list the indexed entries")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)


def _settings(args: argparse.Namespace) -> AnalyzerSettings:
    from cali.contracts.settings import AnalyzerSettings

    overrides: dict[str, Any] = {}
    if args.milvus_uri:
        overrides["local_milvus_uri"] = args.milvus_uri
    if args.collection:
        overrides["milvus_collection"] = args.collection
    return AnalyzerSettings(**overrides)


def _store(settings: AnalyzerSettings) -> KnowledgeStore:
    from cali.knowledge.store import KnowledgeStore

    return KnowledgeStore.connect(
        settings.local_milvus_uri, collection=settings.milvus_collection, dim=settings.embedding_dim
    )


def _embedder(settings: AnalyzerSettings) -> Embedder:
    import os

    from cali.analysis.embeddings import make_embedder

    return make_embedder(settings, os.environ.get("OPENAI_API_KEY"))


def run_sync(args: argparse.Namespace) -> int:
    from cali.knowledge.base import KnowledgeBaseError, default_knowledge_dir
    from cali.knowledge.resolved import DynamoDbResolvedIncidentSource
    from cali.knowledge.sync import sync_knowledge

    settings = _settings(args)
    store = _store(settings)
    if args.recreate:
        store.drop_collection()
    incidents = DynamoDbResolvedIncidentSource(args.state_table) if args.state_table else None
    try:
        report = sync_knowledge(
            store, _embedder(settings), kb_dir=args.dir or default_knowledge_dir(), incidents=incidents
        )
    except KnowledgeBaseError as exc:
        print(f"cali knowledge sync: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    kb = report.kb
    print(
        f"knowledge base: {report.kb_entries} entries ({kb.inserted} new, {kb.updated} updated, "
        f"{kb.unchanged} unchanged), {report.pruned} removed, {report.kb_invalid} invalid file(s)"
    )
    if incidents is not None:
        inc = report.incidents
        print(
            f"resolved incidents: {report.incidents_read} ({inc.inserted} new, {inc.updated} updated, "
            f"{inc.unchanged} unchanged), {report.incidents_invalid} unusable item(s)"
        )
    print(f"collection {settings.milvus_collection!r} at {settings.local_milvus_uri}")
    for problem in report.problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def run_search(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        print("cali knowledge search: empty text", file=sys.stderr)
        return 2
    settings = _settings(args)
    store = _store(settings)
    try:
        if not store.has_collection():
            print(
                "cali knowledge search: the collection is empty; run `cali knowledge sync` first",
                file=sys.stderr,
            )
            return 1
        from cali.analysis.redaction import Redactor

        # As in the analyzer: nothing unredacted goes to an embeddings API.
        redacted = Redactor(settings.redaction_extra_patterns).redact(text)
        vector = _embedder(settings).embed([redacted])[0]
        hits = store.search(
            vector,
            top_k=args.top_k,
            min_score=args.min_score,
            service=args.service,
            source=args.source,
            fingerprint=args.fingerprint,
        )
    finally:
        store.close()
    if args.json:
        print(json.dumps([hit.model_dump() for hit in hits], indent=2))
        return 0
    if not hits:
        print("no entry above the similarity floor")
        return 0
    for hit in hits:
        print(f"{hit.score:.3f}  {hit.source:<8}  {hit.id}\n        {hit.title}")
        if hit.runbook_url:
            print(f"        {hit.runbook_url}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store(settings)
    try:
        rows = store.list_rows() if store.has_collection() else []
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for row in rows:
        service = row.get("service") or "-"
        print(f"{row['id']:<48} {row['source']:<8} {service:<18} {row['title']}")
    print(
        f"{len(rows)} entries in {settings.milvus_collection!r} at {settings.local_milvus_uri}",
        file=sys.stderr,
    )
    return 0
