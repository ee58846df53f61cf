"""Untrusted text made safe for Slack: mrkdwn escaping, broken broadcasts, code blocks, checked
URLs, and every Block Kit text limit (slack_sdk checks only some of them).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
HEADER_TEXT_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
MAX_ACTIONS = 25
MAX_CONTEXT_ELEMENTS = 10
CONTEXT_TEXT_MAX = 2000
# chat.postMessage accepts 40,000 characters of text, but the fallback shows in
# notifications and must stay short.
FALLBACK_TEXT_MAX = 3000
ELLIPSIS = "…"

_ZWSP = "\u200b"
# No trailing \b: "@channelé" has no word boundary, but a cut to a limit turns it into
# "@channel". Breaking "@heretic" too is invisible (a zero-width space).
_BROADCAST = re.compile(r"@(channel|here|everyone)", re.IGNORECASE)
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
_SAFE_URL_CHARS = "/:?#[]@!$&'()*+,;=%~-._"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def _neutralise_broadcasts(text: str) -> str:
    return _BROADCAST.sub(lambda m: "@" + _ZWSP + m.group(1), text)


def escape_mrkdwn(text: str) -> str:
    """Make untrusted text inert in mrkdwn: no mentions, links or broadcasts."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _neutralise_broadcasts(escaped)


def plain(text: str) -> str:
    """Untrusted text for ``plain_text`` objects, which Slack does not unescape.

    Angle brackets become look-alike guillemets so ``<!channel>`` cannot survive even if a
    client renders the text as mrkdwn; line breaks are flattened for the header.
    """
    text = text.replace("<", "‹").replace(">", "›")
    text = " ".join(text.split())
    return _neutralise_broadcasts(text)


def _fit_escaped(raw: str, limit: int) -> str:
    """Escape, then cut to ``limit`` without splitting an ``&amp;`` entity."""
    escaped = escape_mrkdwn(raw)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: max(limit - len(ELLIPSIS), 0)]
    cut = _ENTITY_TAIL.sub("", cut)
    return cut + ELLIPSIS


def _code_block(raw: str, limit: int) -> str:
    """A fenced code block that fits in ``limit`` characters and cannot be closed early."""
    fence = "```"
    body_limit = max(limit - 2 * len(fence) - 2, 0)
    # A zero-width space between backticks keeps the content's ``` from closing our fence.
    body = _fit_escaped(raw.replace("`", "`" + _ZWSP), body_limit)
    if body.endswith("`" + _ZWSP) or body.endswith("`"):
        body += _ZWSP
    return f"{fence}\n{body}\n{fence}"


def _inline_code(raw: str, limit: int) -> str:
    body = _fit_escaped(" ".join(raw.replace("`", "ˋ").split()), max(limit - 2, 1))
    return f"`{body}`"


def safe_url(url: str | None, max_length: int = BUTTON_URL_MAX) -> str | None:
    """An http(s) URL usable inside ``<url|label>``, or ``None`` if it is not one."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    # "|", "<", ">" and spaces would end the link syntax; percent-encode them.
    encoded = quote(url, safe=_SAFE_URL_CHARS)
    if len(encoded) > max_length:
        return None
    return encoded


def _link(url: str | None, label: str, limit: int = 300) -> str:
    text = _fit_escaped(label.replace("|", "¦"), limit)
    checked = safe_url(url, max_length=500)
    return f"<{checked}|{text}>" if checked else text
