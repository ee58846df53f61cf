"""Our configs in a real Fluent Bit, when one is available (set FLUENT_BIT_BIN=/path/to/fluent-bit).

1. ``--dry-run`` accepts every configuration file as written.
2. A file -> file pipeline (our files config with the tail path pointed at the sample
   corpus and the Kinesis output swapped for a file output) produces the same records as
   cali_local.fluentbit does, so the emulation the tests rely on stays honest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cali_local.fluentbit import (
    FILES_CONFIG,
    FLUENT_BIT_DIR,
    KUBERNETES_CONFIG,
    FluentBitPipeline,
    LogSource,
)

pytestmark = pytest.mark.fluentbit

BIN = os.environ.get("FLUENT_BIT_BIN", "")
needs_binary = pytest.mark.skipif(not BIN, reason="set FLUENT_BIT_BIN to a fluent-bit binary to run")
CORPUS = Path(__file__).parent.parent / "unit" / "data" / "fluentbit"
ENV = {
    "AWS_REGION": "eu-west-1",
    "CALI_STREAM_NAME": "cali-test-logs",
    "CALI_ENV": "test",
    "CALI_CLUSTER": "it",
    "NODE_NAME": "node-1",
    "HOSTNAME": "host-1",
}


@needs_binary
@pytest.mark.parametrize("config", [KUBERNETES_CONFIG, FILES_CONFIG], ids=["kubernetes", "files"])
def test_dry_run_accepts_config(config: Path) -> None:
    result = subprocess.run(
        [BIN, "-c", str(config), "--dry-run"],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration test is successful" in (result.stdout + result.stderr).lower()


@needs_binary
def test_file_to_file_pipeline_matches_the_emulation(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for sample in CORPUS.glob("*.log"):
        shutil.copy(sample, logs / sample.name)
    shutil.copy(FLUENT_BIT_DIR / "parsers.yaml", tmp_path / "parsers.yaml")
    doc: dict[str, Any] = yaml.safe_load(FILES_CONFIG.read_text())
    doc["service"]["storage.path"] = str(tmp_path / "storage")
    doc["service"]["http_server"] = "off"
    tail = doc["pipeline"]["inputs"][0]
    tail.update({"path": str(logs / "*.log"), "db": str(tmp_path / "tail.db"), "read_from_head": "true"})
    doc["pipeline"]["outputs"] = [
        {"name": "file", "match": "*", "path": str(tmp_path), "file": "out.jsonl", "format": "plain"}
    ]
    config = tmp_path / "fluent-bit.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))

    expected: list[dict[str, Any]] = []
    pipeline = FluentBitPipeline.load(FILES_CONFIG, ENV)
    for sample in sorted(logs.glob("*.log")):
        lines = sample.read_text().splitlines()
        for record in pipeline.run(lines, LogSource(str(sample)), time=datetime.now(UTC)):
            # What the record was before kinesis_streams appended its time_key.
            text = record.data.decode().rstrip("\n")
            expected.append(json.loads(text[: text.rfind(',"time":"')] + "}"))

    proc = subprocess.Popen([BIN, "-c", str(config)], env={**os.environ, **ENV})
    out = tmp_path / "out.jsonl"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= len(expected):
                break
            time.sleep(0.5)
        time.sleep(3)  # multiline flush_timeout is 2 s: let stragglers arrive
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    got = [json.loads(line) for line in out.read_text().splitlines()]

    def key(record: dict[str, Any]) -> str:
        return json.dumps(record, sort_keys=True)

    assert sorted(map(key, got)) == sorted(map(key, expected))
