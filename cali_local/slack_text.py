"""Render a Slack Block Kit message as plain text, roughly as a person sees it in Slack."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_LINK = re.compile(r"<([^|<>]+)\|([^<>]+)>")
_BARE_LINK = re.compile(r"<(https?://[^<>]+)>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def _mrkdwn(text: str) -> str:
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def _text_of(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return ""
    text = str(obj.get("text", ""))
    return _mrkdwn(text) if obj.get("type") == "mrkdwn" else text


def _header(block: Mapping[str, Any], width: int) -> list[str]:
    title = _text_of(block.get("text"))
    return [title, "=" * min(width, len(title))]


def _section(block: Mapping[str, Any], width: int) -> list[str]:
    lines: list[str] = []
    if block.get("text"):
        lines += _wrap(_text_of(block["text"]), width)
    for field in block.get("fields", []):
        lines += _wrap(_text_of(field).replace("\n", " "), width, indent="  ")
    accessory = block.get("accessory")
    if accessory and accessory.get("type") == "button":
        lines.append(f"  [{_text_of(accessory.get('text'))}] {accessory.get('url', '')}")
    return lines


def _context(block: Mapping[str, Any], width: int) -> list[str]:
    elements = block.get("elements", [])
    parts = [_text_of(e) for e in elements if e.get("type") in ("mrkdwn", "plain_text")]
    return _wrap(" | ".join(parts), width, indent="  ")


def _actions(block: Mapping[str, Any], width: int) -> list[str]:
    buttons = [
        f"[{_text_of(e.get('text'))}] {e.get('url', '')}".rstrip()
        for e in block.get("elements", [])
        if e.get("type") == "button"
    ]
    return [f"  {b}" for b in buttons]


def _divider(block: Mapping[str, Any], width: int) -> list[str]:
    return ["-" * min(width, 60)]


def _rich_text(block: Mapping[str, Any], width: int) -> list[str]:
    return ["  (rich text)"]


# How each block type reads as text; other types (image, ...) show nothing.
_BLOCKS: dict[str, Callable[[Mapping[str, Any], int], list[str]]] = {
    "header": _header,
    "section": _section,
    "context": _context,
    "actions": _actions,
    "divider": _divider,
    "rich_text": _rich_text,
}


def render(blocks: Sequence[Mapping[str, Any]], fallback: str = "", width: int = 100) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        draw = _BLOCKS.get(kind) if isinstance(kind, str) else None
        if draw is not None:
            lines += draw(block, width)
    if not lines and fallback:
        lines = _wrap(_mrkdwn(fallback), width)
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    out: list[str] = []
    in_code = False
    for raw in text.split("\n"):
        if raw.strip().startswith("```"):
            in_code = not in_code
            rest = raw.strip()[3:]
            if rest.endswith("```"):
                in_code = not in_code
                rest = rest[:-3]
            if rest:
                out.append(f"{indent}    {rest}")
            continue
        if in_code:
            out.append(f"{indent}    {raw[: width - 4]}")
        else:
            out += textwrap.wrap(raw, width=width, initial_indent=indent, subsequent_indent=indent) or [""]
    return out
