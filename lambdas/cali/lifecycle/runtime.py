"""What both lifecycle Lambdas build once per execution environment from the settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cali.lifecycle.config import LifecycleSettings
from cali.lifecycle.interactions import InteractionConfig
from cali.lifecycle.slack_api import WebClientSlackApi

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SecretError(ValueError):
    """A configured secret is missing a value or is not a JSON object."""


def _secret_json(arn: str) -> Mapping[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_secret(arn, max_age=300)
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretError(f"secret {arn} is not JSON") from exc
    if not isinstance(value, dict):
        raise SecretError(f"secret {arn} must be a JSON object")
    return value


def _required(secret: Mapping[str, Any], key: str, arn: str) -> str:
    value = secret.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SecretError(f"secret {arn} has no {key}")
    return value.strip()


def interaction_config(settings: LifecycleSettings) -> InteractionConfig:
    secret = settings.slack_signing_secret
    if not secret:
        if not settings.slack_signing_secret_arn:
            raise SecretError("set SLACK_SIGNING_SECRET_ARN (AWS) or SLACK_SIGNING_SECRET (local)")
        arn = settings.slack_signing_secret_arn
        secret = _required(_secret_json(arn), "signing_secret", arn)
    return InteractionConfig(
        signing_secret=secret,
        team_ids=frozenset(settings.slack_team_ids),
        allowed_groups=frozenset(settings.slack_allowed_usergroups),
        max_body_bytes=settings.slack_max_body_bytes,
    )


def slack_api(settings: LifecycleSettings) -> WebClientSlackApi:
    token = settings.slack_bot_token
    if not token:
        if not settings.slack_secret_arn:
            raise SecretError("set SLACK_SECRET_ARN (AWS) or SLACK_BOT_TOKEN (local)")
        token = _required(_secret_json(settings.slack_secret_arn), "bot_token", settings.slack_secret_arn)
    return WebClientSlackApi(token, base_url=settings.slack_api_base_url or None)


class SqsDeferrer:
    """Hands work that may take longer than Slack's 3 s to the lifecycle worker."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self.queue_url = queue_url
        self.client = client

    def defer(self, job: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(dict(job)))


class PowertoolsCounter:
    """:class:`cali.lifecycle.interactions.Metrics` on Powertools (EMF in the logs)."""

    def __init__(self, namespace: str, service: str) -> None:
        self.namespace = namespace
        self.service = service

    def count(self, name: str, value: float = 1.0, *, unit: str = "Count", **dimensions: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name=name, unit=MetricUnit(unit), value=value, namespace=self.namespace) as metric:
            metric.add_dimension(name="service", value=self.service)
            for key, dim in dimensions.items():
                metric.add_dimension(name=key, value=dim)
