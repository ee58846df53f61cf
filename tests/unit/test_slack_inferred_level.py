"""The Slack message says when an incident's level was inferred from level-less lines."""

from __future__ import annotations

import json

from cali.contracts.incident import SampleLine
from cali.contracts.levels import Level
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.message import build_incident_message, level_inferred
from tests.support.slack_samples import NOW, make_incident, make_result


def _sample(level: Level, source: str | None) -> SampleLine:
    return SampleLine(
        timestamp=NOW, service="sshd", level=level, message="Failed password for root", level_source=source
    )


def test_inferred_level_is_said_in_the_severity_field() -> None:
    incident = make_incident(level=Level.WARN, samples=[_sample(Level.WARN, "inferred")])
    assert level_inferred(incident)
    message = build_incident_message(incident, make_result(), environment="prod", links=IncidentLinks())
    text = json.dumps(message.blocks)
    assert "WARN (inferred: the lines carry no level)" in text


def test_a_level_the_line_said_is_not_called_inferred() -> None:
    assert not level_inferred(make_incident())  # samples without level_source (JSON events)
    samples = [_sample(Level.WARN, "inferred"), _sample(Level.WARN, "line")]
    assert not level_inferred(make_incident(level=Level.WARN, samples=samples))
