"""Find the answer object in what a model actually wrote.

Small and self-hosted models do not always answer with a bare JSON object: they wrap it
in a Markdown fence, put a sentence before or after it, or echo the shape they were shown
and nest the answer inside it (``{"type": "object", "properties": {...answer...}}``). The
answer is taken from the first JSON object in the text that carries the answer's keys,
looking inside one level of wrapper; anything else is an error the caller reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

REQUIRED_KEYS = frozenset({"summary", "probable_root_cause"})
_WRAPPER_KEYS = ("properties", "answer", "analysis", "result", "response", "output", "data")


class NoAnswerObjectError(ValueError):
    """No JSON object with the answer's keys was found; the message says what was seen."""


def _objects(text: str) -> Iterator[dict[str, Any]]:
    """Every top-level JSON object in ``text``, in order (fences and prose are skipped)."""
    decoder = json.JSONDecoder()
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            yield value
        index = text.find("{", end)


def _unwrap(value: dict[str, Any]) -> dict[str, Any] | None:
    if value.keys() >= REQUIRED_KEYS:
        return value
    for key in _WRAPPER_KEYS:
        inner = value.get(key)
        if isinstance(inner, dict) and inner.keys() >= REQUIRED_KEYS:
            return inner
    if len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, dict) and inner.keys() >= REQUIRED_KEYS:
            return inner
    return None


def _looks_like_schema(value: dict[str, Any]) -> bool:
    """A copy of a JSON Schema property ({"type": "string", ...}) rather than an answer."""
    return isinstance(value.get("type"), str) and ("description" in value or "maxLength" in value)


def extract_answer(content: str) -> dict[str, Any]:
    """The answer object in ``content``; ``NoAnswerObjectError`` when there is none."""
    seen = 0
    for value in _objects(content):
        seen += 1
        answer = _unwrap(value)
        if answer is None:
            continue
        if any(isinstance(v, dict) and _looks_like_schema(v) for v in answer.values()):
            continue  # the schema itself, echoed back: keep looking for the answer
        return answer
    if seen == 0:
        raise NoAnswerObjectError("no JSON object in the answer")
    raise NoAnswerObjectError(
        f"none of the {seen} JSON object(s) in the answer has summary and probable_root_cause"
    )


_TEXT_LIMITS = {"summary": 600, "probable_root_cause": 1200}
_LIST_LIMITS = {"evidence": 8, "cited_ids": 10, "next_actions": 8, "unknowns": 8}
_CONFIDENCE_WORDS = {"high": "high", "medium": "medium", "moderate": "medium", "low": "low"}


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [
            item if isinstance(item, str) else json.dumps(item) for item in value if item not in (None, "")
        ]
    return [str(value)]


def coerce_answer(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Fit a model's answer to ``LlmAnalysis``: extra keys dropped, a string where a list was
    asked for wrapped, over-long text clipped, ``confidence`` words mapped. What was changed
    is returned as flags; a missing or unusable required field is left for validation."""
    notes: list[str] = []
    data: dict[str, Any] = {}
    extra = sorted(set(answer) - {*_TEXT_LIMITS, *_LIST_LIMITS, "confidence", "cause_known"})
    if extra:
        notes.append(f"answer_extra_keys_dropped:{len(extra)}")
    for key, limit in _TEXT_LIMITS.items():
        value = answer.get(key)
        # Text that is not text is left for validation to refuse: it is not an answer.
        data[key] = value[: limit - 1] + "…" if isinstance(value, str) and len(value) > limit else value
    for key, limit in _LIST_LIMITS.items():
        if key in answer:
            data[key] = [item[:500] for item in _as_list(answer[key])][:limit]
    confidence = str(answer.get("confidence", "")).strip().casefold()
    data["confidence"] = _CONFIDENCE_WORDS.get(confidence, "low")
    if confidence not in _CONFIDENCE_WORDS:
        notes.append("answer_confidence_missing")
    known = answer.get("cause_known", True)
    data["cause_known"] = (
        known if isinstance(known, bool) else str(known).casefold() not in ("false", "no", "0")
    )
    return data, notes
