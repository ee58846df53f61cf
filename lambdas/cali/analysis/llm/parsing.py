"""Parse the model's answer into ``LlmAnalysis``; any failure is an ``LlmUnavailableError``."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from pydantic import ValidationError

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


_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL)


def parse_answer(content: str) -> LlmAnalysis:
    text = content.strip()
    fenced = _FENCE.match(text)  # some OpenAI-compatible servers wrap JSON in a fence
    if fenced:
        text = fenced.group("body")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LlmUnavailableError(f"LLM answer was not valid JSON ({exc.msg} at char {exc.pos})") from exc
    try:
        return LlmAnalysis.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        raise LlmUnavailableError(
            f"LLM answer did not match the schema ({exc.error_count()} errors, "
            f"first: {where}: {first['msg']})"
        ) from exc
