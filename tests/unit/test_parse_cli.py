"""``cali parse``: one JSON object per raw line, or a per-format summary."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cali_cli.main import main

LINES = (
    "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user admin from 10.0.0.1 port 22 ssh2\n"
    "2015-10-18 18:01:47,978 ERROR [main] org.apache.hadoop.Foo: boom\n"
    "\n"
    "just some text\n"
)


def test_json_per_line_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.log"
    log.write_text(LINES, encoding="utf-8")
    assert main(["parse", "--arrival", "2026-12-20T00:00:00Z", str(log)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3  # the blank line is skipped
    assert rows[0] == {
        "timestamp": "2026-12-10T06:55:46Z",
        "level": "WARN",
        "level_source": "inferred",
        "message": "Failed password for invalid user admin from 10.0.0.1 port 22 ssh2",
        "format": "syslog",
        "fields": {"host": "LabSZ", "app": "sshd", "pid": "24200"},
    }
    assert rows[1]["level"] == "ERROR"
    assert rows[1]["fields"] == {"thread": "main", "logger": "org.apache.hadoop.Foo"}
    assert rows[2] == {
        "timestamp": None,
        "level": None,
        "level_source": "default",
        "message": "just some text",
        "format": "unknown",
        "fields": {},
    }


def test_summary_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(LINES))
    assert main(["parse", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "syslog" in out
    assert "iso-level-logger" in out
    assert "3 lines, 33.3% unknown" in out
    assert "levels: line 1, inferred 1, default 1" in out


def test_no_infer_and_http_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "mixed.log"
    log.write_text(
        "Dec 10 06:55:46 h sshd[1]: Failed password for root\n"
        '10.0.0.1 - - [23/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 404 0\n',
        encoding="utf-8",
    )
    assert main(["parse", "--no-infer", "--http-warn-from", "500", str(log)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["level_source"] for row in rows] == ["default", "line"]
    assert rows[1]["level"] == "INFO"


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "nope.log")]) == 2
    assert "no such file" in capsys.readouterr().err
