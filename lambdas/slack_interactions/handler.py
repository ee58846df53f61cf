"""Slack interactivity and slash-command endpoint (API Gateway HTTP API, payload v2).

Thin: the raw body and headers go to :class:`cali.lifecycle.interactions.Interactions`,
which verifies, authorises, changes the incident state and answers within Slack's 3
seconds; slower work goes to the lifecycle worker's queue. The raw body is used exactly
as received (base64-decoded when API Gateway encoded it): the signature covers its bytes.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from cali.lifecycle.config import LifecycleSettings, lifecycle_settings
from cali.lifecycle.interactions import HttpResponse, Interactions
from cali.lifecycle.runtime import PowertoolsCounter, SqsDeferrer, interaction_config, slack_api
from cali.lifecycle.store import DynamoDbLifecycleStore, DynamoDbReplayGuard

logger = Logger(service="slack_interactions")
# The domain modules log through stdlib loggers under "cali"; give them the JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"cali"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def compose(settings: LifecycleSettings) -> Interactions:
    dynamodb = boto3.client("dynamodb")
    return Interactions(
        interaction_config(settings),
        store=DynamoDbLifecycleStore(settings.state_table_name, client=dynamodb),
        replay=DynamoDbReplayGuard(settings.state_table_name, client=dynamodb),
        slack=slack_api(settings),
        deferrer=SqsDeferrer(settings.lifecycle_queue_url, boto3.client("sqs")),
        metrics=PowertoolsCounter("CALI", "slack_interactions"),
        clock=utc_now,
    )


@cache
def dependencies() -> Interactions:
    """Built on the first request of an execution environment (secrets, clients)."""
    return compose(lifecycle_settings())


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return b"\x00invalid base64"  # fails the signature check like any tampered body
    return str(body).encode("utf-8")


def to_api_gateway(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {"Content-Type": response.content_type},
        "body": response.body,
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers = {str(k): str(v) for k, v in (event.get("headers") or {}).items()}
    return to_api_gateway(dependencies().handle(raw_body(event), headers))
