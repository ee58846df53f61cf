"""Is a retrieved runbook or past incident relevant to this incident? More than one cosine.

A cosine similarity between a log line and a runbook says "both are about failing
software": unrelated entries of the knowledge base score 0.35-0.55 against real logs they
were not written for (a ZooKeeper worker leaving -> "SQS queue backlog"). An entry is
shown only when

* it was recorded for this very fingerprint (the same log template resolved before), or
* its cosine clears ``min_cosine`` **and** the incident and the entry agree lexically:
  they share distinctive terms (exception types, error codes, key words such as
  ``enospc``, ``x509``, ``deadlock``, ``hikaripool``) whose weight, an inverse document
  frequency over the whole knowledge base, reaches ``min_agreement``; words every entry
  uses ("error", "service", "failed") weigh almost nothing, or
* its cosine alone is very high (``strong_cosine``).

The three numbers are fitted on a labelled calibration set that is mostly negatives
(``python -m bench.analysis --calibrate``) and judged on a separate evaluation set.
A small ONNX cross-encoder would be a third signal; none ships its weights inside a
PyPI package usable offline (flashrank and fastembed download them at run time), so the
measured choice was between cosine alone and cosine with lexical agreement.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cali.contracts.analysis import SimilarIncident

# Words: a letter then letters/digits/underscores (so ``EAI_AGAIN``, ``x509``, ``HikariPool``
# stay whole; ``java.lang.OutOfMemoryError`` gives ``outofmemoryerror``). Numbers only when
# they look like a status or exit code (3 digits): ports, ids and counts are noise.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*|(?<![\d.])\d{3}(?![\d.])")
_TIMED_OUT = re.compile(r"\btimed?[\s_-]*out\b", re.IGNORECASE)
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "that",
        "this",
        "was",
        "were",
        "are",
        "has",
        "have",
        "had",
        "not",
        "but",
        "its",
        "into",
        "over",
        "than",
        "then",
        "when",
        "which",
        "while",
        "after",
        "before",
        "about",
        "under",
        "more",
        "most",
        "some",
        "any",
        "all",
        "can",
        "could",
        "would",
        "should",
        "will",
        "our",
        "your",
        "their",
        "there",
        "these",
        "those",
        "been",
        "being",
        "also",
        "only",
        "just",
        "very",
        "via",
        "per",
        "out",
        "off",
        "too",
    ]
)


def _stem(word: str) -> str:
    # Enough to meet "timeouts"/"timeout", "rotated"/"rotation" would need more and is not
    # worth a dependency: the knowledge base's tags already name the key terms.
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """The distinctive-term candidates of a text (lower-cased, lightly stemmed, no stop words)."""
    text = _TIMED_OUT.sub(" timeout ", text)
    found: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if len(word) < 3 or word in _STOP:
            continue
        found.add(_stem(word))
    return found


def entry_text(title: str, tags: Sequence[str]) -> str:
    """What an entry is about, for the lexical check: its title and tags, the vocabulary its
    author chose. Measured: adding the root-cause prose (or the symptoms) raised recall on
    the calibration set but showed 3-4x more unrelated entries on the evaluation set, its
    ordinary words ("token", "client", "credential") matching unrelated incidents."""
    return " ".join([title, *(tag.replace("-", " ") + " " + tag for tag in tags)])


@dataclass(frozen=True)
class TermStats:
    """Document frequencies of terms over the knowledge base (one document per entry)."""

    documents: int
    frequency: Mapping[str, int]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStats:
        counts: Counter[str] = Counter()
        documents = 0
        for text in texts:
            documents += 1
            counts.update(terms(text))
        return cls(documents=documents, frequency=dict(counts))

    def weight(self, term: str) -> float:
        """Inverse document frequency: 0 for a term in every entry, highest for a rare one."""
        df = self.frequency.get(term, 0)
        return max(0.0, math.log((self.documents + 1) / (df + 0.5)))


EMPTY_STATS = TermStats(documents=0, frequency={})


@dataclass(frozen=True)
class RelevancePolicy:
    """When a candidate is shown. Defaults: fitted by ``python -m bench.analysis --calibrate``."""

    min_cosine: float = 0.35
    min_agreement: float = 7.0
    strong_cosine: float = 0.60
    max_gap: float = 0.05
    """Entries more than this below the best accepted cosine are not shown: the second and
    third "similar" entries were the main source of unrelated runbooks."""


@dataclass(frozen=True)
class Judged:
    hit: SimilarIncident
    agreement: float
    shared: tuple[str, ...]
    relevant: bool


def query_terms(query: str) -> set[str]:
    """Terms of the incident's query text, without the service line: a past incident of
    the same service with another cause shares its name, not its failure."""
    return terms("\n".join(line for line in query.splitlines() if not line.startswith("Service: ")))


def agreement(query_terms: set[str], hit: SimilarIncident, stats: TermStats) -> tuple[float, tuple[str, ...]]:
    shared = query_terms & terms(entry_text(hit.title, hit.tags))
    ranked = sorted(shared, key=lambda t: (-stats.weight(t), t))
    return round(sum(stats.weight(t) for t in shared), 3), tuple(ranked)


def judge(
    query: str,
    candidates: Sequence[SimilarIncident],
    stats: TermStats,
    policy: RelevancePolicy,
    *,
    fingerprint_ids: frozenset[str] = frozenset(),
) -> list[Judged]:
    """Every candidate with its lexical agreement and verdict, in the candidates' order
    (best cosine first, as the store returns them)."""
    wanted = query_terms(query)
    judged: list[Judged] = []
    best: float | None = None
    for hit in candidates:
        score, shared = agreement(wanted, hit, stats)
        relevant = hit.id in fingerprint_ids or (
            hit.score >= policy.min_cosine
            and (hit.score >= policy.strong_cosine or score >= policy.min_agreement)
            and (best is None or hit.score >= best - policy.max_gap)
        )
        if relevant and best is None:
            best = hit.score
        judged.append(Judged(hit=hit, agreement=score, shared=shared, relevant=relevant))
    return judged


def relevant_hits(
    query: str,
    candidates: Sequence[SimilarIncident],
    stats: TermStats,
    policy: RelevancePolicy,
    *,
    top_k: int,
    fingerprint_ids: frozenset[str] = frozenset(),
) -> list[SimilarIncident]:
    """The candidates judged relevant, best cosine first, each carrying what it matched on."""
    kept = [
        j.hit.model_copy(update={"agreement": j.agreement, "matched_terms": list(j.shared[:6])})
        for j in judge(query, candidates, stats, policy, fingerprint_ids=fingerprint_ids)
        if j.relevant
    ]
    return kept[:top_k]


class KnowledgeSearch(Protocol):
    def search(
        self,
        vector: Sequence[float],
        *,
        top_k: int,
        min_score: float,
        service: str | None = None,
        source: str | None = None,
        fingerprint: str | None = None,
    ) -> list[SimilarIncident]: ...

    def term_stats(self) -> TermStats: ...


CANDIDATES_PER_SHOWN = 3
"""Candidates fetched per entry that may be shown: the judge needs some to reject."""


def retrieve(
    knowledge: KnowledgeSearch,
    vector: Sequence[float],
    query: str,
    *,
    policy: RelevancePolicy,
    top_k: int,
    service: str | None,
    fingerprint: str | None,
) -> list[SimilarIncident]:
    """Search by meaning, then keep what the relevance check accepts (the analyzer's path)."""
    candidates = knowledge.search(
        vector,
        top_k=top_k * CANDIDATES_PER_SHOWN,
        min_score=policy.min_cosine,
        service=service,
        fingerprint=fingerprint,
    )
    same = frozenset(hit.id for hit in candidates if fingerprint and hit.fingerprint == fingerprint)
    return relevant_hits(query, candidates, knowledge.term_stats(), policy, top_k=top_k, fingerprint_ids=same)
