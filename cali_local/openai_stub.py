"""A local HTTP server that behaves like an OpenAI-compatible chat-completions API.

No generative model can run in CI, so the analyzer's tests talk to this server over real
HTTP through the real ``openai`` SDK. It reproduces what matters to a client: the
``/v1/chat/completions`` request and response shapes, token usage, ``max_tokens``
truncation (``finish_reason="length"``), OpenAI-style error bodies, 429 with
``Retry-After``, 5xx, servers that reject ``response_format`` and answers slower than the
client's timeout.

Replies are scripted per request (``stub.script(...)``); when the script is empty the
``default`` responder answers. The built-in responder is a deterministic "analyst" that
returns a valid answer grounded in the prompt (it quotes the first log line and cites the
first knowledge id), which is enough for ``make demo`` when asked to use it. It is not a
model: it never reasons about the logs.

Run it standalone: ``python -m cali_local.openai_stub --port 8089`` and point
``LLM_BASE_URL`` at ``http://127.0.0.1:8089/v1``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class StubReply:
    """One scripted answer. ``content`` is the assistant message text (any string: the
    stub does not check it is JSON, so malformed output can be scripted)."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = ""
    delay_seconds: float = 0.0
    usage: dict[str, int] | None = None
    omit_usage: bool = False
    """Some OpenAI-compatible servers send no ``usage`` at all."""

    @staticmethod
    def answer(content: str | dict[str, Any], *, delay_seconds: float = 0.0) -> StubReply:
        text = content if isinstance(content, str) else json.dumps(content)
        return StubReply(content=text, delay_seconds=delay_seconds)

    @staticmethod
    def rate_limited(retry_after_seconds: float) -> StubReply:
        return StubReply(
            status=429,
            headers={"Retry-After": f"{retry_after_seconds:g}"},
            error_message="Rate limit reached for requests",
        )

    @staticmethod
    def server_error(status: int = 500) -> StubReply:
        return StubReply(status=status, error_message="The server had an error processing your request.")


@dataclass(frozen=True)
class RecordedRequest:
    received_at: float
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def estimate_tokens(text: str) -> int:
    """Roughly what a BPE tokenizer counts for English/log text: 4 characters per token."""
    return max(1, math.ceil(len(text) / 4))


_KNOWLEDGE_ID = re.compile(r"^\[(?P<id>[A-Za-z0-9][\w.\-#:/]*)\]", re.MULTILINE)
_LOGS_BLOCK = re.compile(r"<<<LOGS\n(?P<body>.*?)\nLOGS>>>", re.DOTALL)
_KNOWLEDGE_BLOCK = re.compile(r"<<<KNOWLEDGE\n(?P<body>.*?)\nKNOWLEDGE>>>", re.DOTALL)


def grounded_responder(request: dict[str, Any]) -> str:
    """Answer from the prompt alone: quote the first log message, cite the first knowledge id."""
    prompt = "\n".join(
        str(m.get("content", "")) for m in request.get("messages", []) if m.get("role") == "user"
    )
    logs = _LOGS_BLOCK.search(prompt)
    lines = [ln.strip() for ln in (logs.group("body") if logs else "").splitlines()]
    messages = [ln.split("message: ", 1)[1] for ln in lines if ln.startswith("message: ")]
    quote = messages[0][:160] if messages else ""
    knowledge = _KNOWLEDGE_BLOCK.search(prompt)
    ids = _KNOWLEDGE_ID.findall(knowledge.group("body") if knowledge else "")
    answer = {
        "summary": f"Repeated failure: {quote[:200]}" if quote else "Repeated failure in the service.",
        "probable_root_cause": (
            f"Matches known issue {ids[0]}." if ids else "Not enough information in the logs to tell."
        ),
        "confidence": "medium" if ids and quote else "low",
        "evidence": [quote] if quote else [],
        "cited_ids": ids[:1],
        "next_actions": ["Follow the linked runbook." if ids else "Inspect the logs around first_seen."],
        "unknowns": ["Whether a recent deploy changed this path."],
    }
    return json.dumps(answer)


class OpenAiStub:
    """Threaded local server; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        *,
        default: Responder = grounded_responder,
        host: str = "127.0.0.1",
        port: int = 0,
        reject_response_format: bool = False,
        json_schema_status: int | None = None,
        unsupported_params: frozenset[str] = frozenset(),
        api_key: str | None = None,
        model_name: str | None = None,
    ) -> None:
        self.default = default
        self.reject_response_format = reject_response_format
        # llama.cpp's OpenAI-compatible server answers response_format json_schema with 500.
        self.json_schema_status = json_schema_status
        self.unsupported_params = unsupported_params
        self.api_key = api_key
        self.model_name = model_name
        self.requests: list[RecordedRequest] = []
        self._script: deque[StubReply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *replies: StubReply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def start(self) -> OpenAiStub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAiStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> StubReply:
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        return StubReply(content=self.default(request.body))

    def models(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """``GET /v1/models`` as OpenAI answers it: the served models, 401 for a wrong key."""
        if not path.rstrip("/").endswith("/models"):
            return 404, _error(f"Unknown path {path}", "invalid_request_error", None)
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        model = self.model_name or "gpt-4o-mini"
        return 200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "cali-local"}]}

    def respond(self, request: RecordedRequest) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Status, headers and JSON body for one chat-completions request."""
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            self.requests.append(request)
            return 401, {}, _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        if self.reject_response_format and "response_format" in request.body:
            self.requests.append(request)
            return (
                400,
                {},
                _error(
                    "Invalid parameter: 'response_format' of type 'json_object' is not supported "
                    "with this model.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    param="response_format",
                ),
            )
        response_format = request.body.get("response_format")
        if (
            self.json_schema_status is not None
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            self.requests.append(request)
            return self.json_schema_status, {}, _error("Internal Server Error", "server_error", None)
        for param in sorted(self.unsupported_params & request.body.keys()):
            # What OpenAI answers reasoning models for sampling and legacy parameters.
            self.requests.append(request)
            hint = " Use 'max_completion_tokens' instead." if param == "max_tokens" else ""
            return (
                400,
                {},
                _error(
                    f"Unsupported parameter: '{param}' is not supported with this model.{hint}",
                    "invalid_request_error",
                    "unsupported_parameter",
                    param=param,
                ),
            )
        reply = self._next_reply(request)
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        if reply.status != 200:
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            return reply.status, reply.headers, _error(reply.error_message or "error", kind, None)
        return 200, reply.headers, self._completion(request.body, reply)

    def _completion(self, body: dict[str, Any], reply: StubReply) -> dict[str, Any]:
        content = reply.content or ""
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = estimate_tokens(prompt_text)
        completion_tokens = estimate_tokens(content)
        finish_reason = "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and completion_tokens > limit:
            content, completion_tokens, finish_reason = content[: limit * 4], limit, "length"
        usage = reply.usage or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name or str(body.get("model", "stub-model")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        }
        if reply.omit_usage:
            del completion["usage"]
        return completion


def _error(message: str, kind: str, code: str | None, *, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _handler_for(stub: OpenAiStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, payload = stub.models(self.path, self.headers.get("Authorization"))
            self._send(status, {}, payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(
                    400,
                    {},
                    _error(
                        "We could not parse the JSON body of your request.", "invalid_request_error", None
                    ),
                )
                return
            request = RecordedRequest(
                received_at=time.monotonic(),
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body if isinstance(body, dict) else {},
            )
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {}, _error(f"Unknown path {self.path}", "invalid_request_error", None))
                return
            status, headers, payload = stub.respond(request)
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout fired while we were "thinking"): as with
                # a real server, the answer is simply lost.
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stub.requests
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a local OpenAI-compatible chat-completions API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--reject-response-format", action="store_true")
    args = parser.parse_args(argv)
    stub = OpenAiStub(host=args.host, port=args.port, reject_response_format=args.reject_response_format)
    print(f"OpenAI-compatible stub on {stub.base_url} (Ctrl-C to stop)")
    try:
        stub._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
