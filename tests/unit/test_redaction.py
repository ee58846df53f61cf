"""Redaction: recall per class on a labelled corpus, zero false positives on ordinary logs.

The corpus has two parts: hand-written realistic lines in ``data/redaction_corpus.jsonl``
(positives with the exact values that must disappear, and ordinary log lines that must
come out unchanged) and positives generated here from a seeded RNG, at least 40 per class,
in varied surrounding text.
"""

from __future__ import annotations

import argparse
import base64
import io
import ipaddress
import json
import random
import string
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cali.analysis.redaction import LABELS, Redactor, luhn_valid, redact_incident
from cali.contracts.incident import IncidentMessage, SampleLine
from cali.contracts.levels import Level

CORPUS = Path(__file__).parent / "data" / "redaction_corpus.jsonl"
PER_CLASS = 60
MIN_RECALL = 0.99

Case = tuple[str, dict[str, list[str]]]


def load_corpus() -> tuple[list[Case], list[str]]:
    positives: list[Case] = []
    negatives: list[str] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if item["expect"]:
            positives.append((item["text"], item["expect"]))
        else:
            negatives.append(item["text"])
    return positives, negatives


# ---------------------------------------------------------------------------------------
# Generators: realistic values in realistic surroundings
# ---------------------------------------------------------------------------------------

CONTEXTS = [
    "{v}",
    "2026-11-23T10:30:00Z ERROR request failed for {v}",
    '{{"level":"error","msg":"lookup failed","value":"{v}"}}',
    "WARN [worker-3] retry 2/5 for {v}, backing off 400ms",
    "level=error svc=payments detail=({v}) took=35ms",
    "결제 오류: {v} 처리 실패",
]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def _group_card(number: str, sep: str) -> str:
    if not sep:
        return number
    if len(number) == 15:  # Amex 4-6-5
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def gen_email(rng: random.Random) -> Iterator[tuple[str, str]]:
    tlds = ["com", "org", "io", "co.kr", "example", "net", "de", "cloud"]
    for _ in range(PER_CLASS):
        local = _rand(rng, string.ascii_lowercase, rng.randint(2, 8))
        local += rng.choice(["", ".", "_", "-", "+"]) + _rand(rng, string.ascii_lowercase + string.digits, 4)
        domain = _rand(rng, string.ascii_lowercase, rng.randint(3, 9)) + "." + rng.choice(tlds)
        value = f"{local}@{rng.choice(['', 'mail.', 'eu.'])}{domain}"
        yield value, rng.choice([*CONTEXTS, "to=<{v}> status=bounced", "From: {v}"])


def gen_ipv4(rng: random.Random) -> Iterator[tuple[str, str]]:
    while True:
        for _ in range(PER_CLASS):
            value = ".".join(str(rng.randint(0, 255)) for _ in range(4))
            address = ipaddress.IPv4Address(value)
            if address.is_loopback or address.is_unspecified:
                continue
            yield (
                value,
                rng.choice([*CONTEXTS, "client {v}:52311 reset", "upstream http://{v}:8080/health down"]),
            )
        return


def gen_ipv6(rng: random.Random) -> Iterator[tuple[str, str]]:
    for i in range(PER_CLASS):
        groups = [rng.randint(0, 0xFFFF) for _ in range(8)]
        if i % 3 == 0:
            groups[2:6] = [0, 0, 0, 0]  # compressible
        address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
        value = address.compressed if i % 2 else address.exploded
        if i % 7 == 0:
            value = "::ffff:" + ".".join(str(rng.randint(1, 223)) for _ in range(4))
        if i % 5 == 0:
            value = f"fe80::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}"
        yield value, rng.choice([*CONTEXTS, "peer [{v}]:8443 timeout", "src={v} dst=2001:db8::1"])


def gen_aws_access_key(rng: random.Random) -> Iterator[tuple[str, str]]:
    for _ in range(PER_CLASS):
        value = rng.choice(["AKIA", "ASIA", "AROA", "AIDA"]) + _rand(
            rng, string.ascii_uppercase + string.digits, 16
        )
        yield value, rng.choice([*CONTEXTS, "aws_access_key_id={v}", '"AccessKeyId": "{v}"'])


def gen_aws_secret_key(rng: random.Random) -> Iterator[tuple[str, str]]:
    keys = ["aws_secret_access_key={v}", '"SecretAccessKey": "{v}"', "AWS_SECRET_ACCESS_KEY: {v}",
            "secret_access_key = {v}", "aws_secret={v}", "secret key {v} rejected"]  # fmt: skip
    for _ in range(PER_CLASS):
        value = _rand(rng, string.ascii_letters + string.digits + "/+", 40)
        yield value, "ERROR boto: " + rng.choice(keys) + " invalid"


def gen_jwt(rng: random.Random) -> Iterator[tuple[str, str]]:
    for _ in range(PER_CLASS):
        header = _b64url({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
        payload = _b64url(
            {"sub": _rand(rng, string.digits, 8), "exp": rng.randint(1_700_000_000, 1_800_000_000)}
        )
        signature = _rand(rng, string.ascii_letters + string.digits + "-_", rng.choice([43, 86, 0]))
        value = f"{header}.{payload}.{signature}"
        yield value, rng.choice([*CONTEXTS, "Authorization: Bearer {v}", "id_token={v}", '"jwt": "{v}"'])


def gen_bearer(rng: random.Random) -> Iterator[tuple[str, str]]:
    for _ in range(PER_CLASS):
        value = rng.choice(["ghp_", "xoxb-", "sk-", "glpat-", ""]) + _rand(
            rng, string.ascii_letters + string.digits, rng.randint(20, 48)
        )
        value = value[:-1] + rng.choice(string.digits)
        template = rng.choice(
            [
                "Authorization: Bearer {v}",
                "curl -H 'Authorization: Bearer {v}' https://api.example.com",
                '{{"authorization": "Bearer {v}"}}',
                "upstream rejected bearer {v} with 401",
            ]
        )
        yield value, template


def gen_secret(rng: random.Random) -> Iterator[tuple[str, str]]:
    schemes = ["postgres", "mysql", "redis", "amqp", "mongodb+srv", "https"]
    kv = [
        "password={v}", "db_password={v}", "DB_PASSWD={v} user=app", '"password": "{v}"', "'pwd': '{v}'",
        "client_secret={v}", '"client_secret":"{v}"', "api_key={v}", "apikey: {v}", "X-Api-Key: {v}",
        "access_token={v}", "refresh_token: {v}", "secret={v}", "githubToken={v}", "private_key='{v}'",
        "GET /v1/data?format=json&api_key={v}&page=2", "callback?code=1&access_token={v}#frag",
    ]  # fmt: skip
    for i in range(PER_CLASS):
        value = _rand(rng, string.ascii_letters + string.digits, rng.randint(8, 24)) + rng.choice(
            ["", "!", "#1", "-9", "_x7", "$2"]
        )
        if i % 3 == 0:
            host = _rand(rng, string.ascii_lowercase, 6) + ".internal"
            user = rng.choice(["app", "svc_orders", "guest", ""])
            yield value, f"connect {rng.choice(schemes)}://{user}:{value}@{host}:5432/db failed"
        else:
            yield value, "WARN config dump " + rng.choice(kv)


def gen_card(rng: random.Random) -> Iterator[tuple[str, str]]:
    specs = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
             ("6011", 16), ("65", 16), ("3528", 16), ("62", 19), ("36", 14)]  # fmt: skip
    for _ in range(PER_CLASS):
        prefix, length = rng.choice(specs)
        number = _luhn_complete(prefix, length, rng)
        value = _group_card(number, rng.choice(["", " ", "-"]))
        yield value, rng.choice([*CONTEXTS, "charge declined card={v} amount=12.00", '"pan":"{v}"'])


def gen_phone(rng: random.Random) -> Iterator[tuple[str, str]]:
    def d(n: int) -> str:
        return _rand(rng, string.digits, n)

    makers: list[Callable[[], str]] = [
        lambda: f"010-{d(4)}-{d(4)}",
        lambda: f"011-{d(3)}-{d(4)}",
        lambda: f"+82 10-{d(4)}-{d(4)}",
        lambda: f"+8210{d(8)}",
        lambda: f"02-{d(3)}-{d(4)}",
        lambda: f"031-{d(4)}-{d(4)}",
        lambda: f"+1 ({rng.randint(201, 989)}) {rng.randint(200, 999)}-{d(4)}",
        lambda: f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{d(4)}",
        lambda: f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{d(4)}",
        lambda: f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{d(4)}",
        lambda: f"+44 20 {d(4)} {d(4)}",
        lambda: f"+49 30 {d(6)}",
        lambda: f"010{d(8)}",
    ]
    for i in range(PER_CLASS):
        value = makers[i % len(makers)]()
        yield value, rng.choice([*CONTEXTS, "SMS to {v} failed: carrier timeout", "phone={v}"])


def gen_kr_rrn(rng: random.Random) -> Iterator[tuple[str, str]]:
    for _ in range(PER_CLASS):
        value = (
            f"{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{rng.randint(1, 8)}"
        )
        value += _rand(rng, string.digits, 6)
        yield value, rng.choice([*CONTEXTS, "주민등록번호 {v} 불일치", '"rrn":"{v}"'])


def gen_private_key(rng: random.Random) -> Iterator[tuple[str, str]]:
    for i in range(PER_CLASS):
        kind = rng.choice(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "])
        body = [_rand(rng, string.ascii_letters + string.digits + "+/", 64) for _ in range(rng.randint(1, 6))]
        newline = "\\n" if i % 2 else "\n"  # JSON-escaped in a log field, or real lines
        value = newline.join(body)
        pem = f"-----BEGIN {kind}PRIVATE KEY-----{newline}{value}{newline}-----END {kind}PRIVATE KEY-----"
        yield value, "config loaded: " + rng.choice(["{v}", '{{"key": "{v}"}}', "tls.key={v}"]).format(v=pem)


GENERATORS: dict[str, Callable[[random.Random], Iterator[tuple[str, str]]]] = {
    "EMAIL": gen_email,
    "IPV4": gen_ipv4,
    "IPV6": gen_ipv6,
    "AWS_ACCESS_KEY": gen_aws_access_key,
    "AWS_SECRET_KEY": gen_aws_secret_key,
    "JWT": gen_jwt,
    "BEARER_TOKEN": gen_bearer,
    "SECRET": gen_secret,
    "CARD": gen_card,
    "PHONE": gen_phone,
    "KR_RRN": gen_kr_rrn,
    "PRIVATE_KEY": gen_private_key,
}


def all_positive_cases() -> list[Case]:
    rng = random.Random(20261123)
    cases, _ = load_corpus()
    for label, generator in GENERATORS.items():
        for value, template in generator(rng):
            text = template if label == "PRIVATE_KEY" else template.format(v=value)
            cases.append((text, {label: [value]}))
    return cases


def recall_by_class(redactor: Redactor, cases: list[Case]) -> tuple[dict[str, float], dict[str, list[str]]]:
    hits: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    misses: dict[str, list[str]] = defaultdict(list)
    for text, expect in cases:
        out = redactor.redact(text)
        for label, values in expect.items():
            for value in values:
                totals[label] += 1
                if value not in out and f"<{label}_" in out:
                    hits[label] += 1
                else:
                    misses[label].append(f"{text!r} -> {out!r}")
    return {label: hits[label] / totals[label] for label in totals}, misses


# ---------------------------------------------------------------------------------------
# Corpus tests
# ---------------------------------------------------------------------------------------


def test_corpus_is_big_enough() -> None:
    _, negatives = load_corpus()
    assert len(negatives) >= 150
    counts: dict[str, int] = defaultdict(int)
    for _, expect in all_positive_cases():
        for label, values in expect.items():
            counts[label] += len(values)
    assert set(GENERATORS) <= set(counts)
    assert all(counts[label] >= 40 for label in GENERATORS), counts


@pytest.mark.parametrize("label", sorted(GENERATORS))
def test_recall_per_class(label: str) -> None:
    recall, misses = recall_by_class(Redactor(), all_positive_cases())
    assert recall[label] >= MIN_RECALL, "\n".join(misses[label][:10])


def test_no_false_positives_on_ordinary_log_lines() -> None:
    _, negatives = load_corpus()
    redactor = Redactor()
    changed = [(line, redactor.redact(line)) for line in negatives if redactor.redact(line) != line]
    assert changed == []


def test_non_luhn_and_unknown_prefix_numbers_stay() -> None:
    rng = random.Random(7)
    redactor = Redactor()
    for _ in range(200):
        number = _luhn_complete("4", 16, rng)
        broken = number[:-1] + str((int(number[-1]) + 1) % 10)
        assert not luhn_valid(broken)
        assert redactor.redact(f"order {broken} rejected") == f"order {broken} rejected"
    # Luhn-valid but no card network starts with 1 or 9: epoch millis, ids
    assert redactor.redact("ts 1732357800127 id 9000000000000007") == "ts 1732357800127 id 9000000000000007"


@pytest.mark.parametrize(
    "text",
    [
        "semver 1.2.3 and 10.20.30",
        "times 10:30:00 and 23:59:59.999",
        "port :8080 and host:9090",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "duration 1500ms 2.5s 1h2m3s",
        "rrn-like without hyphen 9001011234567 stays",
        "bad date 901301-1234567 and 900132-1234567 and gender 900101-9234567",
        "MAC 00:1A:2B:3C:4D:5E and Foo::Bar and ::",
        "loopback 127.0.0.1 ::1 bind 0.0.0.0",
    ],
)
def test_documented_negatives(text: str) -> None:
    assert Redactor().redact(text) == text


# ---------------------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------------------


def test_session_placeholders_are_consistent_and_counted() -> None:
    session = Redactor().new_session()
    first = session.redact("a@example.com from 10.0.0.1, b@example.com from 10.0.0.1")
    second = session.redact("again a@example.com")
    assert first == "<EMAIL_1> from <IPV4_1>, <EMAIL_2> from <IPV4_1>"
    assert second == "again <EMAIL_1>"
    assert session.counts == {"EMAIL": 3, "IPV4": 2}
    assert session.distinct == {"EMAIL": 2, "IPV4": 1}
    # a one-off redaction starts its own numbering
    assert Redactor().redact("b@example.com") == "<EMAIL_1>"


def test_order_url_credentials_before_email_and_jwt_label_kept() -> None:
    redactor = Redactor()
    assert (
        redactor.redact("postgres://app:pw1@db.example.com/x") == "postgres://app:<SECRET_1>@db.example.com/x"
    )
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefgh"
    assert redactor.redact(f"token={jwt}") == "token=<JWT_1>"
    assert redactor.redact(f"Authorization: Bearer {jwt}") == "Authorization: Bearer <JWT_1>"


def test_key_names_stay_readable() -> None:
    out = Redactor().redact('{"user": "bob", "password": "hunter2", "retries": 3}')
    assert out == '{"user": "bob", "password": "<SECRET_1>", "retries": 3}'
    out = Redactor().redact("java -Dpassword=s3cret -Ddb.password=x1 max_tokens=800 spring.ds.password: Xy12")
    assert (
        out
        == "java -Dpassword=<SECRET_1> -Ddb.password=<SECRET_2> max_tokens=800 spring.ds.password: <SECRET_3>"
    )


def test_extra_patterns_run_first_and_support_value_group() -> None:
    redactor = Redactor({"order-id": r"ORD-\d{6}", "tenant": r"tenant=(?P<value>\w+)"})
    assert redactor.redact("ORD-123456 for tenant=acme") == "<ORDER_ID_1> for tenant=<TENANT_1>"


@pytest.mark.parametrize("patterns", [{"bad": "("}, {"1abc": "x"}, {"": "x"}])
def test_extra_patterns_are_validated(patterns: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Redactor(patterns)


def test_labels_cover_every_class() -> None:
    assert set(GENERATORS) == set(LABELS)


def test_redact_incident_uses_one_session_and_keeps_host_names() -> None:
    now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    sample = SampleLine(
        timestamp=now,
        service="payments",
        level=Level.ERROR,
        message="charge failed for alice@example.com from 203.0.113.5",
        host="10.0.3.7",
        stack_trace="ValueError: bad card 4111 1111 1111 1111 for alice@example.com",
    )
    incident = IncidentMessage(
        incident_id="fp1-1",
        fingerprint="0123456789abcdef",
        template="charge failed for <*> from <*>",
        kind="new",
        environment="prod",
        level=Level.ERROR,
        services=["payments"],
        hosts=["ip-10-0-3-7.ec2.internal", "10.0.3.7", "payments-7d9f8b6c5-x2k4p"],
        count=3,
        window_count=3,
        first_seen=now,
        last_seen=now,
        samples=[sample, sample.model_copy(update={"message": "retry for alice@example.com", "host": None})],
    )
    out = redact_incident(incident, Redactor())
    assert out.samples[0].message == "charge failed for <EMAIL_1> from <IPV4_1>"
    assert out.samples[0].stack_trace == "ValueError: bad card <CARD_1> for <EMAIL_1>"
    assert out.samples[1].message == "retry for <EMAIL_1>"
    assert out.samples[0].host == "<IPV4_2>"
    assert out.hosts == ["ip-10-0-3-7.ec2.internal", "<IPV4_2>", "payments-7d9f8b6c5-x2k4p"]
    assert incident.samples[0].message.startswith("charge failed for alice@")  # input untouched


def test_redact_incident_follows_a_private_key_from_the_message_into_the_stack_trace() -> None:
    # A multi-line event is split into message (first line) and stack trace (the rest):
    # a key logged as text opens in one field and continues, unmarked, in the other.
    now = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7"
    sample = SampleLine(
        timestamp=now,
        service="payments",
        level=Level.ERROR,
        message="cannot parse TLS_KEY=-----BEGIN RSA PRIVATE KEY-----",
        stack_trace=f"{body}\n-----END RSA PRIVATE KEY-----\n\tat Loader.load(Loader.java:12)",
    )
    cut_off = sample.model_copy(update={"stack_trace": body})
    incident = IncidentMessage(
        incident_id="fp1-1",
        fingerprint="0123456789abcdef",
        template="cannot parse TLS_KEY=<*>",
        kind="new",
        environment="prod",
        level=Level.ERROR,
        services=["payments"],
        count=2,
        window_count=2,
        first_seen=now,
        last_seen=now,
        samples=[sample, cut_off],
    )
    out = redact_incident(incident, Redactor())
    for redacted in out.samples:
        assert "MIIE" not in redacted.message + (redacted.stack_trace or "")
        assert "VJTUt9" not in redacted.message + (redacted.stack_trace or "")
    assert out.samples[0].message == "cannot parse TLS_KEY=<PRIVATE_KEY_1>"
    assert out.samples[0].stack_trace == "\tat Loader.load(Loader.java:12)"
    assert out.samples[1].stack_trace is None


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _run_cli(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    from cali_cli.commands import redact

    parser = argparse.ArgumentParser()
    redact.register(parser.add_subparsers())
    args = parser.parse_args(["redact", *argv])
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = args.func(args)
    return code, out.getvalue(), err.getvalue()


def test_cli_one_session_per_run_with_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run_cli(["--stats"], "a b@x.io 10.1.1.1\nc b@x.io\nno newline", monkeypatch)
    assert code == 0
    assert out == "a <EMAIL_1> <IPV4_1>\nc <EMAIL_1>\nno newline"
    assert "EMAIL: 2" in err and "IPV4: 1" in err and "lines: 3" in err


def test_cli_per_line_and_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _run_cli(
        ["--per-line", "--pattern", r"TICKET=TCK-\d+", "--patterns-json", '{"ORDER": "ORD-\\\\d+"}'],
        "a@x.io TCK-1\nb@x.io ORD-9\n",
        monkeypatch,
    )
    assert code == 0
    assert out == "<EMAIL_1> <TICKET_1>\n<EMAIL_1> <ORDER_1>\n"


def test_cli_rejects_bad_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run_cli(["--pattern", "nolabel"], "", monkeypatch)
    assert code == 2 and "LABEL=REGEX" in err


@pytest.mark.parametrize(
    "address",
    ["::ffff:10.1.2.3", "::ffff:192.0.2.128", "64:ff9b::198.51.100.7", "2001:db8::ffff:10.20.30.40"],
)
def test_ipv6_with_an_embedded_ipv4_is_redacted_whole(address: str) -> None:
    # Cutting at the first "." would leave three octets of the address in the text.
    out = Redactor().redact(f"client {address} denied")
    assert out == "client <IPV6_1> denied"


@pytest.mark.parametrize("argv", [[], ["--per-line"]])
def test_cli_redacts_a_private_key_spread_over_lines(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI reads line by line; the key's body lines carry no marker of their own.
    body = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7", "VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7"]
    stdin = "\n".join(
        [
            "loading key",
            "-----BEGIN RSA PRIVATE KEY-----",
            *body,
            "-----END RSA PRIVATE KEY-----",
            "a@x.io",
            "",
        ]
    )
    code, out, _ = _run_cli(argv, stdin, monkeypatch)
    assert code == 0
    assert out == "loading key\n<PRIVATE_KEY_1>\n<EMAIL_1>\n"
    # A key cut off by the end of the input is still redacted to the end.
    code, out, _ = _run_cli(argv, "x\n-----BEGIN PRIVATE KEY-----\n" + body[0] + "\n", monkeypatch)
    assert code == 0 and body[0] not in out and out == "x\n<PRIVATE_KEY_1>\n"


@pytest.mark.parametrize(
    "template",
    ['{{"token": "{v}"}}', "token={v}", "refresh_token: {v}", "--token {v}", "{{'client_secret': '{v}'}}"],
)
def test_long_secret_values_are_redacted_whole(template: str) -> None:
    # Session blobs and cloud tokens run to kilobytes; a length cap must not leak them.
    value = "A1b2-c3D4_" * 120
    out = Redactor().redact(template.format(v=value))
    assert "A1b2" not in out and "<SECRET_1>" in out
