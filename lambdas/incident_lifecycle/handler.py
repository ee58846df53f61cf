"""Lifecycle worker: deferred Slack updates, escalation timers (SQS) and quiet timers (DynamoDB stream).

Thin: SQS jobs and TTL REMOVE stream records go to :mod:`cali.lifecycle`. SQS failures are
reported per message (``batchItemFailures``), so SQS retries them and finally moves them
to the worker's DLQ; stream records are reported the same way (bisect + on-failure
destination in the stack).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from cali.lifecycle.config import LifecycleSettings, lifecycle_settings
from cali.lifecycle.interactions import refresh_message
from cali.lifecycle.runtime import PowertoolsCounter, slack_api
from cali.lifecycle.store import DynamoDbLifecycleStore
from cali.lifecycle.timers import (
    AwsTimerScheduler,
    TimerPolicy,
    TimerWorker,
    escalation_due,
    quiet_timer_expired,
)

logger = Logger(service="incident_lifecycle")
# The domain modules log through stdlib loggers under "cali"; give them the JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def compose(settings: LifecycleSettings, clock: Callable[[], datetime] = utc_now) -> TimerWorker:
    """The worker from the settings; ``clock`` lets the local pipeline move time forward."""
    dynamodb = boto3.client("dynamodb")
    scheduler = AwsTimerScheduler(
        settings.state_table_name,
        settings.lifecycle_queue_url,
        dynamodb=dynamodb,
        sqs=boto3.client("sqs"),
        max_delay_seconds=settings.lifecycle_max_delay_seconds,
    )
    scheduler.clock = clock
    return TimerWorker(
        store=DynamoDbLifecycleStore(settings.state_table_name, client=dynamodb),
        slack=slack_api(settings),
        scheduler=scheduler,
        policy=TimerPolicy(
            escalation=settings.escalation,
            quiet_after=timedelta(minutes=settings.quiet_after_minutes),
        ),
        metrics=PowertoolsCounter("CALI", "incident_lifecycle"),
        clock=clock,
    )


@cache
def dependencies() -> TimerWorker:
    return compose(lifecycle_settings())


def run_job(job: dict[str, Any], work: TimerWorker) -> str:
    kind = job.get("job")
    if kind == "refresh":
        refresh_message(work.store, work.slack, job, work.clock())
        return "refreshed"
    if kind == "escalate":
        fingerprint, number = str(job["fingerprint"]), int(job["number"])
        if not escalation_due(job, work.clock()):
            # Waits longer than SQS's 15-minute delay take several hops.
            work.scheduler.arm_escalation(fingerprint, number, datetime.fromisoformat(str(job["due_at"])))
            return "waiting"
        return work.escalate(fingerprint, number)
    raise ValueError(f"unknown job {kind!r}")


def handle_records(records: list[dict[str, Any]], work: TimerWorker) -> dict[str, Any]:
    failures: list[dict[str, str]] = []
    for record in records:
        try:
            if record.get("eventSource") == "aws:sqs":
                outcome = run_job(json.loads(record["body"]), work)
            else:
                fingerprint = quiet_timer_expired(record)
                outcome = work.quiet(fingerprint) if fingerprint else "ignored"
            logger.info("lifecycle record done", extra={"outcome": outcome})
        except Exception:
            logger.exception("lifecycle record failed")
            ident = record.get("messageId") or (record.get("dynamodb") or {}).get("SequenceNumber", "")
            failures.append({"itemIdentifier": str(ident)})
    return {"batchItemFailures": failures}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_records(list(event.get("Records") or []), dependencies())
