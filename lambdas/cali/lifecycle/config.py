"""Configuration of the Slack interactivity endpoint and the incident timers, read once."""

# EscalationRule lives with the settings contracts: the analyzer arms what the worker fires.

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from cali.contracts.settings import CommonSettings, EscalationRule, LifecycleTimerSettings


class LifecycleSettings(CommonSettings, LifecycleTimerSettings):
    slack_signing_secret_arn: str = Field("", description='Secret JSON: {"signing_secret"}')
    slack_signing_secret: str = Field("", description="Local only: the signing secret itself")
    slack_team_ids: list[str] = Field(
        default_factory=list, description='JSON list of the Slack workspace ids allowed, e.g. ["T0123"]'
    )
    slack_allowed_usergroups: list[str] = Field(
        default_factory=list,
        description="JSON list of Slack user-group ids whose members may act; empty means anyone in the team",
    )
    slack_max_body_bytes: int = Field(256 * 1024, gt=0)
    slack_secret_arn: str = Field("", description='Secret JSON with {"bot_token"} (the analyzer\'s secret)')
    slack_bot_token: str = Field("", description="Local only: bot token")
    slack_api_base_url: str = Field(
        "", description="Slack Web API base URL; empty means https://slack.com/api/"
    )


__all__ = ["EscalationRule", "LifecycleSettings", "lifecycle_settings"]


@lru_cache(maxsize=1)
def lifecycle_settings() -> LifecycleSettings:
    return LifecycleSettings()
