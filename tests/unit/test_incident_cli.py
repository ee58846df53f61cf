"""``cali incident``: the same state changes as the Slack buttons, on the state table (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cali.lifecycle.state import AlertPosted
from cali.lifecycle.store import DynamoDbLifecycleStore, apply
from cali_cli.main import main
from tests.conftest import StateTable

FP = "0123456789abcdef"


def _cli(table: StateTable, *args: str) -> int:
    return main(["incident", "--table", table.name, *args])


def test_ack_resolve_mute_list_show(
    state_table: StateTable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", state_table.region)
    monkeypatch.delenv("LIFECYCLE_QUEUE_URL", raising=False)
    store = DynamoDbLifecycleStore(state_table.name, client=state_table.client)
    now = datetime.now(UTC)
    posted = AlertPosted("db down", "payments", "Charge <*> failed", "ERROR", 12, now, now)
    apply(store, FP, posted, now)

    assert _cli(state_table, "ack", FP, "--as", "alice") == 0
    assert "acknowledged by alice" in capsys.readouterr().out
    assert _cli(state_table, "ack", FP, "--as", "bob") == 0
    assert "already acknowledged by alice" in capsys.readouterr().out
    assert _cli(state_table, "mute", FP, "--for", "2h", "--as", "alice") == 0
    assert _cli(state_table, "mute", FP, "--for", "soon") == 2
    assert "not done: duration" in capsys.readouterr().err

    assert _cli(state_table, "list") == 0
    out = capsys.readouterr().out
    assert FP in out and "acknowledged" in out and "yes" in out and "db down" in out

    assert _cli(state_table, "resolve", FP, "--root-cause", "pool", "--resolution", "raised it") == 0
    capsys.readouterr()
    assert _cli(state_table, "list", "--status", "resolved", "--json") == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["resolution"] == "raised it"
    lessons = state_table.client.scan(
        TableName=state_table.name,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": "incident#"}},
    )["Items"]
    assert [item["root_cause"]["S"] for item in lessons] == ["pool"]

    assert _cli(state_table, "show", FP) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["action"] for h in shown["history"]] == ["acknowledged", "muted", "resolved"]
    assert _cli(state_table, "show", "nope") == 1
