"""A local HTTP server that behaves like Slack, for ``make demo`` and the tests.

It answers the two things CALI calls:

- an incoming webhook (``POST /services/T.../B.../X...``): ``200 ok`` or a 4xx with a
  plain-text error such as ``invalid_blocks`` or ``no_text``, as Slack does;
- the Web API ``chat.postMessage`` and ``chat.update`` (``POST /api/<method>``, JSON or
  form body, bot token in ``Authorization``): HTTP 200 with ``{"ok": false, "error": ...}``
  for API errors, like Slack; and for the incident lifecycle ``views.open`` (recorded in
  ``views``), ``conversations.history`` and ``usergroups.users.list``.

The other direction, Slack calling CALI when someone clicks a button, is
:mod:`cali_local.slack_interactivity`: signed requests built from the recorded messages.

It enforces the Block Kit limits that Slack enforces (50 blocks, header 150 characters of
plain_text, section text 3,000, 10 fields of 2,000, button text 75, 10 context elements,
25 actions, 40,000 characters of text), answers 429 with ``Retry-After`` past a
per-channel rate (about one message a second, as Slack documents for chat.postMessage),
and can inject 5xx answers and latency. For fault tests it can also accept a post and
answer only after the client gave up (``answer_late``), refuse every Block Kit message
(``refuse_blocks``), and it keeps ``metadata`` and serves ``conversations.history`` (with
``include_all_metadata``) so a bot can look up whether its post landed. Every accepted
message is recorded so the demo can print it and tests can assert on it. It is a stand-in
for a boundary we cannot reach here, not a mock of our own code.

Run on its own: ``python -m cali_local.slack_sink --port 3005``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_BLOCKS = 50
MAX_TEXT = 40_000
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
MAX_FIELDS = 10
BUTTON_TEXT_MAX = 75
BUTTON_URL_MAX = 3000
MAX_ACTIONS = 25
MAX_CONTEXT_ELEMENTS = 10
BLOCK_TYPES = frozenset(
    {
        "header",
        "section",
        "context",
        "actions",
        "divider",
        "image",
        "rich_text",
        "input",
        "file",
        "video",
        "markdown",
    }
)
WEBHOOK_PATH_PREFIX = "/services/"
DEFAULT_TOKEN = "xoxb-local-sink-token"  # noqa: S105 (a fake token the local sink accepts)


class BlockKitError(ValueError):
    """A message Slack would reject; the text is the error code Slack would answer."""


@dataclass
class RecordedMessage:
    """One message as Slack would store it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    via: str = "api"  # "api" or "webhook"
    edited: bool = False
    metadata: dict[str, Any] | None = None
    received_at: float = field(default_factory=time.time)


@dataclass
class Fault:
    status: int
    body: str = "internal_error"
    retry_after: int | None = None


def _text_len(obj: Mapping[str, Any] | None) -> int:
    return len(str(obj.get("text", ""))) if obj else 0


# One check per block type with limits; True when Slack accepts the block. Types without
# an entry (divider, image, ...) are accepted as they are.


def _header_ok(block: dict[str, Any]) -> bool:
    text = block.get("text") or {}
    return text.get("type") == "plain_text" and 0 < _text_len(text) <= HEADER_MAX


def _section_ok(block: dict[str, Any]) -> bool:
    text, fields = block.get("text"), block.get("fields")
    if not text and not fields:
        return False
    if text and not 0 < _text_len(text) <= SECTION_TEXT_MAX:
        return False
    return fields is None or (
        len(fields) <= MAX_FIELDS and all(0 < _text_len(f) <= FIELD_TEXT_MAX for f in fields)
    )


def _context_ok(block: dict[str, Any]) -> bool:
    return 0 < len(block.get("elements") or []) <= MAX_CONTEXT_ELEMENTS


def _button_ok(element: Mapping[str, Any]) -> bool:
    return (
        0 < _text_len(element.get("text")) <= BUTTON_TEXT_MAX
        and len(str(element.get("url", ""))) <= BUTTON_URL_MAX
    )


def _actions_ok(block: dict[str, Any]) -> bool:
    elements = block.get("elements") or []
    if not 0 < len(elements) <= MAX_ACTIONS:
        return False
    return all(_button_ok(element) for element in elements if element.get("type") == "button")


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "header": _header_ok,
    "section": _section_ok,
    "context": _context_ok,
    "actions": _actions_ok,
}


def validate_blocks(blocks: Any) -> None:
    """Raise :class:`BlockKitError` (``invalid_blocks``) the way Slack does."""
    if not isinstance(blocks, list):
        raise BlockKitError("invalid_blocks_format")
    if len(blocks) > MAX_BLOCKS:
        raise BlockKitError("invalid_blocks")
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            raise BlockKitError("invalid_blocks")
        check = _BLOCK_CHECKS.get(block["type"])
        if check is not None and not check(block):
            raise BlockKitError("invalid_blocks")


def validate_message(text: Any, blocks: Any) -> None:
    if blocks in (None, "", []) and not text:
        raise BlockKitError("no_text")
    if text and len(str(text)) > MAX_TEXT:
        raise BlockKitError("msg_too_long")
    if blocks not in (None, ""):
        validate_blocks(blocks)


class SlackSink:
    """The server plus what it recorded. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = DEFAULT_TOKEN,
        rate_limit_per_channel: float | None = 1.0,
        burst: int = 3,
        latency_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.rate_limit_per_channel = rate_limit_per_channel
        self.burst = burst
        self.latency_seconds = latency_seconds
        self.clock = clock
        self.messages: list[RecordedMessage] = []
        self.views: list[dict[str, Any]] = []  # views.open: the modals CALI opened
        self.usergroups: dict[str, list[str]] = {}  # usergroups.users.list answers
        self.requests = 0
        self.rejected: list[tuple[int, str]] = []
        self._faults: deque[Fault] = deque()
        self.late_answers = 0
        self.late_seconds = 0.0
        self.refuse_blocks = False
        self._buckets: dict[str, tuple[float, float]] = {}
        self._ts_counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}{WEBHOOK_PATH_PREFIX}T0CALI/B0CALI/localsinkwebhook"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/api/"

    def start(self) -> SlackSink:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SlackSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, body: str = "service_unavailable") -> None:
        """The next ``count`` requests get ``status`` (5xx to test retries)."""
        with self._lock:
            self._faults.extend(Fault(status, body) for _ in range(count))

    def rate_limit_next(self, count: int, retry_after: int = 1) -> None:
        """The next ``count`` requests get 429 with ``Retry-After``."""
        with self._lock:
            self._faults.extend(Fault(429, "rate_limited", retry_after) for _ in range(count))

    def answer_late(self, seconds: float, count: int = 1_000_000) -> None:
        """Accept the next ``count`` posts, but answer each only after ``seconds``."""
        with self._lock:
            self.late_answers, self.late_seconds = count, seconds

    def _late(self) -> float:
        with self._lock:
            if self.late_answers <= 0:
                return 0.0
            self.late_answers -= 1
            return self.late_seconds

    def clear(self) -> None:
        with self._lock:
            self.late_answers, self.late_seconds, self.refuse_blocks = 0, 0.0, False
            self.messages.clear()
            self.rejected.clear()
            self._faults.clear()
            self._buckets.clear()
            self.requests = 0

    def in_channel(self, channel: str) -> list[RecordedMessage]:
        with self._lock:
            return [m for m in self.messages if m.channel == channel]

    def replies(self, thread_ts: str) -> list[RecordedMessage]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts == thread_ts]

    # -- behaviour ----------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _take_rate_token(self, channel: str) -> int | None:
        """Token bucket per channel; returns Retry-After seconds when empty."""
        if not self.rate_limit_per_channel:
            return None
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(channel, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_limit_per_channel)
            if tokens < 1.0:
                self._buckets[channel] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self.rate_limit_per_channel))
            self._buckets[channel] = (tokens - 1.0, now)
            return None

    def _new_ts(self) -> str:
        with self._lock:
            self._ts_counter += 1
            return f"{int(time.time())}.{self._ts_counter:06d}"

    def _record(self, message: RecordedMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _find(self, channel: str, ts: str) -> RecordedMessage | None:
        with self._lock:
            return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class the server instantiates per request, bound to this sink."""

        class Handler(_SinkHandler):
            pass

        Handler.sink = self
        return Handler


class _SinkHandler(BaseHTTPRequestHandler):
    """Answers one request the way Slack would; ``sink`` holds the state and test controls."""

    sink: SlackSink

    server_version = "CaliSlackSink/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the demo print what matters

    def do_POST(self) -> None:
        with self.sink._lock:
            self.sink.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.sink.latency_seconds:
            time.sleep(self.sink.latency_seconds)
        fault = self.sink._next_fault()
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(fault.status, fault.body, content_type="text/plain", headers=headers)
            return
        if self.path.startswith(WEBHOOK_PATH_PREFIX):
            self._webhook(raw)
        elif self.path.startswith("/api/"):
            self._api(self.path[len("/api/") :].split("?")[0], raw)
        else:
            self._send(404, "not_found", content_type="text/plain")

    # incoming webhook: plain-text answers, errors as 4xx
    def _webhook(self, raw: bytes) -> None:
        try:
            payload = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._reject(400, "invalid_payload", plain=True)
            return
        if not isinstance(payload, dict):
            self._reject(400, "invalid_payload", plain=True)
            return
        channel = "#webhook"
        retry_after = self.sink._take_rate_token(channel)
        if retry_after is not None:
            self._send(
                429,
                "rate_limited",
                content_type="text/plain",
                headers={"Retry-After": str(retry_after)},
            )
            return
        try:
            validate_message(payload.get("text"), payload.get("blocks"))
            if self.sink.refuse_blocks and payload.get("blocks"):
                raise BlockKitError("invalid_blocks")
        except BlockKitError as exc:
            self._reject(400, str(exc), plain=True)
            return
        self.sink._record(
            RecordedMessage(
                channel=channel,
                ts=self.sink._new_ts(),
                text=str(payload.get("text") or ""),
                blocks=list(payload.get("blocks") or []),
                via="webhook",
            )
        )
        time.sleep(self.sink._late())  # accepted; the answer may come after the client gave up
        self._send(200, "ok", content_type="text/plain")

    # Web API: HTTP 200 with ok=false for API errors, 429 for rate limits
    def _api(self, method: str, raw: bytes) -> None:
        args = self._api_args(raw)
        if args is None:
            self._api_error("invalid_json")
            return
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else args.get("token")
        if not token:
            self._api_error("not_authed")
            return
        if token != self.sink.token:
            self._api_error("invalid_auth")
            return
        answer = _API_METHODS.get(method)
        if answer is None:
            self._api_error("unknown_method")
        else:
            answer(self, args)

    def _auth_test(self, _args: dict[str, Any]) -> None:
        self._json(200, {"ok": True, "user_id": "U0CALIBOT", "team_id": "T0CALI"})

    def _api_args(self, raw: bytes) -> dict[str, Any] | None:
        content_type = self.headers.get("Content-Type", "")
        try:
            if "json" in content_type:
                parsed = json.loads(raw or b"{}")
                return parsed if isinstance(parsed, dict) else None
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
            if isinstance(form.get("blocks"), str):
                form["blocks"] = json.loads(form["blocks"])
            return dict(form)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _post_message(self, args: dict[str, Any]) -> None:
        channel = str(args.get("channel") or "")
        if not channel:
            self._api_error("channel_not_found")
            return
        retry_after = self.sink._take_rate_token(channel)
        if retry_after is not None:
            self._json(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)})
            return
        try:
            blocks = _json_arg(args.get("blocks"), "invalid_blocks_format")
            metadata = _json_arg(args.get("metadata"), "invalid_metadata_format")
            validate_message(args.get("text"), blocks)
            if self.sink.refuse_blocks and blocks:
                raise BlockKitError("invalid_blocks")
        except BlockKitError as exc:
            self._api_error(str(exc))
            return
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self.sink._find(channel, str(thread_ts))
            if parent is None:
                self._api_error("thread_not_found")
                return
            thread_ts = parent.thread_ts or parent.ts  # replies to a reply join the root
        message = RecordedMessage(
            channel=channel,
            ts=self.sink._new_ts(),
            text=str(args.get("text") or ""),
            blocks=list(blocks or []),
            thread_ts=thread_ts,
            metadata=metadata if isinstance(metadata, dict) else None,
        )
        self.sink._record(message)
        time.sleep(self.sink._late())  # accepted; the answer may come after the client gave up
        self._json(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts, "thread_ts": thread_ts},
            },
        )

    def _conversations_history(self, args: dict[str, Any]) -> None:
        self._history(args, replies=False)

    def _conversations_replies(self, args: dict[str, Any]) -> None:
        self._history(args, replies=True)

    def _history(self, args: dict[str, Any], *, replies: bool) -> None:
        """conversations.history: top-level messages, newest first (no replies);
        conversations.replies: the thread of ``ts``, its root included."""
        channel = str(args.get("channel") or "")
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = str(args.get("inclusive", "")).lower() in {"1", "true"}
        limit = int(args.get("limit") or 100)
        root = str(args.get("ts") or "")
        include_metadata = str(args.get("include_all_metadata", "")).lower() in {"1", "true"}

        def wanted(m: RecordedMessage) -> bool:
            in_thread = root in (m.ts, m.thread_ts) if replies else m.thread_ts is None
            ts = float(m.ts)
            before = ts <= latest if inclusive else ts < latest
            return m.channel == channel and in_thread and ts >= oldest and before

        with self.sink._lock:
            found = [m for m in reversed(self.sink.messages) if wanted(m)][:limit]
        messages = []
        for m in found:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "blocks": m.blocks}
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if include_metadata and m.metadata is not None:
                item["metadata"] = m.metadata
            messages.append(item)
        self._json(200, {"ok": True, "messages": messages, "has_more": False})

    def _update(self, args: dict[str, Any]) -> None:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        existing = self.sink._find(channel, ts)
        if existing is None:
            self._api_error("message_not_found")
            return
        blocks = args.get("blocks", existing.blocks)
        try:
            validate_message(args.get("text", existing.text), blocks)
        except BlockKitError as exc:
            self._api_error(str(exc))
            return
        with self.sink._lock:
            existing.text = str(args.get("text", existing.text) or "")
            existing.blocks = list(blocks or [])
            existing.edited = True
        self._json(200, {"ok": True, "channel": channel, "ts": ts, "text": existing.text})

    def _open_view(self, args: dict[str, Any]) -> None:
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                view = None
        if not args.get("trigger_id"):
            self._api_error("invalid_trigger_id")
            return
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("blocks"):
            self._api_error("invalid_arguments")
            return
        with self.sink._lock:
            self.sink.views.append(view)
        self._json(200, {"ok": True, "view": {"id": f"V{len(self.sink.views):08d}", **view}})

    def _usergroup_users(self, args: dict[str, Any]) -> None:
        group = str(args.get("usergroup") or "")
        if group not in self.sink.usergroups:
            self._api_error("no_such_subteam")
        else:
            self._json(200, {"ok": True, "users": self.sink.usergroups[group]})

    def _reject(self, status: int, error: str, *, plain: bool) -> None:
        with self.sink._lock:
            self.sink.rejected.append((status, error))
        self._send(status, error, content_type="text/plain")

    def _api_error(self, error: str) -> None:
        with self.sink._lock:
            self.sink.rejected.append((200, error))
        self._json(200, {"ok": False, "error": error})

    def _json(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body), content_type="application/json; charset=utf-8", headers=headers)

    def _send(
        self, status: int, body: str, *, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up waiting (its timeout): the answer is lost


# The Web API methods the sink answers (``POST /api/<method>``), after the token check.
_API_METHODS: dict[str, Callable[[_SinkHandler, dict[str, Any]], None]] = {
    "chat.postMessage": _SinkHandler._post_message,
    "chat.update": _SinkHandler._update,
    "views.open": _SinkHandler._open_view,
    "conversations.history": _SinkHandler._conversations_history,
    "conversations.replies": _SinkHandler._conversations_replies,
    "usergroups.users.list": _SinkHandler._usergroup_users,
    "auth.test": _SinkHandler._auth_test,
    "api.test": _SinkHandler._auth_test,
}


def _json_arg(value: Any, error: str) -> Any:
    """A Web API argument that may arrive JSON-encoded (form bodies); ``error`` if not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise BlockKitError(error) from None


def format_recorded(messages: Iterable[RecordedMessage]) -> str:
    """Short listing for logs and the demo (the demo renders blocks itself)."""
    lines = []
    for message in messages:
        where = f"{message.channel} thread {message.thread_ts}" if message.thread_ts else message.channel
        lines.append(
            f"[{where} ts={message.ts} via {message.via}] {message.text} ({len(message.blocks)} blocks)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local Slack stand-in (webhook + chat.postMessage).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3005)
    parser.add_argument(
        "--rate", type=float, default=1.0, help="messages per second per channel (0: no limit)"
    )
    args = parser.parse_args(argv)
    with SlackSink(args.host, args.port, rate_limit_per_channel=args.rate or None) as sink:
        print(f"webhook:  {sink.webhook_url}\nweb API:  {sink.api_base_url} (token {sink.token})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
