"""Parse the model's answer into ``LlmAnalysis``; any failure is an ``LlmUnavailableError``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cali.analysis.llm.extract import NoAnswerObjectError, coerce_answer, extract_answer
from cali.contracts.analysis import LlmAnalysis, LlmUsage

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


class LlmUnavailableError(Exception):
    """The answer cannot be used; ``reason`` is shown to the reader of the alert."""

    def __init__(self, reason: str, *, usage: LlmUsage | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage


def parse_answer(content: str) -> tuple[LlmAnalysis, list[str]]:
    """The answer in ``content`` (fenced, surrounded by prose or wrapped: see ``llm_extract``),
    fitted to ``LlmAnalysis``; also the flags saying what had to be fixed."""
    try:
        data, notes = coerce_answer(extract_answer(content))
    except NoAnswerObjectError as exc:
        raise LlmUnavailableError(f"LLM answer unusable: {exc}") from exc
    try:
        return LlmAnalysis.model_validate(data), notes
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise LlmUnavailableError(
            f"LLM answer did not match the schema ({exc.error_count()} errors, "
            f"first: {where}: {first['msg']})"
        ) from exc
