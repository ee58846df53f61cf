"""Can the analysis be trusted? Retrieval that abstains, answers that are right and calibrated.

Run from the repository root (``make bench-analysis``)::

    .venv/bin/python -m bench.analysis                      # retrieval only, no model (CI time)
    .venv/bin/python -m bench.analysis --calibrate          # refit the relevance policy
    OPENAI_BASE_URL=http://127.0.0.1:8089/v1 LLM_MODEL=qwen2.5-coder-1.5b-instruct \\
        .venv/bin/python -m bench.analysis --answers out.jsonl   # + answer scores, one call per case

**Retrieval** runs the analyzer's own path (redaction, the local MiniLM embedder, Milvus
Lite over ``lambdas/knowledge_base``, the relevance check) on the labelled incidents of
``bench/data/analysis_eval.jsonl``: the demo's scenarios, real-world formats and many
incidents no entry covers. It reports the share of shown entries that are unrelated
(target <= 5 %), the share of negatives where nothing is shown (abstention), and top-3 on
positives (a relevant entry among the first three shown; target >= 0.9), next to what
cosine alone would have shown. ``--calibrate`` fits the policy on the separate
``bench/data/retrieval_calibration.jsonl`` (mostly negatives, other log sources).

**Answers** (with ``OPENAI_BASE_URL`` and ``--answers FILE``) send each incident through the
analyzer's LLM path and score: correct by the case's rubric (every ``must`` group present,
no ``must_not`` phrase in summary or root cause; for an incident without relevant
knowledge an honest "unknown" is also correct), evidence validity (quotes found in the
log text), and calibration: how often ``high`` is wrong (target <= 10 %). Results are
appended to FILE one line per case, so a slow local model can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cali.analysis.analyzer import incident_lines, incident_query_text
from cali.analysis.embeddings import LocalOnnxEmbedder
from cali.analysis.redaction import Redactor, redact_incident
from cali.contracts.analysis import AnalysisResult, SimilarIncident
from cali.contracts.incident import IncidentMessage, SampleLine
from cali.contracts.levels import Level
from cali.fingerprint import fingerprint
from cali.knowledge.base import KnowledgeEntry, load_knowledge_base
from cali.knowledge.relevance import (
    LineMatcher,
    RelevancePolicy,
    Signals,
    TermStats,
    decide,
    entry_text,
    judge,
    measure,
)
from cali.knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "bench" / "data" / "analysis_eval.jsonl"
CALIBRATION = ROOT / "bench" / "data" / "retrieval_calibration.jsonl"
KB = ROOT / "lambdas" / "knowledge_base"
T0 = datetime(2026, 5, 14, 3, 0, tzinfo=UTC)
TOP_K = 5
CANDIDATES = 15
COSINE_ONLY_FLOOR = 0.35  # the floor before this benchmark existed, for comparison
TARGET_UNRELATED = 0.05
TARGET_TOP3 = 0.9
TARGET_HIGH_WRONG = 0.10


# ------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    id: str
    incident: IncidentMessage
    """Redacted, exactly as the analyzer would see it."""
    relevant: frozenset[str]
    expected_class: str = ""
    must: tuple[tuple[str, ...], ...] = ()
    must_not: tuple[str, ...] = ()
    origin: str = ""


def load_cases(path: Path, known_ids: set[str]) -> list[Case]:
    redactor = Redactor()
    cases: list[Case] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        raw = json.loads(line)
        unknown = set(raw.get("relevant", [])) - known_ids
        if unknown:
            raise SystemExit(
                f"{path.name}:{number}: {raw['id']}: {sorted(unknown)} are not knowledge-base ids"
            )
        cases.append(
            Case(
                id=raw["id"],
                incident=redact_incident(to_incident(raw), redactor),
                relevant=frozenset(raw.get("relevant", [])),
                expected_class=raw.get("expected_class", ""),
                must=tuple(tuple(group) for group in raw.get("must", [])),
                must_not=tuple(raw.get("must_not", [])),
                origin=raw.get("origin", ""),
            )
        )
    return cases


def to_incident(raw: dict[str, Any]) -> IncidentMessage:
    """The incident message the consumer would send for this log line (three occurrences,
    one sample: the consumer keeps distinct samples, and these would all be the same)."""
    message, stack = str(raw["message"]), raw.get("stack_trace")
    fp = fingerprint(message, stack)
    level = Level.from_name(str(raw.get("level", "ERROR")))
    service = str(raw.get("service") or "unknown")
    samples = [
        SampleLine(
            timestamp=T0 + timedelta(seconds=17 * i),
            service=service,
            level=level,
            message=message,
            host=raw.get("host"),
            stack_trace=stack,
        )
        for i in range(1)  # identical copies would only lengthen the prompt
    ]
    return IncidentMessage(
        incident_id=f"{fp.id}-20260514T0300",
        fingerprint=fp.id,
        template=fp.template,
        kind="new",
        environment="bench",
        level=level,
        exception_type=fp.exception_type,
        services=[service],
        hosts=[raw["host"]] if raw.get("host") else [],
        count=3,
        window_count=3,
        first_seen=samples[0].timestamp,
        last_seen=samples[-1].timestamp + timedelta(seconds=34),
        samples=samples,
    )


# -------------------------------------------------------------------------- retrieval


@dataclass
class Retrieved:
    case: Case
    query: str
    candidates: list[SimilarIncident] = field(default_factory=list)
    line_scores: dict[str, float] = field(default_factory=dict)
    measured: list[Signals] | None = None
    """The policy-independent signals, measured once (calibration tries thousands of policies)."""


def retrieve_candidates(
    cases: Sequence[Case], entries: Sequence[KnowledgeEntry], tmp: Path
) -> tuple[list[Retrieved], TermStats]:
    """Wide candidate lists (no floor) once, so every policy is judged on the same search."""
    embedder = LocalOnnxEmbedder()
    store = KnowledgeStore.connect(str(tmp / "bench.db"), collection="bench", dim=embedder.dim)
    store.ensure_collection()
    store.upsert(entries, embedder)
    stats = store.term_stats()
    out: list[Retrieved] = []
    matcher = LineMatcher(embedder)
    queries = [incident_query_text(case.incident) for case in cases]
    vectors = embedder.embed(queries)
    for case, query, vector in zip(cases, queries, vectors, strict=True):
        incident = case.incident
        hits = store.search(
            vector,
            top_k=CANDIDATES,
            min_score=-1.0,
            service=incident.services[0] if len(incident.services) == 1 else None,
            fingerprint=incident.fingerprint,
        )
        out.append(Retrieved(case, query, hits, matcher.scores(incident_lines(incident), hits)))
    store.close()
    return out, stats


@dataclass(frozen=True)
class RetrievalScore:
    cases: int
    positives: int
    negatives: int
    shown: int
    unrelated_shown: int
    negatives_abstained: int
    positives_top3: int
    positives_nothing_shown: int

    @property
    def unrelated_share(self) -> float:
        return self.unrelated_shown / self.shown if self.shown else 0.0

    @property
    def abstention(self) -> float:
        return self.negatives_abstained / self.negatives if self.negatives else 1.0

    @property
    def top3(self) -> float:
        return self.positives_top3 / self.positives if self.positives else 1.0

    def meets_targets(self) -> bool:
        return self.unrelated_share <= TARGET_UNRELATED and self.top3 >= TARGET_TOP3


def shown_for(item: Retrieved, policy: RelevancePolicy | None, stats: TermStats) -> list[SimilarIncident]:
    """What the alert would show: ``policy=None`` is the old rule (cosine >= 0.35 alone)."""
    if policy is None:
        return [hit for hit in item.candidates if hit.score >= COSINE_ONLY_FLOOR][:TOP_K]
    if item.measured is None:
        fp = item.case.incident.fingerprint
        same = frozenset(hit.id for hit in item.candidates if hit.fingerprint == fp)
        item.measured = measure(
            item.query, item.candidates, stats, line_scores=item.line_scores, fingerprint_ids=same
        )
    return [j.hit for j in decide(item.measured, policy) if j.relevant][:TOP_K]


def score_retrieval(
    items: Sequence[Retrieved], policy: RelevancePolicy | None, stats: TermStats
) -> tuple[RetrievalScore, dict[str, list[str]]]:
    shown_total = unrelated = abstained = top3 = empty_pos = positives = 0
    shown_by_case: dict[str, list[str]] = {}
    for item in items:
        shown = [hit.id for hit in shown_for(item, policy, stats)]
        shown_by_case[item.case.id] = shown
        relevant = item.case.relevant
        shown_total += len(shown)
        unrelated += sum(1 for i in shown if i not in relevant)
        if relevant:
            positives += 1
            top3 += any(i in relevant for i in shown[:3])
            empty_pos += not shown
        else:
            abstained += not shown
    score = RetrievalScore(
        cases=len(items),
        positives=positives,
        negatives=len(items) - positives,
        shown=shown_total,
        unrelated_shown=unrelated,
        negatives_abstained=abstained,
        positives_top3=top3,
        positives_nothing_shown=empty_pos,
    )
    return score, shown_by_case


def show_case(item: Retrieved, policy: RelevancePolicy, stats: TermStats, shown: list[str]) -> None:
    """One case: what was shown, and the signals of every shown or relevant candidate."""
    relevant = item.case.relevant
    mark = "ok " if (not relevant and not shown) or any(i in relevant for i in shown[:3]) else "MISS"
    print(f"  {mark} {item.case.id:<28} relevant={sorted(relevant)} shown={shown}")
    judged = judge(item.query, item.candidates, stats, policy, line_scores=item.line_scores)
    for j in judged:
        if j.hit.id in relevant or j.hit.id in shown:
            flag = "shown " if j.hit.id in shown else "      "
            flag += "relevant" if j.hit.id in relevant else "UNRELATED"
            print(
                f"        {j.hit.id:<44} line {j.line_match:.2f} agreement {j.agreement:4.2f} "
                f"cosine {j.hit.score:.2f} {flag} {list(j.shared[:5])}"
            )


def describe(name: str, s: RetrievalScore) -> str:
    return (
        f"{name:<34} shown {s.shown:>3}  unrelated {s.unrelated_share:6.1%}  "
        f"abstains on negatives {s.abstention:6.1%}  top-3 on positives {s.top3:.3f}"
    )


def calibrate(items: Sequence[Retrieved], stats: TermStats) -> RelevancePolicy:
    """The policy that keeps the most positives with <= 5 % unrelated shown and <= 5 % of
    negatives showing anything; ties go to the stricter policy."""
    best: tuple[tuple[float, ...], RelevancePolicy] | None = None
    grid = itertools.product(
        [x / 100 for x in range(50, 96, 2)],
        [x / 100 for x in range(30, 70, 2)],
        (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5),
        (0.05, 0.10, 0.15, 0.20, 1.0),
        (0.0, 0.5, 0.6, 0.7),
    )
    for alone, min_line, min_agree, gap, share in grid:
        if min_line > alone:
            continue
        policy = RelevancePolicy(
            line_alone=alone, min_line=min_line, min_agreement=min_agree, max_gap=gap, min_share=share
        )
        s, _ = score_retrieval(items, policy, stats)
        leak = 1 - s.abstention
        if s.unrelated_share > TARGET_UNRELATED or leak > TARGET_UNRELATED:
            continue
        # Ties go to the strictest policy (what the calibration set cannot tell apart, the
        # evaluation set should not be asked to).
        key = (s.top3, -leak, -s.unrelated_share, min_line, min_agree, share, -gap, alone)
        if best is None or key > best[0]:
            best = (key, policy)
    if best is None:
        raise SystemExit("no policy meets the targets on the calibration set")
    s, _ = score_retrieval(items, best[1], stats)
    print(describe("calibration set, fitted policy", s))
    return best[1]


# ---------------------------------------------------------------------------- answers


def _says(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive: "down" must not match "scale-down"."""
    return re.search(rf"(?<![\w-]){re.escape(phrase)}", text, re.IGNORECASE) is not None


def rubric_correct(case: Case, summary: str, root_cause: str, cause_known: bool) -> bool:
    said = f"{summary}\n{root_cause}"
    if any(_says(said, phrase) for phrase in case.must_not):
        return False
    if all(any(_says(said, alt) for alt in group) for group in case.must):
        return True
    # With no relevant knowledge, saying honestly that the cause is unknown is a right answer.
    return not case.relevant and not cause_known


def evidence_counts(result: AnalysisResult) -> tuple[int, int]:
    """(quotes kept, quotes the model wrote): rejected ones are counted in the flags."""
    kept = len(result.llm.evidence) if result.llm else 0
    rejected = sum(int(f.split(":", 1)[1]) for f in result.flags if f.startswith("evidence_not_in_logs:"))
    return kept, kept + rejected


class _RejectedQuotes(logging.Handler):
    """Collects the quotes grounding removed (the analyzer logs each one), for diagnosis."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.quotes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        quote = getattr(record, "quote", None)
        if isinstance(quote, str):
            self.quotes.append(quote)


def run_answers(
    cases: Sequence[Case],
    shown: dict[str, list[SimilarIncident]],
    out: Path,
    *,
    limit: int | None,
    review: bool,
) -> None:
    from cali.analysis.llm.analyzer import LlmAnalyzer, LlmConfig, config_for_endpoint
    from cali_testing.analysis import InMemoryLlmCache, InMemoryTokenBudget

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    model = os.environ.get("LLM_MODEL", "gpt-4o-mini")
    timeout = os.environ.get("LLM_TIMEOUT_SECONDS")
    cfg = config_for_endpoint(
        LlmConfig(model=model, review_pass=review),
        base_url=base_url,
        self_hosted=None,
        timeout_seconds=float(timeout) if timeout else None,
    )
    client = LlmAnalyzer.create_client(cfg, api_key=os.environ.get("OPENAI_API_KEY"), base_url=base_url)
    analyzer = LlmAnalyzer(client, cfg, budget=InMemoryTokenBudget(10**9), cache=InMemoryLlmCache())
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["id"] for line in out.read_text().splitlines()} if out.exists() else set()
    # Alternate incidents with and without relevant knowledge, so a run cut short by time
    # still measures both kinds.
    with_kb = [case for case in cases if case.relevant and case.id not in done]
    without = [case for case in cases if not case.relevant and case.id not in done]
    mixed = [case for pair in itertools.zip_longest(with_kb, without) for case in pair if case is not None]
    todo = mixed[: limit if limit is not None else None]
    where = base_url or "api.openai.com"
    print(f"answers: {len(done)} already in {out}, {len(todo)} to run against {where} ({model})")
    rejected = _RejectedQuotes()
    logging.getLogger("cali.analysis.llm.grounding").addHandler(rejected)
    for case in todo:
        rejected.quotes.clear()
        started = time.perf_counter()
        result = analyzer.analyze(case.incident, shown[case.id])
        kept, written = evidence_counts(result)
        row = {
            "id": case.id,
            "relevant": sorted(case.relevant),
            "shown": [hit.id for hit in shown[case.id]],
            "seconds": round(time.perf_counter() - started, 1),
            "degraded_reason": result.degraded_reason,
            "confidence": result.llm.confidence if result.llm else None,
            "cause_known": result.llm.cause_known if result.llm else None,
            "correct": result.llm is not None
            and rubric_correct(
                case, result.llm.summary, result.llm.probable_root_cause, result.llm.cause_known
            ),
            "evidence_kept": kept,
            "evidence_written": written,
            "flags": result.flags,
            "summary": result.llm.summary if result.llm else None,
            "root_cause": result.llm.probable_root_cause if result.llm else None,
            "model_confidence": result.llm.model_confidence if result.llm else None,
            # Without the review pass, the answer would have shown this confidence.
            "pre_review_confidence": pre_review_confidence(result),
            "cited": result.llm.cited_ids if result.llm else [],
            "result": result.model_dump(mode="json"),
            "rejected_quotes": list(rejected.quotes),
        }
        with out.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        shown_as = row["confidence"] or "degraded"
        print(f"  {case.id:<28} {row['seconds']:>6}s  {shown_as:<8} correct={row['correct']}")


def pre_review_confidence(result: AnalysisResult) -> str | None:
    if result.llm is None:
        return None
    capped = [f for f in result.flags if f.startswith("review_capped:")]
    return capped[0].split(":", 1)[1].split("->")[0] if capped else result.llm.confidence


def _high_wrong(rows: Sequence[dict[str, Any]], key: str) -> tuple[int, int]:
    """(wrong answers shown as high, answers shown as high) by the confidence in ``key``."""
    high = [r for r in rows if r.get(key) == "high"]
    return sum(not r["correct"] for r in high), len(high)


def summarise_answers(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    answered = [r for r in rows if r["confidence"]]
    written = sum(r["evidence_written"] for r in answered)
    return {
        "cases": len(rows),
        "answered": len(answered),
        "correct": sum(r["correct"] for r in answered),
        "unknown": sum(1 for r in answered if r.get("cause_known") is False),
        "evidence_valid": (sum(r["evidence_kept"] for r in answered) / written) if written else None,
        "by_confidence": {
            level: (
                sum(r["correct"] for r in answered if r["confidence"] == level),
                sum(1 for r in answered if r["confidence"] == level),
            )
            for level in ("high", "medium", "low")
        },
        "high_wrong": _high_wrong(answered, "confidence"),
        "high_wrong_without_review": _high_wrong(answered, "pre_review_confidence"),
        "high_wrong_model_claim": _high_wrong(answered, "model_confidence"),
        "median_seconds": sorted(r["seconds"] for r in rows)[len(rows) // 2] if rows else None,
    }


def _share(pair: tuple[int, int]) -> str:
    wrong, total = pair
    return f"{wrong}/{total} = {wrong / total:.0%}" if total else "0/0"


def print_answers(out: Path, cases: Sequence[Case]) -> None:
    by_id = {case.id: case for case in cases}
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    for row in rows:  # the rubric is applied again: a corrected rubric needs no new model run
        row["correct"] = row["confidence"] is not None and rubric_correct(
            by_id[row["id"]], row["summary"] or "", row["root_cause"] or "", row["cause_known"] is not False
        )
    s = summarise_answers(rows)
    valid = "n/a" if s["evidence_valid"] is None else format(s["evidence_valid"], ".1%")
    print(
        f"answers: {s['answered']} of {s['cases']} answered (rest degraded), "
        f"correct {s['correct']}/{s['answered']} ({s['unknown']} said unknown); "
        f"evidence quotes valid {valid}; "
        f"median {s['median_seconds']} s per incident"
    )
    print(
        "by shown confidence (correct/total): "
        + ", ".join(f"{k} {c}/{t}" for k, (c, t) in s["by_confidence"].items())
    )
    print(
        f"high but wrong: shown {_share(s['high_wrong'])} (target <= {TARGET_HIGH_WRONG:.0%}); "
        f"without the review pass {_share(s['high_wrong_without_review'])}; "
        f"the model's own claim {_share(s['high_wrong_model_claim'])}"
    )


def slack_text(case: Case, answers: Path) -> str:
    """The Slack message (its mrkdwn and plain texts, block by block) of one answered case."""
    from cali.notify.slack.links import IncidentLinks
    from cali.notify.slack.message import build_incident_message

    rows = {json.loads(line)["id"]: json.loads(line) for line in answers.read_text().splitlines() if line}
    result = AnalysisResult.model_validate(rows[case.id]["result"])
    message = build_incident_message(case.incident, result, environment="bench", links=IncidentLinks())
    lines: list[str] = []
    for block in message.payload()["blocks"]:
        texts = [block.get("text", {}), *block.get("elements", []), *block.get("fields", [])]
        lines.extend(
            str(t.get("text")) for t in texts if isinstance(t, dict) and isinstance(t.get("text"), str)
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=EVAL)
    parser.add_argument("--calibrate", action="store_true", help="refit the policy on the calibration set")
    parser.add_argument(
        "--answers", type=Path, help="score answers too (needs OPENAI_BASE_URL or OPENAI_API_KEY)"
    )
    parser.add_argument("--limit", type=int, help="answer at most this many more cases")
    parser.add_argument("--show", action="store_true", help="print what each case shows")
    parser.add_argument("--review", action="store_true", help="with --answers: add the skeptical second pass")
    parser.add_argument("--slack", metavar="CASE", help="with --answers: print the Slack text of that answer")
    args = parser.parse_args(argv)

    entries = load_knowledge_base(KB)
    known = {entry.id for entry in entries}
    if args.slack and args.answers:
        (case,) = [c for c in load_cases(args.cases, known) if c.id == args.slack]
        print(slack_text(case, args.answers))
        return 0
    policy = RelevancePolicy()
    with tempfile.TemporaryDirectory(prefix="cali-bench-") as tmp:
        if args.calibrate:
            calibration = load_cases(CALIBRATION, known)
            items, stats = retrieve_candidates(calibration, entries, Path(tmp) / "cal")
            policy = calibrate(items, stats)
            print(f"fitted on {len(calibration)} calibration cases: {policy}")
        cases = load_cases(args.cases, known)
        items, stats = retrieve_candidates(cases, entries, Path(tmp))

    baseline, _ = score_retrieval(items, None, stats)
    score, shown_ids = score_retrieval(items, policy, stats)
    print(
        f"{len(cases)} incidents ({score.positives} with relevant knowledge, {score.negatives} without), "
        f"{len(entries)} knowledge entries, embedder all-MiniLM-L6-v2 int8 ONNX, Milvus Lite"
    )
    print(describe(f"cosine >= {COSINE_ONLY_FLOOR} alone", baseline))
    print(describe("line match + lexical agreement", score))
    print(f"policy: {policy}")
    if args.show:
        for item in items:
            show_case(item, policy, stats, shown_ids[item.case.id])
    print(
        f"targets (unrelated <= {TARGET_UNRELATED:.0%}, top-3 >= {TARGET_TOP3}): "
        f"{'met' if score.meets_targets() else 'NOT met'}"
    )
    if args.answers:
        by_id = {item.case.id: shown_for(item, policy, stats) for item in items}
        run_answers(cases, by_id, args.answers, limit=args.limit, review=args.review)
        print_answers(args.answers, cases)
    return 0  # a benchmark reports; tests/functional/test_analysis_bench.py asserts


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Case", "RetrievalScore", "entry_text", "load_cases", "retrieve_candidates", "score_retrieval"]
