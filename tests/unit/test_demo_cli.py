"""`cali demo` refuses what it must not do, before starting anything."""

from __future__ import annotations

import pytest

from cali_cli.main import main


def test_demo_refuses_a_real_aws_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://kinesis.eu-west-1.amazonaws.com")
    assert main(["demo", "--count", "5"]) == 2
    assert "real AWS endpoint" in capsys.readouterr().out


def test_demo_rejects_unknown_scenarios_and_missing_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "no-such-thing"]) == 2
    assert "choose one of" in capsys.readouterr().out
    assert main(["demo", "--input", "/nonexistent/app.log"]) == 2
    assert "no such file" in capsys.readouterr().out
