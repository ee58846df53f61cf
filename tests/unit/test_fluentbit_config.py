"""The Fluent Bit configuration in fluent-bit/, checked through its Python emulation.

Fluent Bit groups lines into events and adds metadata; it parses no header (the log
consumer does, with cali.ingest.normalise). Every regex in parsers.yaml must mean the
same to Onigmo and Python; every multiline rule must be exercised by the sample corpus in
data/fluentbit/, whose events, as the consumer reads them, must be exactly the records
listed in data/fluentbit/expected.yaml.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cali.contracts.levels import Level
from cali.contracts.records import LogRecord, build_record
from cali.ingest.events import REPLAY_TIME_RULE, prepare_event
from cali_local.fluentbit import (
    FILES_CONFIG,
    FLUENT_BIT_DIR,
    KUBERNETES_CONFIG,
    PARSERS_FILE,
    EmulationError,
    FluentBitPipeline,
    LogSource,
    PodMetadata,
    compile_onigmo,
    iter_file_records,
    load_config,
    portability_problems,
)

DATA = Path(__file__).parent / "data" / "fluentbit"
EXPECTED: dict[str, list[dict[str, Any]]] = yaml.safe_load((DATA / "expected.yaml").read_text())
SAMPLES = sorted(EXPECTED)
READ_TIME = datetime(2026, 11, 23, tzinfo=UTC)
ENV = {
    "CALI_ENV": "test",
    "CALI_CLUSTER": "unit",
    "HOSTNAME": "host-1",
    "NODE_NAME": "node-1",
    "AWS_REGION": "eu-west-1",
    "CALI_STREAM_NAME": "cali-test-logs",
}
POD = PodMetadata(
    pod_name="checkout-5d8f7c9b4d-x2k4q",
    namespace_name="shop",
    container_name="checkout",
    host="node-1",
    labels={"app": "checkout"},
    pod_id="0b6c1a52-0000-4000-8000-000000000001",
    docker_id="a" * 64,
    container_image="registry.example.com/acme/checkout:2.14.0",
)
PARSERS_DOC = yaml.safe_load(PARSERS_FILE.read_text())


def all_regexes() -> list[tuple[str, str]]:
    out = [(f"parser {p['name']}", p["regex"]) for p in PARSERS_DOC["parsers"] if "regex" in p]
    for ml in PARSERS_DOC["multiline_parsers"]:
        out += [(f"{ml['name']} rule {i} ({r['state']})", r["regex"]) for i, r in enumerate(ml["rules"])]
    return out


def files_records(name: str, pipeline: FluentBitPipeline | None = None) -> list[dict[str, Any]]:
    pipeline = pipeline or FluentBitPipeline.load(FILES_CONFIG, ENV)
    records = iter_file_records(
        DATA / name, pipeline, source=LogSource(f"/var/log/app/{name}"), time=READ_TIME
    )
    return [r.record for r in records]


def consumer_view(record: dict[str, Any]) -> LogRecord:
    """A Fluent Bit record as the log consumer reads it (sample times are kept as they are)."""
    return build_record(prepare_event(record, READ_TIME, time_rule=REPLAY_TIME_RULE), READ_TIME)


def summarise(record: dict[str, Any]) -> dict[str, Any]:
    log = consumer_view(record)
    text = log.message + (f"\n{log.stack_trace}" if log.stack_trace else "")
    out: dict[str, Any] = {
        "first_line": log.message.split("\n")[0],
        "lines": text.rstrip("\n").count("\n") + 1,
        "level": log.level.name,
        "level_source": log.fields.get("level_source", "json"),
        "service": log.service,
    }
    for name in ("logger", "thread", "trace_id", "request_id"):
        if getattr(log, name):
            out[name] = getattr(log, name)
    if log.timestamp != READ_TIME:
        out["time"] = log.timestamp.isoformat().replace("+00:00", "Z")
    return out


def read(line: str) -> dict[str, Any]:
    """One line through the files config and the consumer's reading, as a flat dict."""
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    [record] = pipeline.run([line], LogSource("/var/log/app/app.log"), time=READ_TIME)
    log = consumer_view(record.record)
    flat: dict[str, Any] = {**log.fields, **log.model_dump(exclude={"fields"}, exclude_none=True)}
    flat["level"] = log.level.name
    flat["time"] = log.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return flat


# --------------------------------------------------------------------------- regex dialect


@pytest.mark.parametrize(("where", "regex"), all_regexes(), ids=[w for w, _ in all_regexes()])
def test_every_regex_is_portable_and_compiles_in_python(where: str, regex: str) -> None:
    assert portability_problems(regex) == [], where
    compiled = compile_onigmo(regex).compiled
    assert isinstance(compiled, re.Pattern)


@pytest.mark.parametrize(
    ("regex", "problem"),
    [
        ("/a*+b/", "possessive"),
        ("/(?>ab)c/", "atomic"),
        ("/(?<=a)b/", "lookbehind"),
        ("/(?<!a)b/", "lookbehind"),
        (r"/\h+/", r"\h"),
        (r"/abc\z/", r"\z"),
        (r"/abc\Z/", r"\Z"),
        ("/(ab)+/", "unnamed capturing group"),
        ("/(?<a>x)(?<a>y)/", "duplicate"),
        ("/(?P<a>x)/", "Python-only"),
        ("/(?<user-name>x)/", "group name"),
        ("/(?i)abc/", "inline flag"),
    ],
)
def test_forbidden_constructs_are_reported(regex: str, problem: str) -> None:
    problems = portability_problems(regex)
    assert any(problem in p for p in problems), problems
    with pytest.raises(EmulationError):
        compile_onigmo(regex)


def test_character_classes_and_escapes_are_not_mistaken_for_groups() -> None:
    assert portability_problems(r"/[(]\(x\)[^\]]+(?:a|b)(?<n>c)/") == []


def test_onigmo_semantics_are_kept() -> None:
    dotall = compile_onigmo("/^a.*z/m").compiled
    assert dotall.search("a\nz")
    line_anchor = compile_onigmo("/^b$/").compiled  # Ruby: ^ and $ are line anchors
    assert line_anchor.search("a\nb\nc")
    ascii_digits = compile_onigmo(r"/^\d+$/").compiled  # Ruby: \d is ASCII
    assert not ascii_digits.search("١٢٣")


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_logs_become_the_expected_records(name: str) -> None:
    assert [summarise(r) for r in files_records(name)] == EXPECTED[name]


@pytest.mark.parametrize("name", SAMPLES)
def test_kubernetes_config_groups_and_parses_the_same_way(name: str) -> None:
    pipeline = FluentBitPipeline.load(KUBERNETES_CONFIG, ENV)
    lines = (DATA / name).read_text().splitlines()
    records = [r.record for r in pipeline.run(lines, LogSource.for_pod(POD), time=READ_TIME)]
    got = [summarise(r) for r in records]
    assert [(g["first_line"], g["lines"], g.get("level"), g.get("trace_id")) for g in got] == [
        (w["first_line"], w["lines"], w.get("level"), w.get("trace_id")) for w in EXPECTED[name]
    ]
    for record in records:
        assert record["kubernetes"]["pod_name"] == POD.pod_name
        assert record["kubernetes"]["labels"] == {"app": "checkout"}
        assert record["host"] == "node-1"
        assert record["environment"] == "test"
        assert record["cluster"] == "unit"
        assert record["service"]  # from the line, or the container name
        assert "file" not in record
        assert "file_service" not in record


def test_every_multiline_rule_and_header_parser_is_exercised_by_the_corpus() -> None:
    config = load_config(FILES_CONFIG)
    pipeline = FluentBitPipeline(config, ENV)
    for name in SAMPLES:
        files_records(name, pipeline)
    ml = config.multiline["multiline_cali"]
    unused = [f"{i}: {r.from_states} {r.pattern.source}" for i, r in enumerate(ml.rules) if not ml.hits[i]]
    assert unused == []
    assert set(config.parsers) == {"cali_service_from_k8s_path", "cali_service_from_file_path"}
    assert config.parsers["cali_service_from_file_path"].hits


def test_stack_traces_stay_whole() -> None:
    checkout = files_records("checkout.log")
    java = checkout[4]["log"].rstrip("\n")
    assert java.count("Caused by: ") == 2
    assert "\t... 3 more" in java and "\t... 4 more" in java
    assert "\tSuppressed: java.io.IOException: Stream closed" in java
    inventory = files_records("inventory.log")
    chained = inventory[2]["log"].rstrip("\n")
    assert "The above exception was the direct cause of the following exception:" in chained
    assert chained.count("Traceback (most recent call last):") == 2
    assert chained.endswith("inventory.errors.DatabaseUnavailable: inventory-db")
    during = inventory[3]["log"].rstrip("\n")
    assert "During handling of the above exception, another exception occurred:" in during
    auth = files_records("auth.log")
    assert "goroutine 1 [IO wait]:" in auth[3]["log"].rstrip("\n") and auth[3]["log"].rstrip("\n").endswith(
        "exit status 2"
    )
    node = files_records("notifications.log")
    assert node[3]["log"].rstrip("\n").splitlines()[-1] == "}"
    assert "[cause]: Error: socket hang up" in node[0]["log"].rstrip("\n")


def test_unparsed_lines_keep_the_raw_log_with_fluent_bits_trailing_newline() -> None:
    records = files_records("unparsed.log")
    assert [r["log"] for r in records] == [
        "Starting nginx 1.25.3\n",
        '10.0.0.7 - - [23/Nov/2026:18:55:00 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"\n',
        '{"truncated": "json line without its end\n',
        "\torphan indented line\n",
    ]
    assert all(r["service"] == "unparsed" for r in records)


@pytest.mark.parametrize(
    ("language_parser", "samples"),
    [
        ("multiline_java", ["checkout.log", "payments.log", "orders.log", "billing.log", "legacy.log"]),
        ("multiline_python", ["inventory.log", "worker.log"]),
        ("multiline_go", ["auth.log", "ledger.log"]),
        ("multiline_node", ["notifications.log", "gateway.log"]),
    ],
)
def test_language_parsers_are_subsets_that_group_their_language_alike(
    language_parser: str, samples: list[str]
) -> None:
    config = load_config(FILES_CONFIG)
    combined = {
        (r.from_states, r.pattern.source, r.to_state) for r in config.multiline["multiline_cali"].rules
    }
    own = config.multiline[language_parser]
    assert {(r.from_states, r.pattern.source, r.to_state) for r in own.rules} <= combined
    single = FluentBitPipeline(config, ENV)
    single.input_multiline = own
    for name in samples:
        assert [summarise(r) for r in files_records(name, single)] == EXPECTED[name]


def test_interleaved_sources_keep_separate_multiline_state() -> None:
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    session = pipeline.session()
    a, b = LogSource("/var/log/app/checkout.log"), LogSource("/var/log/app/inventory.log")
    java = (DATA / "checkout.log").read_text().splitlines()[2:7]
    py = (DATA / "inventory.log").read_text().splitlines()[2:7]
    out = []
    for x, y in zip(java, py, strict=False):
        out += session.feed(x, a, time=READ_TIME) + session.feed(y, b, time=READ_TIME)
    out += session.close()
    by_service = {r.record["service"]: r.record["log"].rstrip("\n").count("\n") + 1 for r in out}
    assert by_service == {"checkout": 5, "inventory": 5}


# --------------------------------------------------------------------------- default formats


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # logback's documented pattern
            "2026-11-23 10:00:01.456 [http-1] ERROR com.acme.OrderService - order 1234 failed",
            {
                "level": "ERROR",
                "thread": "http-1",
                "logger": "com.acme.OrderService",
                "message": "order 1234 failed",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # logback BasicConfigurator / log4j2 DefaultConfiguration: no date, read time kept
            "10:00:01.456 [http-1] ERROR com.acme.OrderService - order failed",
            {
                "level": "ERROR",
                "thread": "http-1",
                "logger": "com.acme.OrderService",
                "message": "order failed",
                "time": "2026-11-23T00:00:00.000Z",
            },
        ),
        (  # log4j 1.x %d %-5p [%t] %c - %m
            "2026-11-23 10:00:01,456 ERROR [http-1] com.acme.OrderService - order failed",
            {
                "level": "ERROR",
                "thread": "http-1",
                "logger": "com.acme.OrderService",
                "message": "order failed",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # log4j2 %d [%t] %-5level %logger - %msg
            "2026-11-23 10:00:01,456 [http-1] ERROR com.acme.OrderService - order failed",
            {
                "level": "ERROR",
                "thread": "http-1",
                "logger": "com.acme.OrderService",
                "message": "order failed",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # Python logging cookbook
            "2026-11-23 10:00:01,456 - app.worker - ERROR - job failed",
            {
                "level": "ERROR",
                "logger": "app.worker",
                "message": "job failed",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # Flask
            "[2026-11-23 10:00:01,456] ERROR in app: boom",
            {"level": "ERROR", "logger": "app", "message": "boom", "time": "2026-11-23T10:00:01.456Z"},
        ),
        (  # Spring Boot without the application name
            "2026-11-23T10:00:01.456Z ERROR 12345 --- [main] c.a.Foo : msg",
            {
                "level": "ERROR",
                "pid": "12345",
                "thread": "main",
                "logger": "c.a.Foo",
                "message": "msg",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # Spring Boot 2 (no zone)
            "2026-11-23 10:00:01.456 ERROR 12345 --- [           main] c.a.Foo                  : msg",
            {
                "level": "ERROR",
                "pid": "12345",
                "thread": "main",
                "logger": "c.a.Foo",
                "message": "msg",
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # level first
            "ERROR 2026-11-23 10:00:01 something broke",
            {"level": "ERROR", "message": "something broke", "time": "2026-11-23T10:00:01.000Z"},
        ),
        (  # logrus text formatter
            'time="2026-11-23T10:00:01Z" level=error msg="db down" err="timeout"',
            {"level": "ERROR", "message": "db down", "err": "timeout", "time": "2026-11-23T10:00:01.000Z"},
        ),
        (  # zap console encoder
            '2026-11-23T10:00:01.456Z\terror\tpayments/charge.go:42\tcharge failed\t{"id": 7}',
            {
                "level": "ERROR",
                "logger": "payments/charge.go:42",  # zap's caller: the record's logger slot
                "message": 'charge failed\t{"id": 7}',
                "time": "2026-11-23T10:00:01.456Z",
            },
        ),
        (  # gunicorn, with its time zone
            "[2026-11-23 10:00:01 +0100] [12345] [ERROR] Exception in worker process",
            {
                "level": "ERROR",
                "pid": "12345",
                "message": "Exception in worker process",
                "time": "2026-11-23T09:00:01.000Z",
            },
        ),
    ],
)
def test_framework_default_formats_are_parsed(line: str, expected: dict[str, Any]) -> None:
    got = read(line)
    assert {key: got.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2026/11/23 10:04:03 [error] 1234#0: *5 connect() failed (111: Connection refused)", "error"),
        ("Nov 23 10:04:04 web-1 billing[4242]: CRITICAL payment provider unreachable", "CRITICAL"),
        ("2026-11-23 10:04:05 [worker-3] (job=77) level=error export failed", "error"),
        ("2026-11-23 10:04:07 | WARNING | cache miss ratio high", "WARNING"),
        ("[main] [ERROR] queue consumer stopped", "ERROR"),
        ("2026-11-23T10:00:01+01:00 <FATAL> out of file descriptors", "FATAL"),
        ("[tomcat-7] 12:00:01 SEVERE: servlet threw an exception", "SEVERE"),
        ('2026-11-23 10:00:01 severity="warn" quota nearly used', "warn"),
        ("2026-11-23 10:00:01 ERR: upstream reset", "ERR"),
        # the first level word wins, whatever the message says later
        ("2026-11-23 10:04:06 INFO retried 0 ERROR rows, nothing to do", "INFO"),
        ("2026-11-23 10:04:06 [INFO] error budget healthy, ERROR rate 0", "INFO"),
    ],
)
def test_an_unknown_format_still_yields_its_level_from_the_header(line: str, level: str) -> None:
    got = read(line)
    assert got["level"] == Level.parse(level).name
    assert got["level_source"] == "line"


@pytest.mark.parametrize(
    "line",
    [
        "Found 3 ERROR entries in yesterday's report",  # prose, not a header
        "2026-11-23 10:04:08 request failed with ERROR 500",  # level word after a message word
        "2026-11-23 10:04:09 [error-handler] registered",  # a bracketed name, not a level
        "2026-11-23 10:04:09 error counter reset",  # lower case needs [..] or level=
        "Errors: none, ERRORS=0",
        "[" + "a" * 40 + "] ERROR after an over-long bracketed field",
        "1 2 3 4 5 6 ERROR after six header fields",
    ],
)
def test_level_words_inside_messages_are_not_levels(line: str) -> None:
    got = read(line)
    assert got["level_source"] != "line", got  # at most inferred from its words ("failed")


def test_new_header_shapes_start_new_events_after_a_stack_trace() -> None:
    """Each shape must open an event: otherwise it is emitted alone and its trace is split off."""
    trace = [
        "2026-11-23 10:00:01.456 [http-1] ERROR com.acme.A - boom",
        "java.lang.IllegalStateException: boom",
        "\tat com.acme.A.run(A.java:1)",
    ]
    starts = [
        "10:00:02.000 [http-2] ERROR com.acme.B - again",
        "[2026-11-23 10:00:03,000] ERROR in app: boom",
        'time="2026-11-23T10:00:04Z" level=error msg="db down"',
        "ERROR 2026-11-23 10:00:05 something broke",
        "[WARN] disk almost full",
        "WARNING: deprecated flag",
        "1.7954598014567e+09\terror\tledger/main.go:30\tboom",
    ]
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    for start in starts:
        lines = [*trace, start, "java.lang.RuntimeException: follow-up", "\tat com.acme.B.run(B.java:2)"]
        records = [r.record for r in pipeline.run(lines, LogSource("/var/log/app/a.log"), time=READ_TIME)]
        texts = [r["log"].rstrip("\n") for r in records]
        assert len(records) == 2 or (start.startswith("time=") and len(records) == 3), (start, texts)
        assert texts[0].count("\n") == 2, start  # the first event kept its own trace only
        second = consumer_view(records[1])
        assert second.level in {Level.ERROR, Level.WARN}, (start, second)
        if not start.startswith("time="):  # logfmt lines are single events by design
            assert "\tat com.acme.B.run(B.java:2)" in texts[1], start


def test_zap_stack_traces_stay_with_their_line() -> None:
    [zap] = [r for r in files_records("ledger.log") if "payments/charge.go:42" in r["log"].split("\n")[0]]
    assert consumer_view(zap).logger == "payments/charge.go:42"
    lines = zap["log"].rstrip("\n").splitlines()
    assert lines[1:] == [
        "main.(*Charger).Charge",
        "\t/src/payments/charge.go:42",
        "main.main",
        "\t/src/payments/main.go:17",
        "runtime.main",
        "\t/usr/local/go/src/runtime/proc.go:271",
    ]


# --------------------------------------------------------------------------- logfmt


def logfmt_parser(**extra: Any) -> Any:
    from cali_local.fluentbit import Parser

    return Parser({"name": "t", "format": "logfmt", **extra})


def test_logfmt_reads_pairs_like_fluent_bit() -> None:
    parser = logfmt_parser()
    result = parser.parse('a=1 b="two words" c= d="" e="say \\"hi\\"\\tnow" bare\nnext=line\n')
    assert result is not None
    # `c=` is true and `bare` too (no_bare_keys off); parsing stops at the line break
    assert result.fields == {
        "a": "1",
        "b": "two words",
        "c": True,
        "d": "",
        "e": 'say "hi"\tnow',
        "bare": True,
    }
    assert result.time is None


def test_logfmt_no_bare_keys_refuses_prose_and_a_bad_time_refuses_the_line() -> None:
    strict = logfmt_parser(logfmt_no_bare_keys=True, time_key="time", time_format="%Y-%m-%dT%H:%M:%S%z")
    assert strict.parse("Starting nginx 1.25.3\n") is None
    assert strict.parse("level=info but then prose\n") is None
    assert strict.parse('time="2026-11-23T10:00:01.5Z" level=info msg=x\n') is None  # time_strict
    assert strict.parse('time="2026-11-23T10:00:01Z"\n') is None  # nothing but the time key
    ok = strict.parse('time="2026-11-23T10:00:01+01:00" level=info msg=x\n')
    assert ok is not None
    assert ok.fields == {"level": "info", "msg": "x"}
    assert ok.time == datetime(2026, 11, 23, 9, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("at=info method=GET path=/orders host=ledger.example.com status=200 service=12ms", "info"),
        ('ts=2026-11-23T10:03:05Z level=error caller=db.go:88 err="connection reset"', "error"),
        ("count=3 status=ok", None),
    ],
)
def test_logfmt_lines_without_msg_keep_their_text_as_message(line: str, level: str | None) -> None:
    got = read(line)
    assert got["message"] == line
    assert got["level"] == (Level.parse(level).name if level else "INFO")
    assert got["service"] == "app"  # Heroku's "service=12ms" is a duration, not the service


def test_fluent_bit_parses_no_header_the_consumer_does() -> None:
    # One source of truth for formats (docs/fluent-bit.md): no parser filter reads `log`.
    for path in (KUBERNETES_CONFIG, FILES_CONFIG):
        doc = yaml.safe_load(path.read_text())
        keys = [f.get("key_name") for f in doc["pipeline"]["filters"] if f["name"] == "parser"]
        assert keys == ["file"], path


# --------------------------------------------------------------------------- output shape


def test_kinesis_record_bytes_match_the_plugin() -> None:
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    line = '{"level":50,"time":1795459981456,"msg":"upstream timeout","service":"gateway"}'
    [record] = pipeline.run(
        [line], LogSource("/var/log/app/gateway.log"), time=datetime(2026, 11, 23, 1, 2, 3, 456789, UTC)
    )
    text = record.data.decode()
    assert text.endswith(',"time":"2026-11-23T01:02:03.456Z"}\n')
    assert record.record["time"] == "2026-11-23T01:02:03.456Z"
    assert json.loads(text)["log"] == line + "\n"  # the line travels raw; the consumer reads it


def test_long_lines_and_oversized_records_are_dropped_and_counted() -> None:
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    source = LogSource("/var/log/app/checkout.log")
    header = "2026-11-23T18:48:39.123Z ERROR 1 --- [checkout] [main] c.a.X : boom"
    assert pipeline.run([header + "x" * 2_000_000], source, time=READ_TIME) == []
    assert pipeline.stats.skipped_long_lines == 1  # over the tail's buffer_max_size
    trace = [header] + ["\tat " + "y" * 400_000] * 3  # each line fits, the event does not
    assert pipeline.run(trace, source, time=READ_TIME) == []
    assert pipeline.stats.discarded_oversize == 1
    assert len(pipeline.run(trace[:2], source, time=READ_TIME)) == 1


def test_missing_environment_variable_is_a_clear_error() -> None:
    env = {k: v for k, v in ENV.items() if k != "CALI_ENV"}
    pipeline = FluentBitPipeline.load(FILES_CONFIG, env)
    with pytest.raises(EmulationError, match="CALI_ENV"):
        pipeline.run(["x"], LogSource("/var/log/app/a.log"))


# --------------------------------------------------------------------------- config shape


@pytest.mark.parametrize("path", [KUBERNETES_CONFIG, FILES_CONFIG], ids=["kubernetes", "files"])
def test_configs_buffer_to_disk_and_retry(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["includes"] == ["parsers.yaml"]
    assert doc["service"]["storage.path"]
    [tail] = doc["pipeline"]["inputs"]
    assert tail["storage.type"] == "filesystem"
    assert tail["mem_buf_limit"]
    assert tail["db"]
    [out] = doc["pipeline"]["outputs"]
    assert out["name"] == "kinesis_streams"
    assert out["region"] == "${AWS_REGION}"
    assert out["stream"] == "${CALI_STREAM_NAME}"
    assert out["time_key"] == "time"
    assert out["retry_limit"] == "no_limits"
    assert out["storage.total_limit_size"]
    header = path.read_text().split("\n\n")[0]
    for var in re.findall(r"\$\{(\w+)\}", path.read_text()):
        assert var in header, f"{var} is used but not documented at the top of {path.name}"


def test_multiline_filter_is_first_in_kubernetes() -> None:
    doc = yaml.safe_load(KUBERNETES_CONFIG.read_text())
    filters = doc["pipeline"]["filters"]
    assert filters[0]["name"] == "multiline"
    assert filters[0]["emitter_storage.type"] == "filesystem"
    assert [f["name"] for f in filters].index("kubernetes") > 0


def test_kubernetes_manifests() -> None:
    docs = list(yaml.safe_load_all((FLUENT_BIT_DIR / "kubernetes" / "daemonset.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) >= {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}
    assert "eks.amazonaws.com/role-arn" in kinds["ServiceAccount"]["metadata"]["annotations"]
    for rule in kinds["ClusterRole"]["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert {"AWS_REGION", "CALI_STREAM_NAME", "CALI_ENV", "CALI_CLUSTER", "NODE_NAME"} <= env
    config_map = yaml.safe_load((FLUENT_BIT_DIR / "kubernetes" / "configmap.yaml").read_text())
    assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    for name in ("fluent-bit.yaml", "parsers.yaml"):
        assert config_map["data"][name] == (FLUENT_BIT_DIR / name).read_text(), (
            f"configmap.yaml is stale: run python fluent-bit/kubernetes/render_configmap.py ({name})"
        )


def test_docker_compose_mounts_the_files_config() -> None:
    compose = yaml.safe_load((FLUENT_BIT_DIR / "docker-compose.yaml").read_text())
    fb = compose["services"]["fluent-bit"]
    assert any(v.startswith("./fluent-bit-files.yaml:") for v in fb["volumes"])
    assert any(v.startswith("./parsers.yaml:") for v in fb["volumes"])


# --------------------------------------------------------------------------- second engine


def corpus_texts() -> list[str]:
    """Every raw line of the corpus and of a loggen run, and every grouped event text."""
    from cali_local.loggen import generate

    texts: list[str] = []
    grouping = FluentBitPipeline.load(FILES_CONFIG, ENV)
    grouping.filter_specs = []  # stop after the tail input's multiline grouping
    for name in SAMPLES:
        lines = (DATA / name).read_text().splitlines()
        texts += lines
        texts += [
            r.record["log"] for r in grouping.run(lines, LogSource(f"/var/log/app/{name}"), time=READ_TIME)
        ]
    for event in generate("mixed", seed=11, count=300, start=READ_TIME):
        texts += [*event.lines, event.raw, event.raw + "\n"]
    texts.append("/var/log/containers/checkout-5d8f7c9b4d-x2k4q_shop_checkout-" + "a" * 64 + ".log")
    texts.append("/var/log/app/payments-2026-11-23.log")
    return texts


@pytest.mark.parametrize(("where", "regex"), all_regexes(), ids=[w for w, _ in all_regexes()])
def test_oniguruma_and_python_find_the_same_matches(where: str, regex: str) -> None:
    """The Onigmo family (oniguruma, Ruby syntax) and Python agree on every corpus text."""
    onig = pytest.importorskip("onigurumacffi")
    body, flags = regex[1 : regex.rfind("/")], regex[regex.rfind("/") + 1 :]
    native = onig.compile(("(?m)" if "m" in flags else "") + body)  # Ruby's m is Python's DOTALL
    python = compile_onigmo(regex).compiled
    groups = python.groups
    assert native.number_of_captures() == groups, where
    matched = 0
    for text in _CORPUS_TEXTS:
        ours, theirs = python.search(text), native.search(text)
        assert (ours is None) == (theirs is None), (where, text)
        if ours is None or theirs is None:
            continue
        matched += 1
        for n in range(groups + 1):
            expected = ours.group(n) if ours.group(n) is not None else ""
            assert theirs.group(n) == expected, (where, n, text)
    assert matched, f"{where} never matched the corpus"


_CORPUS_TEXTS = corpus_texts()
