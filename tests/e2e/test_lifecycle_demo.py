"""The incident lifecycle end to end on the local services, through the real handlers.

The mixed scenario (several services, so at least four incidents) with ``lifecycle=True``:
signed clicks and a modal submission from the local Slack, the worker, the stream-fed
knowledge sync, escalation and quiet timers (see cali_local.lifecycle).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cali_local.demo_inputs import generated_events, split_waves
from cali_local.pipeline import PipelineOptions, PipelineReport, run_pipeline

pytestmark = [pytest.mark.xdist_group("pipeline"), pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> PipelineReport:
    events = generated_events("mixed", count=1200, seed=7, bad_fraction=0.0)
    return run_pipeline(
        PipelineOptions(
            scenario="mixed",
            waves=split_waves(events),
            workdir=tmp_path_factory.mktemp("lifecycle"),
            throttle_window_seconds=2,
            lifecycle=True,
            again=lambda: split_waves(
                generated_events("mixed", count=1200, seed=7, bad_fraction=0.0, start=datetime.now(UTC))
            )[0],
        )
    )


def _line(report: PipelineReport, start: str) -> str:
    return next(line for line in report.lifecycle if line.strip().startswith(start))


def test_requests_are_verified_and_authorised(report: PipelineReport) -> None:
    assert "HTTP 401" in _line(report, "forged request")
    assert "HTTP 403" in _line(report, "mute") and "not on call" in _line(report, "mute")
    assert "HTTP 200" in _line(report, "acknowledge")
    rejected = report.metrics["slack_interactions"]
    assert rejected["SlackRequestRejected"] == 2 and rejected["IncidentAcknowledged"] == 1


def test_resolution_is_indexed_and_retrieved_on_regression(report: PipelineReport) -> None:
    assert "1 resolution(s) indexed" in _line(report, "knowledge sync from the stream")
    regression = _line(report, "1 regression(s)")
    assert "retrieved as a similar incident: yes" in regression
    assert "muted incident posts: 0" in regression
    regressions = [m for m in report.slack if "Regression" in json.dumps(m.blocks)]
    assert regressions and all(m.thread_ts for m in regressions)  # in the old thread


def test_escalation_and_quiet_resolution(report: PipelineReport) -> None:
    escalated = _line(report, "0:15:00 later")
    assert not escalated.startswith("0:15:00 later: 0 ")
    assert any(":rotating_light:" in m.text and "<!subteam^S0ONCALL>" in m.text for m in report.slack)
    quiet = _line(report, "1:00:00 later")
    assert "0 quiet update" not in quiet
    assert all(report.conservation.values())
