"""Grounding: keep only citations of what was retrieved and evidence that occurs in the logs sent."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

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
_MIN_EVIDENCE_CHARS = 4


def _evidence_text(text: str) -> str:
    return _normalise(_ANY_PLACEHOLDER.sub(_OPAQUE, text))


def _grounded(needle: str, haystack: str) -> bool:
    said = sum(1 for c in needle if c.isalnum())
    return said >= _MIN_EVIDENCE_CHARS and needle in haystack


_QUOTE_WRAPPING = "\"'`“”‘’ …."
_SAFE_ID = re.compile(r"[^\w.\-:#/]")


def check_grounding(analysis: LlmAnalysis, prompt: Prompt) -> tuple[LlmAnalysis, list[str]]:
    """Remove unsupported citations and quotes; return the cleaned answer and the flags."""
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

    haystack = _evidence_text(prompt.log_text)
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

    confidence = analysis.confidence
    if not evidence and not cited:
        flags.append("root_cause_unsupported")
        confidence = "low"
    cleaned = analysis.model_copy(update={"cited_ids": cited, "evidence": evidence, "confidence": confidence})
    return cleaned, flags
