"""prepare_event: raw lines get their own time and level; the skew rule bounds the record's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cali.contracts.levels import Level
from cali.contracts.records import build_record
from cali.ingest.events import REPLAY_TIME_RULE, EventTimeRule, prepare_event, raw_text

ARRIVAL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_fluent_bit_unparsed_log_takes_the_lines_time_level_and_header_fields() -> None:
    event = {
        "log": "2026-12-01 11:59:58,123 ERROR [http-1] com.acme.OrderService - order 7 failed\n"
        "\tat x.y(Z.java:1)",
        "time": "2026-12-01T12:00:00.000Z",
        "service": "orders",
    }
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert record.timestamp == datetime(2026, 12, 1, 11, 59, 58, 123000, tzinfo=UTC)
    assert record.level is Level.ERROR
    assert record.message == "order 7 failed"
    assert record.stack_trace == "\tat x.y(Z.java:1)"
    assert (record.logger, record.thread, record.service) == ("com.acme.OrderService", "http-1", "orders")
    assert record.fields["level_source"] == "line"
    assert record.fields["log_format"] == "logback" or record.fields["log_format"].endswith("logger")
    assert record.fields["received_time"] == "2026-12-01T12:00:00.000Z"


def test_a_level_less_syslog_line_is_inferred_and_its_tag_is_the_service() -> None:
    event = {"log": "Dec  1 11:58:00 bastion sshd[77]: Failed password for root from 10.0.0.9 port 22 ssh2"}
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert record.level is Level.WARN
    assert record.fields["level_source"] == "inferred"
    assert record.service == "sshd"
    assert record.host == "bastion"
    assert record.timestamp == datetime(2026, 12, 1, 11, 58, tzinfo=UTC)


def test_no_level_anywhere_is_info_by_default_and_not_re_sniffed() -> None:
    event = {"log": "Dec  1 11:58:00 h app[1]: summary: 0 ERROR lines today"}
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert record.level is Level.INFO
    assert record.fields["level_source"] == "default"


def test_json_objects_with_their_own_level_are_not_raw() -> None:
    assert raw_text({"level": "error", "log": "2026-12-01 ERROR x"}) is None
    assert raw_text({"message": "x", "timestamp": 1}) is None
    assert raw_text({"message": "2026-12-01T11:00:00Z WARN x"}) == ("message", "2026-12-01T11:00:00Z WARN x")


def test_a_raw_json_line_in_log_is_read_with_its_keys() -> None:
    event = {"log": '{"level":"error","ts":1796126000.5,"msg":"charge failed","trace_id":"abc"}'}
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert (record.level, record.message, record.trace_id) == (Level.ERROR, "charge failed", "abc")
    assert record.timestamp == datetime.fromtimestamp(1796126000.5, tz=UTC)


def test_a_single_key_value_token_keeps_its_text() -> None:
    record = build_record(prepare_event({"log": "user_id=42"}, ARRIVAL), ARRIVAL)
    assert record.message == "user_id=42"
    assert record.timestamp == ARRIVAL


def test_skew_rule_bounds_the_records_time() -> None:
    rule = EventTimeRule(max_ahead=timedelta(hours=2), max_age=timedelta(days=14))
    assert rule.choose(ARRIVAL - timedelta(days=13), ARRIVAL) == (ARRIVAL - timedelta(days=13), None)
    assert rule.choose(ARRIVAL + timedelta(hours=1), ARRIVAL) == (ARRIVAL + timedelta(hours=1), None)
    assert rule.choose(ARRIVAL + timedelta(hours=3), ARRIVAL) == (ARRIVAL, "ahead")
    assert rule.choose(ARRIVAL - timedelta(days=400), ARRIVAL) == (ARRIVAL, "old")


def test_an_old_line_takes_the_arrival_time_and_keeps_its_own() -> None:
    event = {"log": "2015-10-18 18:01:47,978 ERROR [main] org.apache.hadoop.Foo: boom"}
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert record.timestamp == ARRIVAL
    assert record.fields["time_skew"] == "old"
    assert record.fields["line_time"] == "2015-10-18T18:01:47.978000+00:00"
    replayed = build_record(prepare_event(event, ARRIVAL, time_rule=REPLAY_TIME_RULE), ARRIVAL)
    assert replayed.timestamp == datetime(2015, 10, 18, 18, 1, 47, 978000, tzinfo=UTC)


def test_the_skew_rule_applies_to_json_times_too() -> None:
    event = {"message": "x", "level": "ERROR", "timestamp": "2031-01-01T00:00:00Z"}
    record = build_record(prepare_event(event, ARRIVAL), ARRIVAL)
    assert record.timestamp == ARRIVAL
    assert record.fields["time_skew"] == "ahead"


def test_a_bad_json_time_is_left_for_build_record_to_report() -> None:
    event = {"message": "x", "level": "ERROR", "timestamp": "yesterday"}
    assert prepare_event(event, ARRIVAL) == event
