"""The Slack secret (webhook URL, or bot token and channel) read from Secrets Manager."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


SecretFetcher = Callable[[str], "Mapping[str, Any] | str"]


class SlackConfigurationError(ValueError):
    """Neither a webhook nor a bot token/channel is configured, or the secret is malformed."""


def powertools_secret_fetcher(secret_id: str) -> Mapping[str, Any] | str:
    """Secrets Manager through Powertools Parameters (cached for 5 minutes per container)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=300)
    return value if isinstance(value, str) else bytes(value).decode("utf-8")


def _secret_mapping(raw: Mapping[str, Any] | str, secret_id: str) -> Mapping[str, Any]:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SlackConfigurationError(f"Slack secret {secret_id} is not JSON") from exc
        if not isinstance(parsed, dict):
            raise SlackConfigurationError(f"Slack secret {secret_id} must be a JSON object")
        return parsed
    return raw


def _secret_text(secret: Mapping[str, Any], key: str, secret_id: str) -> str | None:
    """A text value, stripped: a newline pasted with it would break every post."""
    value = secret.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SlackConfigurationError(f"Slack secret {secret_id}: {key} must be a string")
    return value.strip() or None
