"""Configuration of the Slack interactivity endpoint and the incident timers, read once."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from cali.contracts.settings import CommonSettings


class EscalationRule(BaseModel):
    """Escalate an unacknowledged incident of this level after ``after_minutes``, up to ``max_times``."""

    model_config = ConfigDict(frozen=True)

    after_minutes: int = Field(gt=0, le=24 * 60)
    max_times: int = Field(1, ge=1, le=10)
    mention: str = Field("", description="Who to mention, e.g. <!subteam^S0123> or <@U0123>")
    channel: str = Field("", description="Escalation channel; empty means the alert's thread")


class LifecycleSettings(CommonSettings):
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
    escalation: dict[str, EscalationRule] = Field(
        default_factory=dict,
        description='JSON, level -> rule, e.g. {"ERROR": {"after_minutes": 30, "mention": "<!subteam^S1>"}}',
    )
    quiet_after_minutes: int = Field(60, gt=0, description="Final 'quiet since' update after this long")
    lifecycle_queue_url: str = Field(
        "", description="SQS queue of the lifecycle worker (deferred work, timers)"
    )


@lru_cache(maxsize=1)
def lifecycle_settings() -> LifecycleSettings:
    return LifecycleSettings()
