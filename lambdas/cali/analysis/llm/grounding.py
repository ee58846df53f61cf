"""Grounding: keep only citations of what was retrieved and evidence that occurs in the logs sent."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from cali.analysis.llm.confidence import Support, calibrated_confidence, copied_from
from cali.analysis.llm.prompt import Prompt
from cali.contracts.analysis import LlmAnalysis

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


# Placeholders count as one opaque symbol when matching evidence: a quote that is only a
# placeholder, or a piece of one ("EMAIL_1"), quotes nothing the logs actually said.
_ANY_PLACEHOLDER = re.compile(r"<[A-Za-z][A-Za-z0-9_]*_\d+>")
_OPAQUE = "\ue000"
MIN_QUOTE_CHARS = 12
"""Letters and digits a quote must carry (placeholders not counted): ``ERROR gateway`` or a
lone word proves nothing about a cause; ``No space left on device`` does."""
MIN_QUOTE_WORDS = 2


def _evidence_text(text: str) -> str:
    return _normalise(_ANY_PLACEHOLDER.sub(_OPAQUE, text))


def _grounded(needle: str, haystack: str) -> bool:
    said = sum(1 for c in needle if c.isalnum())
    return said >= MIN_QUOTE_CHARS and len(needle.split()) >= MIN_QUOTE_WORDS and needle in haystack


_QUOTE_WRAPPING = "\"'`“”‘’ …."
_SAFE_ID = re.compile(r"[^\w.\-:#/]")


def check_grounding(analysis: LlmAnalysis, prompt: Prompt) -> tuple[LlmAnalysis, list[str]]:
    """Remove unsupported citations and quotes, then compute the confidence to show from
    what survived (``cali.llm_confidence``); return the cleaned answer and the flags."""
    flags: list[str] = []
    allowed = {i.casefold(): i for i in prompt.knowledge_ids}
    cited: list[str] = []
    for raw in analysis.cited_ids:
        canonical = allowed.get(raw.strip().strip("[]").strip().casefold())
        if canonical is None:
            # Flags are shown to people: keep only id-like characters of what the model wrote.
            flags.append(f"cited_id_not_retrieved:{_SAFE_ID.sub('', raw)[:40]}")
            logger.warning("LLM cited an id that was not retrieved", extra={"cited_id": raw[:200]})
        elif canonical not in cited:
            cited.append(canonical)

    haystack = _evidence_text(prompt.evidence_text)
    evidence: list[str] = []
    rejected = 0
    for quote in analysis.evidence:
        needle = _evidence_text(quote).strip(_QUOTE_WRAPPING)
        if _grounded(needle, haystack):
            evidence.append(quote)
        else:
            rejected += 1
            logger.warning("LLM evidence not found in the logs", extra={"quote": quote[:200]})
    if rejected:
        flags.append(f"evidence_not_in_logs:{rejected}")
    if not evidence:
        flags.append("root_cause_unsupported")

    confidence, capped = calibrated_confidence(
        Support(
            claimed=analysis.confidence,
            cause_known=analysis.cause_known,
            quotes_written=len(analysis.evidence),
            quotes_kept=len(evidence),
            cited_relevant=cited,
            cause_copied=copied_from(analysis.probable_root_cause, prompt.knowledge_causes),
        )
    )
    flags.extend(capped)
    cleaned = analysis.model_copy(
        update={
            "cited_ids": cited,
            "evidence": evidence,
            "confidence": confidence,
            "model_confidence": analysis.model_confidence or analysis.confidence,
        }
    )
    return cleaned, flags
