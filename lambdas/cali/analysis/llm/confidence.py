"""The confidence an alert shows: computed, not copied from the model.

A small model says ``high`` about everything (every new alert of a measured run did,
including one whose evidence was all fabricated). The shown confidence is the model's
claim capped by what supports it:

* **evidence survival**: no quote found in the log text -> ``low``; fewer than half of the
  quotes found -> ``low``; any quote not found -> at most ``medium`` (a model that invents
  one quote may invent the cause);
* **retrieval relevance**: ``high`` needs a cited knowledge entry that passed the relevance
  check (only such entries are sent). Without one the cause rests on the model's reading
  of a few log lines: at most ``medium``;
* **a pasted cause**: a root cause that is mostly the text of a knowledge entry's cause
  is the entry's hypothesis, not something the logs showed: at most ``medium`` (the
  model pasted a runbook's "slow query or pool too small" over a database that refused
  connections, with real but unrelated quotes);
* **the model's own claim**: never raised, and an answer that says the cause is unknown is
  ``low`` whatever else it claims.

Each cap is reported as a flag (``confidence_capped:<from>-><to>:<reason>``) so the reader
and the evaluation can see why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cali.contracts.analysis import Confidence

_RANK: dict[Confidence, int] = {"low": 0, "medium": 1, "high": 2}
_LEVEL: dict[int, Confidence] = {rank: level for level, rank in _RANK.items()}


@dataclass(frozen=True)
class Support:
    claimed: Confidence
    cause_known: bool
    quotes_written: int
    quotes_kept: int
    cited_relevant: Sequence[str]
    """Cited ids that were sent as relevant knowledge (unknown citations already removed)."""
    cause_copied: bool = False
    """The root cause is mostly a knowledge entry's own text: a hypothesis, not a diagnosis."""


def calibrated_confidence(support: Support) -> tuple[Confidence, list[str]]:
    caps: list[tuple[Confidence, str]] = []
    if not support.cause_known:
        caps.append(("low", "cause_unknown"))
    if support.quotes_kept == 0:
        caps.append(("low", "no_evidence_in_logs"))
    elif support.quotes_kept * 2 < support.quotes_written:
        caps.append(("low", "most_evidence_not_in_logs"))
    elif support.quotes_kept < support.quotes_written:
        caps.append(("medium", "some_evidence_not_in_logs"))
    if not support.cited_relevant:
        caps.append(("medium", "no_relevant_entry_cited"))
    if support.cause_copied:
        caps.append(("medium", "cause_copied_from_knowledge"))

    level = _RANK[support.claimed]
    flags: list[str] = []
    for cap, reason in sorted(caps, key=lambda c: _RANK[c[0]]):
        if _RANK[cap] < level:
            flags.append(f"confidence_capped:{_LEVEL[level]}->{cap}:{reason}")
            level = _RANK[cap]
    return _LEVEL[level], flags


_WORD = re.compile(r"[a-z0-9]{4,}")
COPIED_SHARE = 0.7
"""Share of the answer's words (4+ letters) found in one entry's cause that makes it a copy."""


def copied_from(cause: str, knowledge_causes: Sequence[str]) -> bool:
    words = _WORD.findall(cause.casefold())
    if len(words) < 6:
        return False
    for source in knowledge_causes:
        vocabulary = set(_WORD.findall(source.casefold()))
        if vocabulary and sum(1 for w in words if w in vocabulary) >= COPIED_SHARE * len(words):
            return True
    return False
