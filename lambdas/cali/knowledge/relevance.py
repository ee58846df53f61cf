"""Is a retrieved runbook or past incident relevant to this incident? More than one cosine.

A cosine similarity between a log line and a runbook says "both are about failing
software": unrelated entries of the knowledge base score 0.35-0.55 against real logs they
were not written for (a ZooKeeper worker leaving -> "SQS queue backlog"). Three signals
are measured for each candidate the vector search returns:

* **line match**: the best cosine between one of the incident's lines (its message, the
  exception lines of its stack trace, the meaning of its error codes) and one of the
  example log lines the entry shows under "Symptoms". Log line against log line is far
  more telling than log line against a whole runbook: the same failure scores 0.65-1.0,
  a different failure of the same library rarely above 0.55;
* **lexical agreement**: the distinctive terms the incident and the entry share (exception
  types, error codes, key words such as ``enospc``, ``x509``, ``deadlock``) weighted by
  their inverse document frequency over the knowledge base, so words every entry uses
  ("error", "service", "failed") weigh almost nothing. Stack-frame lines and package
  paths (``com.acme.shop.``) are left out: they name the code, not the failure;
* the entry was recorded for this very **fingerprint** (the same template resolved before).

An entry is shown when it has the same fingerprint, or its line match reaches
``line_alone``, or its line match reaches ``min_line`` **and** its agreement reaches
``min_agreement``; and only within ``max_gap`` of the best line match shown. The numbers are
fitted on a labelled calibration set that is mostly negatives
(``python -m bench.analysis --calibrate``) and judged on a separate evaluation set.
A small ONNX cross-encoder would be another signal; none ships its weights inside a PyPI
package usable offline (flashrank and fastembed download them at run time).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from cali.contracts.analysis import SimilarIncident

# Words: a letter then letters/digits/underscores (so ``EAI_AGAIN``, ``x509``, ``HikariPool``
# stay whole; ``java.lang.OutOfMemoryError`` gives ``outofmemoryerror``). Numbers only when
# they look like a status or exit code (3 digits): ports, ids and counts are noise.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*|(?<![\d.])\d{3}(?![\d.])")
_TIMED_OUT = re.compile(r"\btimed?[\s_-]*out\b", re.IGNORECASE)
# ``java.lang.IllegalStateException`` -> ``IllegalStateException``: a package path names
# the code (and often the company), not the failure; two incidents of one app share it.
_DOTTED = re.compile(r"\b(?:[A-Za-z_][\w$]*\.){2,}([A-Za-z_][\w$]*)")
# A stack frame: Java/Node ``at ...``, Python ``File "..."``, Go function and file lines,
# ``... 3 more``. Frames name the code path, not the failure.
_FRAME = re.compile(
    r"""^\s*(?:at\s|File\s"|goroutine\s\d+\s\[|\.\.\.\s\d+\s(?:more|common)|\S+\.go:\d+"""
    r"""|(?:[\w.-]+/)+[\w.-]+\.(?:\(\*?\w+\)\.)?[\w.$]+\(.*\)$)"""
)
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
MAX_EXAMPLE_LINES = 8
MAX_LINE_CHARS = 300
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
    text = _DOTTED.sub(r"\1", _TIMED_OUT.sub(" timeout ", text))
    found: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if len(word) < 3 or word in _STOP:
            continue
        found.add(_stem(word))
    return found


def without_frames(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _FRAME.match(line))


def entry_text(title: str, tags: Sequence[str], symptoms: str = "") -> str:
    """What an entry is about, for the lexical check: its title, tags and symptoms (without
    stack frames). The root-cause prose is left out: measured, its ordinary words ("token",
    "client", "credential") matched unrelated incidents 3-4x more often."""
    named = " ".join([title, *(tag.replace("-", " ") + " " + tag for tag in tags)])
    return f"{named}\n{without_frames(symptoms)}" if symptoms else named


def example_lines(symptoms: str) -> tuple[str, ...]:
    """The log lines an entry shows under "Symptoms": its fenced blocks' lines, or, for an
    entry without one (a resolved incident: summary and template), its lines as written.
    Frames and very short lines are left out; at most :data:`MAX_EXAMPLE_LINES`."""
    blocks = _FENCE.findall(symptoms)
    text = "\n".join(blocks) if blocks else symptoms
    lines = [line.strip()[:MAX_LINE_CHARS] for line in without_frames(text).splitlines()]
    return tuple(dict.fromkeys(line for line in lines if len(line) >= 12))[:MAX_EXAMPLE_LINES]


@dataclass(frozen=True)
class TermStats:
    """Document frequencies of terms over the knowledge base (one document per entry)."""

    documents: int
    frequency: Mapping[str, int]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStats:
        return cls.from_term_sets(terms(text) for text in texts)

    @classmethod
    def from_term_sets(cls, sets: Iterable[Iterable[str]]) -> TermStats:
        counts: Counter[str] = Counter()
        documents = 0
        for found in sets:
            documents += 1
            counts.update(set(found))
        return cls(documents=documents, frequency=dict(counts))

    def weight(self, term: str) -> float:
        """Inverse document frequency over its own maximum: 0 for a term in every entry,
        about 1 for a term in one entry. Scaled so that a threshold on the sum means "about
        this many rare terms" whether the knowledge base holds 30 entries or 3,000 (a raw
        IDF grows with the log of its size)."""
        df = self.frequency.get(term, 0)
        scale = math.log(self.documents + 2)
        return max(0.0, math.log((self.documents + 1) / (df + 0.5)) / scale)


EMPTY_STATS = TermStats(documents=0, frequency={})


@dataclass(frozen=True)
class RelevancePolicy:
    """When a candidate is shown. Defaults: fitted by ``python -m bench.analysis --calibrate``."""

    min_cosine: float = 0.15
    """Floor of the vector search that finds candidates (the judge needs some to reject)."""
    line_alone: float = 0.78
    """Line match at which an entry is shown without lexical agreement."""
    min_line: float = 0.38
    min_agreement: float = 2.0
    max_gap: float = 0.05
    """Entries more than this below the best accepted line match are not shown: the second
    and third "similar" entries were the main source of unrelated runbooks."""
    min_share: float = 0.7
    """An entry's agreement must reach this share of the best agreement among the candidates
    whose lines match (``min_line``): when one entry shares clearly more of the incident's
    distinctive words, entries that share only a library's boilerplate ("An error occurred
    (...) when calling the ... operation") are weaker matches than their lines suggest."""


@lru_cache(maxsize=256)
def query_terms(query: str) -> frozenset[str]:
    """Terms of the incident's query text, without the service line (a past incident of the
    same service with another cause shares its name, not its failure) and stack frames.
    Cached: calibration judges one query under thousands of policies."""
    kept = [line for line in query.splitlines() if not line.startswith("Service: ")]
    return frozenset(terms(without_frames("\n".join(kept))))


def agreement(
    query_terms: frozenset[str], hit: SimilarIncident, stats: TermStats
) -> tuple[float, tuple[str, ...]]:
    shared = query_terms & set(hit.lexicon)
    ranked = sorted(shared, key=lambda t: (-stats.weight(t), t))
    return round(sum(stats.weight(t) for t in shared), 3), tuple(ranked)


def _accepts(policy: RelevancePolicy, line: float, weight: float, lead: float) -> bool:
    if line >= policy.line_alone:
        return True
    return line >= policy.min_line and weight >= max(policy.min_agreement, policy.min_share * lead)


@dataclass(frozen=True)
class Signals:
    """What the relevance check measured for one candidate (independent of the policy)."""

    hit: SimilarIncident
    agreement: float
    shared: tuple[str, ...]
    line_match: float
    same_fingerprint: bool


@dataclass(frozen=True)
class Judged(Signals):
    """A candidate's signals and the verdict on them."""

    relevant: bool


def measure(
    query: str,
    candidates: Sequence[SimilarIncident],
    stats: TermStats,
    *,
    line_scores: Mapping[str, float],
    fingerprint_ids: frozenset[str] = frozenset(),
) -> list[Signals]:
    """Each candidate's signals, best line match first (entries of the same fingerprint lead)."""
    wanted = query_terms(query)
    ordered = sorted(
        candidates,
        key=lambda hit: (hit.id not in fingerprint_ids, -line_scores.get(hit.id, 0.0), -hit.score, hit.id),
    )
    return [
        Signals(
            hit=hit,
            agreement=weight,
            shared=shared,
            line_match=round(line_scores.get(hit.id, 0.0), 4),
            same_fingerprint=hit.id in fingerprint_ids,
        )
        for hit in ordered
        for weight, shared in [agreement(wanted, hit, stats)]
    ]


def decide(signals: Sequence[Signals], policy: RelevancePolicy) -> list[Judged]:
    """The verdict on each measured candidate, in the same order."""
    lead = max((s.agreement for s in signals if s.line_match >= policy.min_line), default=0.0)
    judged: list[Judged] = []
    best: float | None = None
    for s in signals:
        relevant = s.same_fingerprint or (
            _accepts(policy, s.line_match, s.agreement, lead)
            and (best is None or s.line_match >= best - policy.max_gap)
        )
        if relevant and best is None:
            best = s.line_match
        judged.append(
            Judged(
                hit=s.hit,
                agreement=s.agreement,
                shared=s.shared,
                line_match=s.line_match,
                same_fingerprint=s.same_fingerprint,
                relevant=relevant,
            )
        )
    return judged


def judge(
    query: str,
    candidates: Sequence[SimilarIncident],
    stats: TermStats,
    policy: RelevancePolicy,
    *,
    line_scores: Mapping[str, float],
    fingerprint_ids: frozenset[str] = frozenset(),
) -> list[Judged]:
    """Every candidate with its signals and verdict, best line match first."""
    measured = measure(query, candidates, stats, line_scores=line_scores, fingerprint_ids=fingerprint_ids)
    return decide(measured, policy)


def relevant_hits(
    query: str,
    candidates: Sequence[SimilarIncident],
    stats: TermStats,
    policy: RelevancePolicy,
    *,
    top_k: int,
    line_scores: Mapping[str, float],
    fingerprint_ids: frozenset[str] = frozenset(),
) -> list[SimilarIncident]:
    """The candidates judged relevant, best first, each carrying what it matched on."""
    judged = judge(query, candidates, stats, policy, line_scores=line_scores, fingerprint_ids=fingerprint_ids)
    kept = [
        j.hit.model_copy(
            update={"agreement": j.agreement, "matched_terms": list(j.shared[:6]), "line_match": j.line_match}
        )
        for j in judged
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


class LineEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class LineMatcher:
    """Best cosine between the incident's lines and each candidate's example lines.

    Example-line vectors are kept per text (a warm Lambda embeds each runbook line once);
    the vectors are L2-normalised, so a cosine is a dot product.
    """

    def __init__(self, embedder: LineEmbedder, *, cache_size: int = 4096) -> None:
        self._embedder = embedder
        self._cache: dict[str, list[float]] = {}
        self._cache_size = cache_size

    def scores(self, lines: Sequence[str], candidates: Sequence[SimilarIncident]) -> dict[str, float]:
        """Embeds ``lines`` too (the analyzer embeds them with its query instead)."""
        wanted = distinct_lines(lines)
        if not wanted or not any(hit.examples for hit in candidates):
            return {}
        return self.scores_for(self._embedder.embed(wanted), candidates)

    def scores_for(
        self, line_vectors: Sequence[Sequence[float]], candidates: Sequence[SimilarIncident]
    ) -> dict[str, float]:
        """Best cosine per candidate, for incident lines already embedded."""
        examples = list(dict.fromkeys(text for hit in candidates for text in hit.examples))
        if not line_vectors or not examples:
            return {}
        missing = [text for text in examples if text not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self._cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, self._embedder.embed(missing), strict=True))
        return {
            hit.id: max(
                (_dot(q, self._cache[text]) for q in line_vectors for text in hit.examples),
                default=0.0,
            )
            for hit in candidates
        }


def distinct_lines(lines: Sequence[str]) -> list[str]:
    """Each non-blank line once, in order: what is worth embedding."""
    return [line for line in dict.fromkeys(lines) if line.strip()]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


CANDIDATES_PER_SHOWN = 3
"""Candidates fetched per entry that may be shown: the judge needs some to reject."""


def retrieve(
    knowledge: KnowledgeSearch,
    matcher: LineMatcher,
    vector: Sequence[float],
    query: str,
    line_vectors: Sequence[Sequence[float]],
    *,
    policy: RelevancePolicy,
    top_k: int,
    service: str | None,
    fingerprint: str | None,
) -> list[SimilarIncident]:
    """Search by meaning, match lines, then keep what the relevance check accepts.
    ``line_vectors`` are the incident's lines (``distinct_lines``) embedded."""
    candidates = knowledge.search(
        vector,
        top_k=top_k * CANDIDATES_PER_SHOWN,
        min_score=policy.min_cosine,
        service=service,
        fingerprint=fingerprint,
    )
    same = frozenset(hit.id for hit in candidates if fingerprint and hit.fingerprint == fingerprint)
    return relevant_hits(
        query,
        candidates,
        knowledge.term_stats(),
        policy,
        top_k=top_k,
        line_scores=matcher.scores_for(line_vectors, candidates),
        fingerprint_ids=same,
    )
