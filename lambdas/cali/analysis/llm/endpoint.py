"""What kind of endpoint the LLM is, and the request options and time limits that suit it.

Two kinds behave differently enough to need different numbers:

* **hosted APIs** (OpenAI and alike) answer in seconds, scale out, and a retry after a
  timeout or 5xx usually lands on another replica: 20 s per attempt, 2 retries;
* **self-hosted servers** (llama.cpp, vLLM, Ollama on a CPU or one GPU) take a minute or
  more for one analysis, serve one request at a time and keep computing a request whose
  client gave up. A retry after a timeout would queue behind the abandoned request and
  time out too, so there is none: 240 s for the one attempt, 0 retries. Their tokens
  cost nothing per call, so the price is zero unless ``LLM_PRICES`` says otherwise.

An endpoint is self-hosted when ``LLM_SELF_HOSTED`` says so or, unset, when its base URL
points at a loopback, private or cluster-internal address. Explicit
``LLM_TIMEOUT_SECONDS`` / ``LLM_MAX_RETRIES`` always win.

``response_format`` is tried in the order ``json_schema`` (the answer's exact shape),
``json_object``, none; a server that rejects one (HTTP 400/422, or 500 as llama.cpp's
server does for ``json_schema``) gets the next, and the choice sticks for the process.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

HOSTED_TIMEOUT_SECONDS = 20.0
HOSTED_MAX_RETRIES = 2
SELF_HOSTED_TIMEOUT_SECONDS = 240.0
SELF_HOSTED_MAX_RETRIES = 0

_INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".svc", ".cluster.local", ".lan", ".home.arpa")


def is_self_hosted(base_url: str | None) -> bool:
    """True for a base URL on a loopback, private, link-local or cluster-internal host."""
    if not base_url:
        return False
    host = (urlparse(base_url).hostname or "").casefold()
    if not host:
        return False
    if host == "localhost" or "." not in host or host.endswith(_INTERNAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


@dataclass(frozen=True)
class EndpointLimits:
    self_hosted: bool
    timeout_seconds: float
    max_retries: int


def endpoint_limits(
    base_url: str | None,
    *,
    self_hosted: bool | None = None,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
) -> EndpointLimits:
    """The limits for this endpoint: explicit settings first, then the kind's defaults."""
    local = is_self_hosted(base_url) if self_hosted is None else self_hosted
    return EndpointLimits(
        self_hosted=local,
        timeout_seconds=timeout_seconds
        if timeout_seconds is not None
        else (SELF_HOSTED_TIMEOUT_SECONDS if local else HOSTED_TIMEOUT_SECONDS),
        max_retries=max_retries
        if max_retries is not None
        else (SELF_HOSTED_MAX_RETRIES if local else HOSTED_MAX_RETRIES),
    )


def answer_json_schema() -> dict[str, Any]:
    """The answer's shape for ``response_format: json_schema`` (strict mode: every property
    required, no extra ones, no length keywords, which some servers cannot compile)."""
    strings = {"type": "array", "items": {"type": "string"}}
    properties: dict[str, Any] = {
        "summary": {"type": "string"},
        "cause_known": {"type": "boolean"},
        "probable_root_cause": {"type": "string"},
        "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        "evidence": strings,
        "cited_ids": strings,
        "next_actions": strings,
        "unknowns": strings,
    }
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "incident_analysis",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


RESPONSE_FORMATS: tuple[dict[str, Any] | None, ...] = (answer_json_schema(), {"type": "json_object"}, None)
"""Tried in this order; ``None`` sends no ``response_format`` at all."""


def rejects_response_format(status: int | None, error: str, *, sent_json_schema: bool) -> bool:
    """Does this error look like the server refusing the ``response_format`` we sent?"""
    text = error.casefold()
    if status in (400, 422):
        return "response_format" in text or "json" in text or "schema" in text or "grammar" in text
    # llama.cpp's server answers json_schema with a bare 500. Only then is a 500 taken for a
    # refusal (once per process); with a plainer format a 500 is the server's own failure.
    return sent_json_schema and status in (500, 501)
