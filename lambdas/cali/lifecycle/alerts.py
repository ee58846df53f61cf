"""The analyzer's side of the lifecycle: gate an alert on its fingerprint's state, then record it.

Before posting, :meth:`AlertLifecycle.gate` reads the lifecycle record (one ``GetItem``
per alert, and alerts are at most a few per fingerprint per throttle window, never per
log record): a muted fingerprint is held back (counted, not posted) unless an ERROR or
worse doubled its rate; a resolved one is a regression, posted in the old thread with a
link to its resolution. After posting, :meth:`AlertLifecycle.record` stores the alert
(occurrences, rate, where the message is) and arms the escalation and quiet timers.

The lifecycle never blocks an alert: if the record cannot be read, the alert is posted as
before and the failure logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cali.contracts.analysis import AnalysisResult
from cali.contracts.incident import IncidentMessage
from cali.lifecycle import blocks
from cali.lifecycle.state import AlertPosted, IncidentLifecycle, Transition
from cali.lifecycle.store import LifecycleStore
from cali.lifecycle.timers import Route, TimerPolicy, TimerScheduler, record_alert, route_alert

logger = logging.getLogger(__name__)
MAX_BLOCKS = 50


@dataclass(frozen=True)
class Gate:
    route: Route
    state: IncidentLifecycle | None

    @property
    def post(self) -> bool:
        return self.route != "muted"


def alert_facts(
    incident: IncidentMessage,
    title: str,
    result: AnalysisResult | None = None,
    *,
    held_back: bool = False,
    channel: str | None = None,
    ts: str | None = None,
) -> AlertPosted:
    llm = result.llm if result is not None else None
    return AlertPosted(
        title=title,
        service=incident.services[0] if incident.services else None,
        template=incident.template,
        level=incident.level.name,
        count=incident.count,
        first_seen=incident.first_seen,
        last_seen=incident.last_seen,
        summary=llm.probable_root_cause if llm else "",
        suggested_fix="\n".join(f"• {action}" for action in llm.next_actions) if llm else "",
        held_back=held_back,
        channel=channel,
        ts=ts,
    )


class AlertLifecycle:
    def __init__(
        self,
        store: LifecycleStore,
        *,
        scheduler: TimerScheduler,
        policy: TimerPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.policy = policy
        self.clock = clock

    def gate(self, incident: IncidentMessage, title: str) -> Gate:
        try:
            state = self.store.load(incident.fingerprint)
        except Exception:
            logger.exception("lifecycle record unavailable; posting %s as usual", incident.fingerprint)
            return Gate("post", None)
        return Gate(route_alert(state, alert_facts(incident, title), self.clock()), state)

    def decorate(
        self, message_blocks: list[dict[str, Any]], gate: Gate, fingerprint: str, *, interactive: bool
    ) -> list[dict[str, Any]]:
        """The alert's blocks with the regression/breakthrough line and the buttons (bot mode)."""
        lead: list[dict[str, Any]] = []
        if gate.route == "regression" and gate.state is not None:
            lead.append(_context(blocks.regression_text(gate.state)))
        elif gate.route == "breakthrough" and gate.state is not None:
            lead.append(_context(":loud_sound: Muted, but its rate more than doubled: breaking through."))
        elif gate.state is not None and gate.state.muted_occurrences:
            held = gate.state.muted_occurrences
            lead.append(
                _context(f":bell: The mute has ended; {held} occurrences were held back while muted.")
            )
        tail = (
            blocks.action_blocks(gate.state, fingerprint) if interactive else [_context(blocks.WEBHOOK_NOTE)]
        )
        room = MAX_BLOCKS - len(lead) - len(tail)
        return [*lead, *message_blocks[:room], *tail]

    def record(
        self,
        incident: IncidentMessage,
        title: str,
        result: AnalysisResult | None,
        *,
        held_back: bool = False,
        channel: str | None = None,
        ts: str | None = None,
    ) -> Transition | None:
        facts = alert_facts(incident, title, result, held_back=held_back, channel=channel, ts=ts)
        try:
            return record_alert(
                self.store,
                incident.fingerprint,
                facts,
                policy=self.policy,
                scheduler=self.scheduler,
                now=self.clock(),
            )
        except Exception:
            # The alert is out; its lifecycle record is a nicety that must not make SQS
            # redeliver (and post) it again.
            logger.exception("could not record the alert of %s in its lifecycle", incident.fingerprint)
            return None


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}
