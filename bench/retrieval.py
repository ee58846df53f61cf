"""Does retrieval find the right runbook or past incident for an incident it has not seen?

Run from the repository root::

    .venv/bin/python -m bench.retrieval                  # local ONNX MiniLM, Milvus Lite
    .venv/bin/python -m bench.retrieval --show-misses    # print what ranked above a miss
    .venv/bin/python -m bench.retrieval --json out.json

It indexes ``lambdas/knowledge_base`` into a fresh Milvus Lite collection in a temporary
folder with the local embedder (exactly as ``cali knowledge sync`` does), then searches
with each held-out query of ``bench/data/retrieval_queries.jsonl``: paraphrased incident
descriptions and log excerpts written independently of the knowledge-base text (other
services, hosts, numbers and wording). Each query names the entry it should find
(``expected``) and, where the knowledge base holds both the generic runbook and a past
incident of the very same failure, the other one as ``also_relevant``.

Reported: hit rate at 1 and 3 and MRR counting any relevant entry, the same against
``expected`` alone (strict), and per-query latency of embedding + search (median, p95).
Ranking is measured without a similarity floor. Target: top-3 >= 0.9.

Queries with ``"expected": null`` are negatives: ordinary application errors that no entry
covers. With them the benchmark checks a similarity floor (``--min-score``, default 0.35,
the old analyzer floor; the analyzer now decides with its relevance check): the share of
positives whose relevant entry still clears it within the top 3, and the share of negatives
that would show a hit anyway.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cali.analysis.embeddings import LocalOnnxEmbedder
from cali.knowledge.base import load_knowledge_base
from cali.knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUERIES = ROOT / "bench" / "data" / "retrieval_queries.jsonl"
DEFAULT_KB = ROOT / "lambdas" / "knowledge_base"
TOP_K = 5


@dataclass
class QueryResult:
    id: str
    expected: str | None
    ranked: list[str]
    scores: list[float]
    relevant: list[str]
    latency_ms: float
    rank_any: int | None = field(init=False)
    rank_strict: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.rank_any = next((i + 1 for i, hit in enumerate(self.ranked) if hit in self.relevant), None)
        self.rank_strict = next((i + 1 for i, hit in enumerate(self.ranked) if hit == self.expected), None)


def _rate(ranks: list[int | None], k: int) -> float:
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def _mrr(ranks: list[int | None]) -> float:
    return sum(1.0 / rank for rank in ranks if rank is not None) / len(ranks)


def _survivors(positives: list[QueryResult], floor: float) -> int:
    """Positives whose relevant entry is in the top 3 with a score at or above ``floor``."""
    return sum(
        any(
            hit in r.relevant and score >= floor
            for hit, score in zip(r.ranked[:3], r.scores[:3], strict=True)
        )
        for r in positives
    )


def load_queries(path: Path, known_ids: set[str]) -> list[dict[str, object]]:
    queries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for query in queries:
        labels = [label for label in [query["expected"], *query.get("also_relevant", [])] if label]
        unknown = [label for label in labels if label not in known_ids]
        if unknown:
            raise SystemExit(f"query {query['id']}: label(s) {unknown} are not knowledge-base ids")
    return queries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--kb", type=Path, default=DEFAULT_KB)
    parser.add_argument("--show-misses", action="store_true", help="print the ranking of each miss")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.35,
        help="similarity floor to evaluate (default: 0.35)",
    )
    args = parser.parse_args(argv)

    entries = load_knowledge_base(args.kb)
    queries = load_queries(args.queries, {entry.id for entry in entries})
    embedder = LocalOnnxEmbedder()

    with tempfile.TemporaryDirectory(prefix="cali-bench-") as tmp:
        store = KnowledgeStore.connect(str(Path(tmp) / "bench.db"), collection="bench", dim=embedder.dim)
        started = time.perf_counter()
        store.ensure_collection()
        store.upsert(entries, embedder)
        index_s = time.perf_counter() - started

        embedder.embed(["warm-up"])  # the first call pays for the ONNX session's lazy init
        results: list[QueryResult] = []
        for query in queries:
            text = str(query["query"])
            expected = str(query["expected"]) if query["expected"] else None
            started = time.perf_counter()
            vector = embedder.embed([text])[0]
            hits = store.search(vector, top_k=TOP_K, min_score=-1.0)
            latency_ms = (time.perf_counter() - started) * 1000
            also = [str(i) for i in query.get("also_relevant", [])]  # type: ignore[attr-defined]
            relevant = [expected, *also] if expected else []
            ranked, scores = [h.id for h in hits], [h.score for h in hits]
            results.append(QueryResult(str(query["id"]), expected, ranked, scores, relevant, latency_ms))
        store.close()

    positives = [r for r in results if r.expected]
    negatives = [r for r in results if not r.expected]
    any_ranks = [r.rank_any for r in positives]
    strict_ranks = [r.rank_strict for r in positives]
    latencies = sorted(r.latency_ms for r in results)
    floor = args.min_score
    leaks = [bool(r.scores) and r.scores[0] >= floor for r in negatives]
    summary = {
        "queries": len(positives),
        "negatives": len(negatives),
        "entries": len(entries),
        "embedder": embedder.model_name,
        "index_seconds": round(index_s, 2),
        "top1": round(_rate(any_ranks, 1), 3),
        "top3": round(_rate(any_ranks, 3), 3),
        "mrr": round(_mrr(any_ranks), 3),
        "strict_top1": round(_rate(strict_ranks, 1), 3),
        "strict_top3": round(_rate(strict_ranks, 3), 3),
        "strict_mrr": round(_mrr(strict_ranks), 3),
        "min_score": floor,
        "top3_above_floor": round(_survivors(positives, floor) / len(positives), 3),
        "negatives_above_floor": round(sum(leaks) / len(negatives), 3) if negatives else None,
        "latency_ms_median": round(statistics.median(latencies), 1),
        "latency_ms_p95": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 1),
    }

    print(f"{'query':<6} {'rank':>4} {'strict':>6} {'top-1':>6} {'ms':>7}  expected -> top-1")
    for r in results:
        rank = str(r.rank_any) if r.rank_any else "-"
        strict = str(r.rank_strict) if r.rank_strict else "-"
        top1 = r.ranked[0] if r.ranked else "(none)"
        score = f"{r.scores[0]:.3f}" if r.scores else "-"
        print(f"{r.id:<6} {rank:>4} {strict:>6} {score:>6} {r.latency_ms:>7.1f}  {r.expected} -> {top1}")
        if args.show_misses and r.expected and (r.rank_any is None or r.rank_any > 3):
            print("         ranked: " + ", ".join(r.ranked))
    print()
    print(
        f"{summary['queries']} queries (+{summary['negatives']} negatives) over "
        f"{summary['entries']} entries, embedder {summary['embedder']}, indexing {summary['index_seconds']} s"
    )
    print(
        f"top-1 {summary['top1']:.3f}  top-3 {summary['top3']:.3f}  MRR {summary['mrr']:.3f}  (any relevant)"
    )
    print(
        f"top-1 {summary['strict_top1']:.3f}  top-3 {summary['strict_top3']:.3f}  "
        f"MRR {summary['strict_mrr']:.3f}  (expected id only)"
    )
    print(
        f"similarity floor {floor}: relevant hit in top-3 and above it {summary['top3_above_floor']:.3f}; "
        f"negatives with a hit above it {summary['negatives_above_floor']}"
    )
    print(
        f"latency per query (embed + search): median {summary['latency_ms_median']} ms, "
        f"p95 {summary['latency_ms_p95']} ms"
    )
    if negatives:
        print("floor sweep (relevant in top-3 above floor / negatives with a hit above floor):")
        for candidate in (0.30, 0.35, 0.40, 0.45, 0.50):
            kept = _survivors(positives, candidate) / len(positives)
            leaked = sum(1 for r in negatives if r.scores and r.scores[0] >= candidate) / len(negatives)
            print(f"  {candidate:.2f}: {kept:.3f} / {leaked:.3f}")
    target_met = _rate(any_ranks, 3) >= 0.9
    print(f"target top-3 >= 0.9: {'met' if target_met else 'NOT met'}")
    if args.json:
        args.json.write_text(
            json.dumps({"summary": summary, "queries": [asdict(r) for r in results]}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
