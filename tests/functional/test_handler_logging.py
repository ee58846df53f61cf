"""Domain code logs as JSON with the service name of the handler it runs in.

Each handler runs in a fresh interpreter, as in its own Lambda execution environment: the
logging configuration is process-wide, so importing two handlers in one process would let
the last one win.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, sys
import {handler}.handler
logging.getLogger("cali.incidents.consumer").warning("domain line %s", 42)
"""


@pytest.mark.parametrize(
    "handler",
    [
        "log_consumer",
        "log_indexer",
        "incident_analyzer",
        "knowledge_sync",
        "slack_interactions",
        "incident_lifecycle",
    ],
)
def test_a_domain_log_line_is_json_with_the_handlers_service(handler: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "lambdas"), str(ROOT)]),
        "POWERTOOLS_DEV": "false",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(handler=handler)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if "domain line" in line]
    assert len(lines) == 1, done.stdout + done.stderr
    record = json.loads(lines[0])
    assert record["message"] == "domain line 42"
    assert record["level"] == "WARNING"
    assert record["service"] == handler
    assert record["name"] == "cali.incidents.consumer"
