from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cali_cli.commands import dlq as command
from cali_testing.ingest import InMemoryDlq
from tests.support.dlq_support import FakeKinesis, entry


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cali")
    command.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> InMemoryDlq:
    dlq = InMemoryDlq()
    dlq.write(
        [
            entry(1, "not_json", b"plain"),
            entry(
                2,
                "invalid_field:timestamp",
                b'{"time": "x"}',
                stream_arn="arn:aws:kinesis:eu-west-1:1:stream/s",
            ),
        ]
    )
    monkeypatch.setattr(command, "_store", lambda args: dlq)
    return dlq


WINDOW = ["--since", "2026-11-23T00:00:00Z", "--until", "2026-11-24T00:00:00Z"]


def test_help_explains_the_dlq(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        cli(["dlq", "--help"])
    assert "dry run" in capsys.readouterr().out


def test_list_table_and_json_with_reason_filter(store: InMemoryDlq, capsys: Any) -> None:
    assert cli(["dlq", "list", *WINDOW]) == 0
    out = capsys.readouterr().out
    assert "not_json" in out and "invalid_field:timestamp" in out
    assert cli(["dlq", "list", *WINDOW, "--reason", "invalid_field", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["reason"] for r in rows] == ["invalid_field:timestamp"] and rows[0]["bytes"] == 13


def test_show_prints_payload(store: InMemoryDlq, capsys: Any) -> None:
    entry_id = next(iter(store.entries))
    assert cli(["dlq", "show", entry_id]) == 0
    assert "plain" in capsys.readouterr().out


def test_replay_dry_run_then_execute(
    store: InMemoryDlq, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(["dlq", "replay", *WINDOW, "--stream", "logs"]) == 0
    assert "would replay" in capsys.readouterr().out
    kinesis = FakeKinesis()
    import boto3

    monkeypatch.setattr(boto3, "client", lambda service, **kw: kinesis)
    assert cli(["dlq", "replay", *WINDOW, "--reason", "invalid_field", "--execute"]) == 0
    assert "1 replayed" in capsys.readouterr().out
    assert [r["Data"] for r in kinesis.calls[0]] == [b'{"time": "x"}']


def test_replay_without_stream_for_entry_without_source_fails_clearly(
    store: InMemoryDlq, capsys: Any
) -> None:
    assert cli(["dlq", "replay", *WINDOW, "--reason", "not_json"]) == 2
    assert "pass --stream" in capsys.readouterr().err


def test_relative_times() -> None:
    assert abs(command._when("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
    assert command._when("2026-11-23T10:00:00") == datetime(2026, 11, 23, 10, tzinfo=UTC)
