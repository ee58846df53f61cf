"""One incident from the queue to Slack and OpenSearch: the analyzer's domain logic.

redact → embed → retrieve similar knowledge → LLM analysis → Slack → incident document.

Every dependency is injected (see ``incident_analyzer.handler`` for the wiring), so the
same code runs in Lambda, in the local pipeline and in tests. The rules:

* nothing unredacted leaves: the embedder, the LLM and Slack only see the redacted copy;
* analysis never blocks the alert: an embedder, Milvus or LLM failure becomes a
  retrieval-only (or empty) ``AnalysisResult`` with a ``degraded_reason`` and the alert
  is still posted;
* only delivery failures fail the message: Slack after its retries
  (``AlertNotPostedError``), or the incident document after Slack succeeded
  (``IncidentSinkError``), so SQS redelivers and finally dead-letters it;
* redelivery is safe: ``AlertState`` remembers that Slack succeeded, so a retry only
  records the document again and never posts twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from cali.analysis.alert_state import AlertBusyError, AlertKey, AlertProgress, AlertState, Claim
from cali.analysis.embeddings import Embedder
from cali.analysis.incident_sink import IncidentDocument, IncidentSink, SlackStatus, build_incident_document
from cali.analysis.redaction import Redactor, redact_incident
from cali.contracts.analysis import AnalysisResult, SimilarIncident
from cali.contracts.incident import IncidentMessage
from cali.knowledge.codes import code_meanings
from cali.knowledge.relevance import (
    MAX_LINE_CHARS,
    KnowledgeSearch,
    LineMatcher,
    RelevancePolicy,
    distinct_lines,
    retrieve,
    without_frames,
)
from cali.lifecycle.alerts import AlertLifecycle
from cali.notify.slack.delivery import SlackDeliveryError, SlackNotifier, SlackPostResult
from cali.notify.slack.links import IncidentLinks
from cali.notify.slack.message import SlackMessage, build_incident_message, incident_title

logger = logging.getLogger(__name__)

QUERY_MAX_CHARS = 1_000
DEFAULT_LEASE_MS = 120_000  # the analyzer's default timeout, when no Lambda context is given
# Slack timestamps come from Slack's clock: look a little before our first attempt.
LOOKUP_SLACK_SECONDS = 60.0
# Webhook posts whose answer never came before the alert counts as delivered (one re-post).
WEBHOOK_UNCERTAIN_ATTEMPTS = 2
_QUERY_TRACE_LINES = 4
_LINE_TRACE_LINES = 3


class IncidentLlm(Protocol):
    def analyze(
        self, incident: IncidentMessage, similar: Sequence[SimilarIncident], *, cache_only: bool = False
    ) -> AnalysisResult: ...


LinksFor = Callable[[IncidentMessage], IncidentLinks]


def incident_query_text(incident: IncidentMessage) -> str:
    """What the incident "looks like" for similarity search (the incident must be redacted).

    Mirrors ``KnowledgeEntry.text_for_embedding``: the symptoms lead (exception, template,
    a real message and the top of its stack trace); counts and hosts would only add noise.
    """
    parts: list[str] = []
    if incident.exception_type:
        parts.append(incident.exception_type)
    parts.append(incident.template)
    if incident.samples:
        sample = incident.samples[0]
        if sample.message.strip() != incident.template.strip():
            parts.append(sample.message)
        if sample.stack_trace:
            parts.extend(sample.stack_trace.strip().splitlines()[:_QUERY_TRACE_LINES])
    meanings = code_meanings(_incident_text(incident))
    if meanings:
        # Last before the service line, so the 1,000-character cut keeps it only when the
        # log text left room: the text itself matters more.
        parts.append("Meaning: " + "; ".join(meanings))
    parts.append("Service: " + ", ".join(incident.services))
    return "\n".join(parts)[:QUERY_MAX_CHARS]


def _incident_text(incident: IncidentMessage) -> str:
    sample = incident.samples[0] if incident.samples else None
    if sample is None:
        return incident.template
    return "\n".join([incident.template, sample.message, sample.stack_trace or ""])


def incident_lines(incident: IncidentMessage) -> list[str]:
    """The lines matched against the entries' example lines: the sample's message, the
    exception lines of its stack trace (not its frames) and the meaning of its codes."""
    sample = incident.samples[0] if incident.samples else None
    lines = [sample.message if sample else incident.template]
    if sample and sample.stack_trace:
        kept = [line.strip() for line in without_frames(sample.stack_trace).splitlines() if line.strip()]
        lines.extend(kept[:_LINE_TRACE_LINES])
    meanings = code_meanings(_incident_text(incident))
    if meanings:
        lines.append("; ".join(meanings))
    return [line[:MAX_LINE_CHARS] for line in lines]


class AlertNotPostedError(RuntimeError):
    """Slack refused the alert after its retries; the SQS record must fail."""

    def __init__(self, outcome: AnalysisOutcome) -> None:
        super().__init__(f"Slack did not accept the alert for incident {outcome.incident_id}")
        self.outcome = outcome


Disposition = Literal["posted", "failed", "resumed", "duplicate", "muted"]


@dataclass(frozen=True)
class AnalysisOutcome:
    """What happened to one message (the handler turns it into metrics)."""

    incident_id: str
    disposition: Disposition
    """``posted``: analysed and sent; ``failed``: analysed, Slack refused; ``resumed``:
    Slack had it already, the document was recorded now; ``duplicate``: all done before;
    ``muted``: analysed, held back by a mute on its fingerprint (counted in its lifecycle)."""
    result: AnalysisResult | None = None
    document: IncidentDocument | None = None
    analysis_latency_ms: float = 0.0


class IncidentAnalysis:
    def __init__(
        self,
        *,
        redactor: Redactor,
        embedder: Embedder,
        knowledge: KnowledgeSearch,
        llm: IncidentLlm,
        notifier: SlackNotifier,
        sink: IncidentSink,
        state: AlertState,
        environment: str,
        links_for: LinksFor,
        top_k: int = 5,
        relevance: RelevancePolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.perf_counter,
        lifecycle: AlertLifecycle | None = None,
    ) -> None:
        self.redactor = redactor
        self.embedder = embedder
        self.knowledge = knowledge
        self.matcher = LineMatcher(embedder)
        self.llm = llm
        self.notifier = notifier
        self.sink = sink
        self.state = state
        self.environment = environment
        self.links_for = links_for
        self.top_k = top_k
        self.relevance = relevance or RelevancePolicy()
        self._clock = clock
        self._monotonic = monotonic
        #: The invocation's remaining time (the handler sets the Lambda context's): an
        #: alert's lease ends with the invocation that took it.
        self.remaining_ms: Callable[[], int] = lambda: DEFAULT_LEASE_MS
        self.lifecycle = lifecycle

    def process(self, incident: IncidentMessage) -> AnalysisOutcome:
        key = AlertKey.of(incident)
        progress = self._progress(key)
        if progress is None:
            # Reserve the alert BEFORE posting: a second container with the same message
            # gets AlertBusyError (SQS redelivers it later) instead of posting it again.
            claim = self._claim(key)
            if claim is not None:
                return self._analyse_and_post(incident, key, claim)
            progress = self._progress(key)  # posted by another invocation meanwhile
            if progress is None:
                raise AlertBusyError(f"alert {key.alert_id} is posted but its state is unreadable")
        return self._resume(incident, key, progress)

    def _resume(self, incident: IncidentMessage, key: AlertKey, progress: AlertProgress) -> AnalysisOutcome:
        if progress.recorded:
            logger.info(
                "alert already posted and recorded; acknowledging", extra={"incident_id": key.incident_id}
            )
            return AnalysisOutcome(incident.incident_id, "duplicate", document=progress.document)
        logger.info(
            "alert already in Slack; recording its document only", extra={"incident_id": key.incident_id}
        )
        self.sink.record(progress.document)  # IncidentSinkError: fail again, SQS retries
        self._mark_recorded(key)
        return AnalysisOutcome(incident.incident_id, "resumed", document=progress.document)

    def _analyse_and_post(self, incident: IncidentMessage, key: AlertKey, claim: Claim) -> AnalysisOutcome:
        started = self._monotonic()
        redacted = redact_incident(incident, self.redactor)
        # Before the analysis: a muted alert costs no embedding and no LLM tokens.
        gate = self.lifecycle.gate(redacted, incident_title(redacted)) if self.lifecycle else None
        if gate is not None and not gate.post:
            return self._hold_back(key, redacted)
        result = self.analyze(redacted)
        latency_ms = (self._monotonic() - started) * 1000
        # A regression is a new episode even when the throttle reports it as a window update:
        # show the whole analysis, whose similar incidents include the resolution.
        shown = (
            redacted.model_copy(update={"kind": "new"}) if gate and gate.route == "regression" else redacted
        )
        message = build_incident_message(
            shown, result, environment=self.environment, links=self.links_for(redacted)
        )
        if gate is not None and self.lifecycle is not None:
            interactive = bool(getattr(self.notifier, "interactive", False))
            blocks = self.lifecycle.decorate(
                message.blocks, gate, incident.fingerprint, interactive=interactive
            )
            message = SlackMessage(text=message.text, blocks=blocks)
        # A regression replies in the thread of the incident it reopens, next to its resolution.
        regression = gate is not None and gate.route == "regression"

        try:
            posted = self._deliver(incident, key, claim, message, regression=regression)
        except Exception as exc:  # SlackDeliveryError after its retries, or anything unexpected
            if isinstance(exc, SlackDeliveryError) and not exc.outcome_unknown:
                self._release(key, claim)  # Slack said no: this attempt posted nothing
            document = self._document(redacted, result, latency_ms, "failed")
            outcome = AnalysisOutcome(incident.incident_id, "failed", result, document, latency_ms)
            # Best effort: a failed alert is worth seeing in Grafana, but the redelivery is
            # what guarantees it is not lost.
            try:
                self.sink.record(document)
            except Exception:
                logger.exception("could not record the failed alert's document")
            raise AlertNotPostedError(outcome) from exc

        document = self._document(redacted, result, latency_ms, "sent")
        try:
            self.state.mark_posted(key, slack_ts=_slack_ts(posted), document=document)
        except Exception:
            # Worst case a redelivery posts again; never lose the document over it.
            logger.exception("could not remember that the alert was posted")
        if self.lifecycle is not None:
            self.lifecycle.record(
                redacted, incident_title(redacted), result, channel=posted.channel, ts=posted.ts
            )
        self.sink.record(document)
        self._mark_recorded(key)
        return AnalysisOutcome(incident.incident_id, "posted", result, document, latency_ms)

    def _deliver(
        self,
        incident: IncidentMessage,
        key: AlertKey,
        claim: Claim,
        message: SlackMessage,
        *,
        regression: bool,
    ) -> SlackPostResult:
        if claim.attempts:
            # An earlier attempt ended without an answer (a crash, a timeout): Slack may
            # have its post. Bot mode finds it by its metadata; a webhook cannot look.
            found = self.notifier.find(
                key.alert_id,
                since=claim.first_attempt_at - LOOKUP_SLACK_SECONDS,
                thread_key=incident.fingerprint,
            )
            if found is not None:
                logger.info("alert found in Slack from an earlier attempt; not posting it again")
                return found
            if not self.notifier.searchable and claim.attempts >= WEBHOOK_UNCERTAIN_ATTEMPTS:
                # The documented webhook window: one re-post after an unknown outcome, then
                # the alert counts as delivered (each attempt reached Slack).
                logger.warning("earlier webhook posts got no answer; taking the alert as delivered")
                return SlackPostResult(ts=None, channel=None, thread_ts=None, attempts=0)
        # One thread per episode of a fingerprint: a `new` alert starts it, the window
        # updates and surges of the same still-firing problem reply under it (a regression
        # replies in the resolved episode's thread).
        return self.notifier.post(
            message,
            thread_key=incident.fingerprint,
            new_thread=incident.kind == "new" and not regression,
            alert_id=key.alert_id,
        )

    def _claim(self, key: AlertKey) -> Claim | None:
        try:
            return self.state.claim(key, lease_ms=self.remaining_ms())
        except AlertBusyError:
            raise
        except Exception:
            # An alert is better than silence: post without a lease (fail open).
            logger.exception("alert state unavailable; posting without a lease")
            return Claim(owner="", attempts=0, first_attempt_at=time.time())

    def _release(self, key: AlertKey, claim: Claim) -> None:
        if not claim.owner:
            return
        try:
            self.state.release(key, claim)
        except Exception:
            logger.exception("could not release the alert's lease; it expires with this invocation")

    def _hold_back(self, key: AlertKey, redacted: IncidentMessage) -> AnalysisOutcome:
        """Muted: counted in the lifecycle and recorded in OpenSearch, neither analysed nor posted."""
        assert self.lifecycle is not None
        result = AnalysisResult(degraded_reason="muted: held back, not analysed")
        self.lifecycle.record(redacted, incident_title(redacted), None, held_back=True)
        document = self._document(redacted, result, 0.0, "muted")
        try:
            self.state.mark_posted(key, slack_ts=None, document=document)
        except Exception:
            logger.exception("could not remember that the alert was held back")
        self.sink.record(document)
        self._mark_recorded(key)
        return AnalysisOutcome(redacted.incident_id, "muted", None, document)

    def analyze(self, redacted: IncidentMessage) -> AnalysisResult:
        """Retrieval then LLM; never raises: failures come back as a degraded result."""
        query = incident_query_text(redacted)
        lines = distinct_lines(incident_lines(redacted))
        try:
            # One call for the query and the lines the relevance check matches.
            vector, *line_vectors = self.embedder.embed([query, *lines])
        except Exception as exc:
            logger.exception("embedding failed; alert without retrieval or LLM")
            return AnalysisResult(
                degraded_reason=(
                    f"embedder unavailable ({type(exc).__name__}); no similar incidents, no LLM analysis"
                )
            )
        try:
            # Only entries judged relevant (cali.knowledge.relevance) are shown and sent.
            similar = retrieve(
                self.knowledge,
                self.matcher,
                vector,
                query,
                line_vectors,
                policy=self.relevance,
                top_k=self.top_k,
                # One service: keep its entries and the generic runbooks. Several: no filter.
                service=redacted.services[0] if len(redacted.services) == 1 else None,
                fingerprint=redacted.fingerprint,
            )
        except Exception as exc:
            logger.exception("knowledge search failed; alert without retrieval or LLM")
            return AnalysisResult(
                similar=[],
                degraded_reason=(
                    f"knowledge base (Milvus) unavailable ({type(exc).__name__}); "
                    "no similar incidents, no LLM analysis"
                ),
            )
        # An update message shows no analysis: a cached answer still fills its document, but
        # the model is never called for it.
        return self.llm.analyze(redacted, similar, cache_only=redacted.kind == "update")

    def _document(
        self, redacted: IncidentMessage, result: AnalysisResult, latency_ms: float, status: SlackStatus
    ) -> IncidentDocument:
        return build_incident_document(
            redacted, result, analyzed_at=self._clock(), analysis_latency_ms=latency_ms, slack_status=status
        )

    def _progress(self, key: AlertKey) -> AlertProgress | None:
        try:
            return self.state.get(key)
        except Exception:
            logger.exception("alert state unavailable; processing as a first delivery")
            return None

    def _mark_recorded(self, key: AlertKey) -> None:
        try:
            self.state.mark_recorded(key)
        except Exception:
            logger.exception("could not remember that the document was recorded")


def _slack_ts(posted: SlackPostResult) -> str | None:
    return posted.ts or None  # webhooks do not tell the ts
