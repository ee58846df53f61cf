"""Realistic multi-service application logs with labelled incidents.

Seven services write in the formats our Fluent Bit configuration parses (Spring Boot
logback, log4j2, Python logging, zap, pino, winston-style Node text, logrus) with real
stack traces; scenarios overlay incidents on healthy traffic. Every event carries

* ``raw``: the text the application writes (possibly several lines),
* ``data`` / ``record``: what Fluent Bit puts into Kinesis for it, computed by running
  ``raw`` through :mod:`cali_local.fluentbit` with the real configuration,
* ground truth: ``incident`` (the scenario incident it belongs to, else ``None``),
  ``signature`` (events with the same signature share one log template and must get
  the same fingerprint), ``malformed`` (why a record is deliberately broken) and ``pii``
  (sensitive-looking values it contains, for redaction checks).

Contract for end-to-end tests: every event at WARN or above belongs to an incident, and
all events of one incident share one signature, so the consumer must raise exactly one
alert per distinct ``incident`` value (plus throttled updates). Healthy traffic is
DEBUG/INFO only.

Output is a pure function of (scenario, seed, count/duration, start, environment,
config): the same arguments give byte-identical events.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cali_local.fluentbit import (
    KUBERNETES_CONFIG,
    FluentBitPipeline,
    LogSource,
    PodMetadata,
    load_config,
)

Format = Literal["logback", "log4j", "python", "zap", "pino", "node", "logrus", "go-panic"]

SCENARIOS: tuple[str, ...] = (
    "baseline",
    "db-outage",
    "deploy-regression",
    "slow-upstream",
    "disk-full",
    "noisy-warnings",
    "mixed",
)

SCENARIO_HELP: dict[str, str] = {
    "baseline": "healthy traffic only (DEBUG/INFO), no incident",
    "db-outage": "payments loses its database: HikariCP connection-pool timeouts storm",
    "deploy-regression": "checkout v2.15.0 rolls out and throws NullPointerException on every order",
    "slow-upstream": "gateway upstream times out: 504s and timeout errors",
    "disk-full": "inventory export volume fills up: OSError ENOSPC tracebacks",
    "noisy-warnings": "auth logs a harmless deprecation warning on every call",
    "mixed": "all of the above, staggered, plus an SMTP outage and an auth crash loop",
}

MALFORMED_KINDS: tuple[str, ...] = ("not_json", "invalid_utf8", "not_object", "no_message")

NAMESPACE = "shop"
_FIRST = ("jane", "john", "alice", "bob", "maria", "wei", "fatima", "olga", "liam", "noah", "mina", "jisoo")
_LAST = ("doe", "smith", "garcia", "chen", "kim", "novak", "okafor", "rossi", "silva", "tanaka")
_DOMAINS = ("example.com", "example.org", "example.net")
_DOC_NETS = ("203.0.113", "198.51.100", "192.0.2")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    format: Format
    version: str


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("checkout", "logback", "2.14.0"),
    ServiceSpec("payments", "log4j", "3.8.2"),
    ServiceSpec("inventory", "python", "1.22.0"),
    ServiceSpec("auth", "zap", "1.31.4"),
    ServiceSpec("gateway", "pino", "5.2.1"),
    ServiceSpec("notifications", "node", "0.9.7"),
    ServiceSpec("shipping", "logrus", "4.0.3"),
)
_BY_NAME = {s.name: s for s in SERVICES}


@dataclass(frozen=True)
class GeneratedEvent:
    seq: int
    time: datetime
    service: str
    level: str
    format: str
    raw: str
    data: bytes
    record: dict[str, Any] | None
    incident: str | None
    signature: str
    malformed: str | None = None
    pii: tuple[str, ...] = ()
    source: LogSource | None = None

    @property
    def lines(self) -> list[str]:
        return self.raw.split("\n")


@dataclass
class _Draft:
    """An event before Fluent Bit sees it."""

    service: str
    level: str  # Level name as the consumer normalises it
    raw: str
    signature: str
    incident: str | None = None
    pii: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- values


class _Values:
    """Seeded random values that look like production data."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def alnum(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def email(self) -> str:
        r = self.rng
        return f"{r.choice(_FIRST)}.{r.choice(_LAST)}{r.randint(1, 99)}@{r.choice(_DOMAINS)}"

    def public_ip(self) -> str:
        return f"{self.rng.choice(_DOC_NETS)}.{self.rng.randint(1, 254)}"

    def private_ip(self) -> str:
        return f"10.0.{self.rng.randint(0, 9)}.{self.rng.randint(2, 254)}"

    def jwt(self) -> str:
        b64 = string.ascii_letters + string.digits + "-_"
        return f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{self.alnum(43, b64)}.{self.alnum(43, b64)}"

    def api_key(self) -> str:
        return "sk_live_" + self.alnum(24)

    def aws_key_id(self) -> str:
        return "AKIA" + self.alnum(16, string.ascii_uppercase + "234567")

    def trace(self) -> tuple[str, str]:
        return self.hex(32), self.hex(16)

    def request_id(self) -> str:
        return "req-" + self.hex(6)


def _iso_ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _ms(t: datetime) -> str:
    return f"{t.microsecond // 1000:03d}"


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class _Line:
    """One event as ``render`` receives it; each format picks the parts its library writes."""

    service: str
    t: datetime
    level: str
    message: str
    logger: str
    thread: str
    trace: tuple[str, str] | None
    request_id: str | None
    stack: list[str]
    fields: dict[str, Any]
    pod_name: str


def _logback(e: _Line) -> str:
    corr = f"[{e.trace[0]}-{e.trace[1]}] " if e.trace else ""
    head = (
        f"{_iso_ms(e.t)} {e.level:>5} 1 --- [{e.service}] [{e.thread[-15:]:>15}] {corr}{e.logger:<40} : "
        f"{e.message}"
    )
    return "\n".join([head, *e.stack])


def _log4j(e: _Line) -> str:
    t = e.t
    mdc = {"service": e.service}
    if e.request_id:
        mdc["requestId"] = e.request_id
    if e.trace:
        mdc["traceId"] = e.trace[0]
    mdc_text = ", ".join(f"{k}={v}" for k, v in sorted(mdc.items()))
    head = f"{t:%Y-%m-%dT%H:%M:%S},{_ms(t)} {e.level:<5} [{e.thread}] {e.logger} {{{mdc_text}}} - {e.message}"
    return "\n".join([head, *e.stack])


def _python(e: _Line) -> str:
    t = e.t
    py_level = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(e.level, e.level)
    tid, sid = e.trace if e.trace else ("0", "0")
    head = (
        f"{t:%Y-%m-%d %H:%M:%S},{_ms(t)} {py_level} [{e.logger}] [{e.thread}] "
        f"[trace_id={tid} span_id={sid} resource.service.name={e.service} trace_sampled={bool(e.trace)}] - "
        f"{e.message}"
    )
    return "\n".join([head, *e.stack])


def _node(e: _Line) -> str:
    head = f"{_iso_ms(e.t)} {e.level.lower()} [{e.service}]: {e.message}"
    return "\n".join([head, *e.stack])


def _zap(e: _Line) -> str:
    record: dict[str, Any] = {
        "level": {"WARN": "warn", "FATAL": "fatal"}.get(e.level, e.level.lower()),
        "ts": round(e.t.timestamp(), 4),
        "caller": e.logger,
        "msg": e.message,
        "service": e.service,
    }
    if e.trace:
        record["trace_id"] = e.trace[0]
    record.update(e.fields)
    if e.stack:
        record["stacktrace"] = "\n".join(e.stack)
    return _json(record)


_PINO_LEVELS = {"TRACE": 10, "DEBUG": 20, "INFO": 30, "WARN": 40, "ERROR": 50, "FATAL": 60}


def _pino(e: _Line) -> str:
    record: dict[str, Any] = {
        "level": _PINO_LEVELS[e.level],
        "time": int(e.t.timestamp() * 1000),
        "pid": 1,
        "hostname": e.pod_name,
        "service": e.service,
    }
    if e.request_id:
        record["reqId"] = e.request_id
    record.update(e.fields)
    if e.stack:
        err_type, _, err_msg = e.stack[0].partition(": ")
        record["err"] = {"type": err_type, "message": err_msg, "stack": "\n".join(e.stack)}
    record["msg"] = e.message
    return _json(record)


def _logrus(e: _Line) -> str:
    record = {
        "level": {"WARN": "warning"}.get(e.level, e.level.lower()),
        "msg": e.message,
        "service": e.service,
        "time": e.t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **e.fields,
    }
    return _json(dict(sorted(record.items())))


# go-panic has no renderer: the crash loop writes its panic text as is (_Fleet.crashloop).
_RENDERERS: dict[str, Callable[[_Line], str]] = {
    "logback": _logback,
    "log4j": _log4j,
    "python": _python,
    "node": _node,
    "zap": _zap,
    "pino": _pino,
    "logrus": _logrus,
}


def render(
    service: str,
    t: datetime,
    level: str,
    message: str,
    *,
    logger: str = "",
    thread: str = "main",
    trace: tuple[str, str] | None = None,
    request_id: str | None = None,
    stack: list[str] | None = None,
    fields: dict[str, Any] | None = None,
    pod_name: str = "",
) -> str:
    """The text ``service`` writes for one event, in its logging library's format."""
    fmt = _BY_NAME[service].format
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt}")
    line = _Line(
        service=service,
        t=t,
        level=level,
        message=message,
        logger=logger,
        thread=thread,
        trace=trace,
        request_id=request_id,
        stack=stack or [],
        fields=fields or {},
        pod_name=pod_name,
    )
    return renderer(line)


# --------------------------------------------------------------------------- traffic


class _Fleet:
    """Healthy traffic and incident events for the seven services."""

    def __init__(self, v: _Values) -> None:
        self.v = v
        rng = v.rng
        self.nodes = [
            f"ip-10-0-{rng.randint(1, 9)}-{rng.randint(10, 250)}.eu-west-1.compute.internal" for _ in range(3)
        ]
        self.pods: dict[str, PodMetadata] = {}
        for spec in SERVICES:
            rs_hash = v.alnum(10, "bcdfghjklmnpqrstvwxz2456789")
            self.pods[spec.name] = PodMetadata(
                pod_name=f"{spec.name}-{rs_hash}-{v.alnum(5, 'bcdfghjklmnpqrstvwxz2456789')}",
                namespace_name=NAMESPACE,
                container_name=spec.name,
                host=rng.choice(self.nodes),
                labels={"app": spec.name, "pod-template-hash": rs_hash, "version": spec.version},
                pod_id=f"{v.hex(8)}-{v.hex(4)}-{v.hex(4)}-{v.hex(4)}-{v.hex(12)}",
                docker_id=v.hex(64),
                container_image=f"registry.example.com/acme/{spec.name}:{spec.version}",
            )

    def draft(self, service: str, t: datetime, level: str, message: str, signature: str, **kw: Any) -> _Draft:
        pod = self.pods[service].pod_name
        return _Draft(
            service=service,
            level=level,
            signature=signature,
            raw=render(service, t, level, message, pod_name=pod, **kw),
        )

    # ---- healthy traffic (DEBUG/INFO only)

    def background(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        service = r.choices([s.name for s in SERVICES], weights=[5, 3, 3, 4, 6, 2, 2])[0]
        trace = v.trace() if r.random() < 0.6 else None
        pii: list[str] = []
        d = _BACKGROUND[service](self, t, trace, pii)
        d.pii = pii
        return d

    # One method per service; each appends the PII it writes to ``pii``. The random draws
    # happen in a fixed order so a seed always gives the same lines.

    def _checkout_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        choice = r.randrange(4)
        if choice == 0:
            email = v.email()
            pii.append(email)
            return self.draft(
                "checkout",
                t,
                "INFO",
                f"POST /api/orders accepted for customer {email}",
                "checkout:order-accepted",
                logger="c.a.checkout.web.OrderController",
                thread=f"nio-8080-exec-{r.randint(1, 10)}",
                trace=trace,
            )
        if choice == 1:
            return self.draft(
                "checkout",
                t,
                "INFO",
                f"GET /api/orders/{r.randint(10000, 99999)} 200 in {r.randint(3, 60)} ms",
                "checkout:order-get",
                logger="c.a.checkout.web.OrderController",
                thread=f"nio-8080-exec-{r.randint(1, 10)}",
                trace=trace,
            )
        if choice == 2:
            return self.draft(
                "checkout",
                t,
                "DEBUG",
                f"Cache hit for product sku-{r.randint(100, 999)}-{r.randint(10, 99)}",
                "checkout:cache-hit",
                logger="c.a.checkout.catalog.ProductCache",
                thread="cache-refresh-1",
            )
        return self.draft(
            "checkout",
            t,
            "INFO",
            f"Cart {v.hex(8)}-{v.hex(4)} updated: {r.randint(1, 9)} items",
            "checkout:cart-updated",
            logger="c.a.checkout.cart.CartService",
            thread=f"nio-8080-exec-{r.randint(1, 10)}",
            trace=trace,
        )

    def _payments_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        if r.random() < 0.7:
            return self.draft(
                "payments",
                t,
                "INFO",
                f"Charge {r.randint(1000, 99999)} authorized amount={r.randint(1, 500)}.{r.randint(0, 99):02d} EUR",  # noqa: E501
                "payments:charge-authorized",
                logger="com.acme.payments.api.ChargeResource",
                thread=f"http-nio-8443-exec-{r.randint(1, 20)}",
                trace=trace,
                request_id=v.request_id(),
            )
        return self.draft(
            "payments",
            t,
            "INFO",
            f"Webhook delivered to https://merchant.example.com/hooks/{v.hex(6)} in {r.randint(20, 400)} ms",
            "payments:webhook",
            logger="com.acme.payments.webhooks.Dispatcher",
            thread="webhook-pool-1",
        )

    def _inventory_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        r = self.v.rng
        if r.random() < 0.6:
            return self.draft(
                "inventory",
                t,
                "INFO",
                f"Reserved {r.randint(1, 5)} units of sku {r.randint(10, 99)}-{r.randint(1000, 9999)}",
                "inventory:reserved",
                logger="inventory.reservations",
                thread="reserve.py:71",
                trace=trace,
            )
        return self.draft(
            "inventory",
            t,
            "DEBUG",
            f"Stock sync completed: {r.randint(10, 900)} items in {r.randint(50, 900)} ms",
            "inventory:sync",
            logger="inventory.sync",
            thread="sync.py:40",
        )

    def _auth_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        ip = v.public_ip()
        pii.append(ip)
        return self.draft(
            "auth",
            t,
            "INFO",
            "request served",
            "auth:request-served",
            logger="server/http.go:88",
            trace=trace,
            fields={
                "method": "POST",
                "path": "/v1/token",
                "status": 200,
                "duration_ms": round(r.uniform(2, 40), 1),
                "client_ip": ip,
            },
        )

    def _gateway_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        ip = v.public_ip()
        pii.append(ip)
        path = r.choice(["/v1/cart", "/v1/orders", "/v1/products", "/v1/quote"])
        return self.draft(
            "gateway",
            t,
            "INFO",
            "request completed",
            "gateway:request-completed",
            request_id=v.request_id(),
            fields={
                "req": {"method": "GET", "url": path, "remoteAddress": ip},
                "res": {"statusCode": 200},
                "responseTime": r.randint(3, 120),
            },
        )

    def _notifications_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        if r.random() < 0.5:
            email = v.email()
            pii.append(email)
            return self.draft(
                "notifications",
                t,
                "INFO",
                f"Email sent to {email} template=order-confirmation",
                "notifications:email-sent",
            )
        return self.draft(
            "notifications", t, "INFO", f"Delivered {r.randint(1, 80)} messages", "notifications:delivered"
        )

    def _shipping_traffic(self, t: datetime, trace: tuple[str, str] | None, pii: list[str]) -> _Draft:
        v, r = self.v, self.v.rng
        return self.draft(
            "shipping",
            t,
            "INFO",
            "label created",
            "shipping:label-created",
            fields={"shipment": f"shp_{v.alnum(12)}", "carrier": r.choice(["dhl", "ups", "postnl"])},
        )

    # ---- incidents: one service and one template each

    def db_outage(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        ip = v.public_ip()
        stack = [
            "org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to obtain JDBC Connection",
            "\tat org.springframework.jdbc.datasource.DataSourceUtils.getConnection(DataSourceUtils.java:84)",
            "\tat com.acme.payments.ledger.LedgerRepository.insert(LedgerRepository.java:41)",
            "\tat com.acme.payments.api.ChargeResource.charge(ChargeResource.java:63)",
            "\tat java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)",
            "\tat java.base/java.lang.Thread.run(Thread.java:840)",
            "Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, "  # noqa: E501
            f"request timed out after 30000ms (total=20, active=20, idle=0, waiting={r.randint(5, 180)})",
            "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:686)",
            "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:179)",
            "\tat com.zaxxer.hikari.HikariDataSource.getConnection(HikariDataSource.java:127)",
            "\tat org.springframework.jdbc.datasource.DataSourceUtils.fetchConnection(DataSourceUtils.java:160)",  # noqa: E501
            "\t... 3 more",
            "Caused by: org.postgresql.util.PSQLException: Connection to payments-db.internal:5432 refused. Check that "  # noqa: E501
            "the hostname and port are correct and that the postmaster is accepting TCP/IP connections.",
            "\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:346)",  # noqa: E501
            "\tat com.zaxxer.hikari.pool.PoolBase.newConnection(PoolBase.java:359)",
            "\t... 2 more",
        ]
        d = self.draft(
            "payments",
            t,
            "ERROR",
            f"Charge {r.randint(1000, 99999)} failed for client {ip}: could not acquire database connection",
            "payments:db-pool-timeout",
            logger="com.acme.payments.api.ChargeResource",
            thread=f"http-nio-8443-exec-{r.randint(1, 20)}",
            trace=v.trace(),
            request_id=v.request_id(),
            stack=stack,
        )
        d.pii = [ip]
        return d

    def deploy_marker(self, t: datetime) -> _Draft:
        return self.draft(
            "checkout",
            t,
            "INFO",
            f"Started CheckoutApplication v2.15.0 in {self.v.rng.uniform(5, 9):.3f} seconds",
            "checkout:started",
            logger="c.a.checkout.CheckoutApplication",
            thread="main",
        )

    def deploy_regression(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        email = v.email()
        stack = [
            'java.lang.NullPointerException: Cannot invoke "com.acme.checkout.model.Address.getCountry()" because the return '  # noqa: E501
            'value of "com.acme.checkout.model.Customer.getShippingAddress()" is null',
            "\tat com.acme.checkout.tax.TaxCalculator.rateFor(TaxCalculator.java:48)",
            "\tat com.acme.checkout.orders.OrderService.price(OrderService.java:133)",
            "\tat com.acme.checkout.orders.OrderService.place(OrderService.java:97)",
            "\tat com.acme.checkout.web.OrderController.create(OrderController.java:44)",
            "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",  # noqa: E501
            "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
        ]
        d = self.draft(
            "checkout",
            t,
            "ERROR",
            f"Checkout failed for order {r.randint(10000, 99999)} (customer {email})",
            "checkout:npe-tax",
            logger="c.a.checkout.web.GlobalExceptionHandler",
            thread=f"nio-8080-exec-{r.randint(1, 10)}",
            trace=v.trace(),
            stack=stack,
        )
        d.pii = [email]
        return d

    def slow_upstream(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        ip, email = v.public_ip(), v.email()
        stack = [
            "Error: upstream request timeout after 30000ms",
            "    at Timeout._onTimeout (/app/src/proxy.js:88:17)",
            "    at listOnTimeout (node:internal/timers:573:17)",
            "    at process.processTimers (node:internal/timers:514:7)",
        ]
        d = self.draft(
            "gateway",
            t,
            "ERROR",
            "upstream timeout",
            "gateway:upstream-timeout",
            request_id=v.request_id(),
            stack=stack,
            fields={
                "upstream": "http://quote.shop.svc:8080/v1/quote",
                "statusCode": 504,
                "client": ip,
                "user": email,
                "responseTime": 30000 + r.randint(0, 40),
            },
        )
        d.pii = [ip, email]
        return d

    def slow_upstream_access(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        ip = v.public_ip()
        d = self.draft(
            "gateway",
            t,
            "INFO",
            "request completed",
            "gateway:request-completed",
            request_id=v.request_id(),
            fields={
                "req": {"method": "GET", "url": "/v1/quote", "remoteAddress": ip},
                "res": {"statusCode": 504},
                "responseTime": 30000 + r.randint(0, 40),
            },
        )
        d.pii = [ip]
        return d

    def disk_full(self, t: datetime) -> _Draft:
        r = self.v.rng
        chunk = r.randint(1, 400)
        stack = [
            "Traceback (most recent call last):",
            '  File "/app/inventory/export.py", line 88, in write_chunk',
            "    handle.write(payload)",
            "OSError: [Errno 28] No space left on device",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            '  File "/app/inventory/export.py", line 92, in write_chunk',
            "    handle.close()",
            "OSError: [Errno 28] No space left on device",
        ]
        return self.draft(
            "inventory",
            t,
            "ERROR",
            f"Failed to write export chunk {chunk} to /var/lib/inventory/export/part-{chunk}.csv",
            "inventory:enospc",
            logger="inventory.export",
            thread="export.py:95",
            stack=stack,
        )

    def noisy_warning(self, t: datetime) -> _Draft:
        v = self.v
        ip, key = v.public_ip(), v.api_key()
        d = self.draft(
            "auth",
            t,
            "WARN",
            "deprecated API key authentication used; migrate to OAuth client credentials",
            "auth:deprecated-api-key",
            logger="middleware/apikey.go:41",
            fields={"client_ip": ip, "api_key": key, "path": "/v1/token"},
        )
        d.pii = [ip, key]
        return d

    def smtp_outage(self, t: datetime) -> _Draft:
        v = self.v
        email = v.email()
        smtp = v.private_ip()
        stack = [
            f"Error: connect ECONNREFUSED {smtp}:587",
            "    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1607:16) {",
            "  errno: -111,",
            "  code: 'ECONNREFUSED',",
            "  syscall: 'connect',",
            f"  address: '{smtp}',",
            "  port: 587",
            "}",
        ]
        d = self.draft(
            "notifications",
            t,
            "ERROR",
            f"SMTP send failed for {email}",
            "notifications:smtp-refused",
            stack=stack,
        )
        d.pii = [email]
        return d

    def crashloop(self, t: datetime) -> _Draft:
        v, r = self.v, self.v.rng
        lines = [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x{v.hex(6)}]",
            "",
            f"goroutine {r.randint(20, 400)} [running]:",
            f"github.com/acme/auth/internal/token.(*Signer).Sign(0x0, {{0xc000{v.hex(6)}, 0x24}})",
            "\t/src/internal/token/signer.go:77 +0x2c",
            f"github.com/acme/auth/internal/server.(*Server).handleToken(0xc000{v.hex(6)}, {{0x9d8e38, 0xc000{v.hex(6)}}})",  # noqa: E501
            "\t/src/internal/server/token.go:64 +0x1a5",
            "created by net/http.(*Server).Serve in goroutine 1",
            "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
            "exit status 2",
        ]
        return _Draft(service="auth", level="FATAL", raw="\n".join(lines), signature="auth:nil-deref-panic")


# Healthy traffic per service, in the order of SERVICES.
_BACKGROUND: dict[str, Callable[[_Fleet, datetime, tuple[str, str] | None, list[str]], _Draft]] = {
    "checkout": _Fleet._checkout_traffic,
    "payments": _Fleet._payments_traffic,
    "inventory": _Fleet._inventory_traffic,
    "auth": _Fleet._auth_traffic,
    "gateway": _Fleet._gateway_traffic,
    "notifications": _Fleet._notifications_traffic,
    "shipping": _Fleet._shipping_traffic,
}


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class _Window:
    incident: str
    start: float
    end: float
    probability: float
    make: Callable[[_Fleet, datetime], _Draft]


def _windows(scenario: str) -> list[_Window]:
    db = _Window("db-outage", 0.30, 0.80, 0.40, _Fleet.db_outage)
    deploy = _Window("deploy-regression", 0.25, 1.00, 0.30, _Fleet.deploy_regression)
    slow = _Window("slow-upstream", 0.30, 0.85, 0.35, _Fleet.slow_upstream)
    disk = _Window("disk-full", 0.40, 1.00, 0.30, _Fleet.disk_full)
    noisy = _Window("noisy-warnings", 0.05, 0.95, 0.30, _Fleet.noisy_warning)
    if scenario == "baseline":
        return []
    if scenario == "mixed":
        return [
            _Window("db-outage", 0.10, 0.30, 0.30, _Fleet.db_outage),
            _Window("slow-upstream", 0.25, 0.45, 0.25, _Fleet.slow_upstream),
            _Window("disk-full", 0.50, 0.70, 0.20, _Fleet.disk_full),
            _Window("deploy-regression", 0.65, 0.90, 0.25, _Fleet.deploy_regression),
            _Window("noisy-warnings", 0.05, 0.95, 0.06, _Fleet.noisy_warning),
            _Window("smtp-outage", 0.35, 0.55, 0.10, _Fleet.smtp_outage),
            _Window("auth-crashloop", 0.40, 0.60, 0.03, _Fleet.crashloop),
        ]
    by_name = {w.incident: w for w in (db, deploy, slow, disk, noisy)}
    if scenario not in by_name:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    return [by_name[scenario]]


def _malformed(kind: str, v: _Values, t: datetime) -> tuple[bytes, str]:
    if kind == "not_json":
        text = _json(
            {"level": "error", "msg": f"payment {v.rng.randint(1, 9999)} failed", "time": _iso_ms(t)}
        )
        cut = text[: len(text) // 2]
        return (cut + "\n").encode(), cut
    if kind == "invalid_utf8":
        text = f'{{"level":"error","msg":"bad bytes {v.hex(4)} '
        return text.encode() + b"\xff\xfe\xc3\x28" + b'"}\n', text + "\\xff\\xfe\\xc3("
    if kind == "not_object":
        text = json.dumps(["error", f"order {v.rng.randint(1, 9999)} failed", _iso_ms(t)])
        return (text + "\n").encode(), text
    text = _json({"level": "error", "time": _iso_ms(t), "service": "payments"})
    return (text + "\n").encode(), text


@dataclass
class _Incidents:
    """Picks who writes the next event: an open incident window, or healthy traffic.

    The random draws happen in the order they always did, so a seed keeps its output.
    """

    windows: list[_Window]
    fleet: _Fleet
    deployed: bool = False  # the deploy-regression window starts with one rollout marker

    def next_draft(self, progress: float, t: datetime) -> _Draft:
        rng = self.fleet.v.rng
        for window in self.windows:
            if not window.start <= progress < window.end:
                continue
            if window.incident == "deploy-regression" and not self.deployed:
                self.deployed = True
                return self.fleet.deploy_marker(t)
            if rng.random() < window.probability:
                draft = window.make(self.fleet, t)
                draft.incident = window.incident
                return draft
        # While the upstream is slow, some healthy-looking access lines carry the 504s.
        if self._open("slow-upstream", progress) and rng.random() < 0.2:
            return self.fleet.slow_upstream_access(t)
        return self.fleet.background(t)

    def _open(self, incident: str, progress: float) -> bool:
        return any(w.incident == incident and w.start <= progress < w.end for w in self.windows)


class _FluentBits:
    """One Fluent Bit per node (DaemonSet), each stamping its own node name as `host`."""

    def __init__(self, config: str | Path, nodes: list[str], environment: str, cluster: str) -> None:
        config_data = load_config(config)
        self.pipelines = {
            node: FluentBitPipeline(
                config_data,
                env={
                    "CALI_ENV": environment,
                    "CALI_CLUSTER": cluster,
                    "AWS_REGION": "eu-west-1",
                    "CALI_STREAM_NAME": "cali-local-logs",
                    "HOSTNAME": node,
                    "NODE_NAME": node,
                },
            )
            for node in nodes
        }
        self.kubernetes = self.pipelines[nodes[0]].is_kubernetes

    def ship(self, seq: int, t: datetime, draft: _Draft, pod: PodMetadata) -> GeneratedEvent:
        """Run ``draft`` through the Fluent Bit of its pod's node: exactly one record."""
        source = (
            LogSource.for_pod(pod, stream="stderr" if draft.level in {"ERROR", "FATAL"} else "stdout")
            if self.kubernetes
            else LogSource(path=f"/var/log/app/{draft.service}.log")
        )
        records = self.pipelines[pod.host].run(draft.raw.split("\n"), source, time=t)
        if len(records) != 1:
            raise RuntimeError(
                f"event {seq} ({draft.signature}) became {len(records)} Fluent Bit records:\n{draft.raw}"
            )
        record = records[0]
        return GeneratedEvent(
            seq=seq,
            time=t,
            service=draft.service,
            level=draft.level,
            format=_BY_NAME[draft.service].format
            if draft.signature != "auth:nil-deref-panic"
            else "go-panic",
            raw=draft.raw,
            data=record.data,
            record=record.record,
            incident=draft.incident,
            signature=draft.signature,
            pii=tuple(draft.pii),
            source=source,
        )


def _malformed_event(seq: int, t: datetime, v: _Values) -> GeneratedEvent:
    kind = v.rng.choice(MALFORMED_KINDS)
    data, text = _malformed(kind, v, t)
    return GeneratedEvent(
        seq=seq,
        time=t,
        service="payments",
        level="ERROR",
        format="malformed",
        raw=text,
        data=data,
        record=None,
        incident=None,
        signature=f"malformed:{kind}",
        malformed=kind,
    )


def generate(
    scenario: str = "mixed",
    *,
    seed: int = 0,
    count: int | None = 1000,
    start: datetime | None = None,
    environment: str = "local",
    duration: float | None = None,
    events_per_second: float = 20.0,
    bad_fraction: float = 0.0,
    config: str | Path = KUBERNETES_CONFIG,
    cluster: str = "cali-local",
    clock: Callable[[], datetime] | None = None,
) -> Iterator[GeneratedEvent]:
    """Yield events of ``scenario``; see the module docstring for the labels.

    ``count`` events, or until ``duration`` seconds of log time have passed (whichever
    comes first; progress through the scenario follows ``count`` when given). Event times
    start at ``start`` (default: now) and advance by exponential gaps averaging
    ``events_per_second``; with ``clock`` each event takes ``clock()`` instead (real-time
    pacing by the caller). ``bad_fraction`` of the events are malformed stream records.
    """
    if count is None and duration is None:
        raise ValueError("give count, duration or both")
    if not 0.0 <= bad_fraction <= 1.0:
        raise ValueError("bad_fraction must be between 0 and 1")
    windows = _windows(scenario)
    rng = random.Random(f"cali-loggen:{scenario}:{seed}")  # noqa: S311 - reproducible test data, not secrets
    values = _Values(rng)
    fleet = _Fleet(values)
    base = (start or datetime.now(UTC)).astimezone(UTC)
    fluent_bits = _FluentBits(config, fleet.nodes, environment, cluster)
    incidents = _Incidents(windows, fleet)
    sim = base
    seq = 0
    while count is None or seq < count:
        sim += timedelta(seconds=rng.expovariate(events_per_second))
        t = clock() if clock else sim
        elapsed = (t - base).total_seconds()
        if duration is not None and elapsed > duration:
            return
        progress = seq / count if count else elapsed / float(duration or 1)
        if rng.random() < bad_fraction:
            yield _malformed_event(seq, t, values)
        else:
            draft = incidents.next_draft(progress, t)
            yield fluent_bits.ship(seq, t, draft, fleet.pods[draft.service])
        seq += 1


def stable_digest(events: list[GeneratedEvent]) -> str:
    """SHA-256 over the stream bytes: equal digests mean identical output."""
    h = hashlib.sha256()
    for e in events:
        h.update(e.data)
    return h.hexdigest()
