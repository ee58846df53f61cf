"""Runtime configuration of each Lambda, read once from environment variables.

The CDK stacks set exactly these variables (names are the upper-cased field names);
``make demo`` and the tests set them for the local endpoint. Secrets are never in the
environment in AWS: only the ARN of the secret, resolved with Powertools Parameters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cali.contracts.levels import Level


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    cali_env: str = Field("local", description="Environment name: dev, staging, prod or local")
    state_table_name: str = Field(
        "cali-local-state", description="DynamoDB table: throttle, incidents, idempotency"
    )


class IngestSettings(CommonSettings):
    """How raw lines are read (the log consumer and the log indexer read them the same way)."""

    infer_levels: bool = Field(
        True,
        description="Give level-less lines an implied WARN/ERROR (authentication failure, segfault, ...)",
    )
    infer_levels_services: dict[str, bool] = Field(
        default_factory=dict, description='JSON object, service -> infer levels or not, e.g. {"sshd": false}'
    )
    infer_extra_error: list[str] = Field(
        default_factory=list, description="JSON list of extra regexes that imply ERROR"
    )
    infer_extra_warn: list[str] = Field(
        default_factory=list, description="JSON list of extra regexes that imply WARN"
    )
    http_error_from: int = Field(500, ge=100, le=600, description="Access lines: status that is ERROR from")
    http_warn_from: int = Field(400, ge=100, le=600, description="Access lines: status that is WARN from")
    max_event_ahead_seconds: int = Field(
        7_200, ge=0, description="A line's time further ahead of its arrival is a wrong clock: arrival wins"
    )
    max_event_age_seconds: int = Field(
        1_209_600, ge=0, description="A line's time older than this at arrival is a replay: arrival wins"
    )

    @field_validator("infer_extra_error", "infer_extra_warn")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        return value


class ConsumerSettings(IngestSettings):
    dlq_bucket_name: str = "cali-local-archive"
    dlq_prefix: str = "dlq/"
    incidents_queue_url: str = ""
    min_level: Level = Level.WARN
    level_overrides: dict[str, Level] = Field(
        default_factory=dict, description='JSON object, service -> minimum level, e.g. {"payments": "INFO"}'
    )
    throttle_window_seconds: int = Field(900, gt=0)
    surge_factor: float = Field(5.0, gt=1.0)
    max_samples: int = Field(5, ge=1, le=20)
    max_record_bytes: int = Field(1_048_576, gt=0)
    idempotency_ttl_seconds: int = Field(86_400, gt=0)
    fail_open_alerts_per_minute: int = Field(30, gt=0)
    parallelization_factor: int = Field(
        1, ge=1, le=10, description="The event source mapping's concurrent batches per shard (dedupe mode)"
    )

    @field_validator("min_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return value if isinstance(value, Level) else Level.from_name(str(value))

    @field_validator("level_overrides", mode="before")
    @classmethod
    def _overrides(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, Level) else Level.from_name(str(v)) for k, v in value.items()}
        return value


class EscalationRule(BaseModel):
    """Escalate an unacknowledged incident of one level after ``after_minutes``, up to ``max_times``."""

    model_config = ConfigDict(frozen=True)

    after_minutes: int = Field(gt=0, le=24 * 60)
    max_times: int = Field(1, ge=1, le=10)
    mention: str = Field("", description="Who to mention, e.g. <!subteam^S0123> or <@U0123>")
    channel: str = Field("", description="Escalation channel; empty means the alert's thread")


class LifecycleTimerSettings(BaseSettings):
    """What arms the incident lifecycle's timers (the analyzer) and fires them (the worker)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    lifecycle_queue_url: str = Field(
        "", description="SQS queue of the lifecycle worker; empty: no buttons, escalation or quiet timers"
    )
    escalation: dict[str, EscalationRule] = Field(
        default_factory=dict,
        description='JSON, level -> rule, e.g. {"ERROR": {"after_minutes": 30, "mention": "<!subteam^S1>"}}',
    )
    quiet_after_minutes: int = Field(60, gt=0, description="Final 'quiet since' update after this long")
    lifecycle_max_delay_seconds: int = Field(
        900, ge=0, le=900, description="Local only: cap of the escalation timers' SQS delay (SQS allows 900)"
    )


class AnalyzerSettings(CommonSettings, LifecycleTimerSettings):
    slack_secret_arn: str = Field("", description='Secret JSON: {"webhook_url"} or {"bot_token", "channel"}')
    slack_webhook_url: str = Field("", description="Local only: a webhook URL instead of a secret")
    slack_bot_token: str = Field("", description="Local only: bot token (with slack_channel)")
    slack_channel: str = Field("", description="Local only: channel for slack_bot_token")
    slack_timeout_seconds: int = Field(
        10, ge=1, le=60, description="Slack HTTP timeout; a post that times out may still have landed"
    )
    slack_api_base_url: str = Field(
        "", description="Slack Web API base URL; empty means https://slack.com/api/"
    )
    openai_secret_arn: str = Field("", description='Secret JSON: {"api_key"}')
    milvus_secret_arn: str = Field("", description='Secret JSON: {"uri", "token"}')
    # Not MILVUS_URI: pymilvus reads that variable at import and accepts only http(s) URIs.
    local_milvus_uri: str = Field("./.cali/milvus.db", description="Local only: Milvus Lite file or URI")
    milvus_collection: str = "cali_knowledge"
    llm_base_url: str = Field("", description="OpenAI-compatible base URL; empty means api.openai.com")
    llm_model: str = "gpt-4o-mini"
    llm_self_hosted: bool | None = Field(
        None,
        description="A server of our own (llama.cpp, vLLM): no retry after a timeout, zero price. "
        "Unset: true when LLM_BASE_URL is a loopback, private or cluster-internal address",
    )
    llm_review_pass: bool = Field(
        False, description="A skeptical second LLM call that may only lower the confidence (measured: README)"
    )
    llm_timeout_seconds: float | None = Field(
        None, gt=0, description="Per attempt; unset: 20 s for a hosted API, 240 s self-hosted"
    )
    llm_max_tokens: int = Field(800, gt=0)
    llm_daily_token_budget: int = Field(2_000_000, ge=0)
    llm_cache_ttl_seconds: int = Field(86_400, gt=0)
    llm_max_retries: int | None = Field(
        None, ge=0, le=6, description="SDK retries on timeout, 429, 5xx; unset: 2 hosted, 0 self-hosted"
    )
    llm_prompt_max_tokens: int = Field(3_000, ge=500, description="Cap of the incident part of the prompt")
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="JSON, model -> [USD per 1M input tokens, per 1M output tokens]; over the built-in table",
    )
    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_dim: int = Field(384, gt=0)
    embedding_base_url: str = Field(
        "", description="OpenAI-compatible base URL for embeddings; empty means llm_base_url"
    )
    retrieval_top_k: int = Field(5, ge=1, le=50)
    retrieval_min_score: float = Field(
        0.15, ge=-1.0, le=1.0, description="Cosine floor of the candidate search (docs/analysis.md)"
    )
    retrieval_line_alone: float = Field(
        0.78, ge=-1.0, le=1.01, description="Line match at which an entry is shown without lexical agreement"
    )
    retrieval_min_line: float = Field(
        0.38, ge=-1.0, le=1.01, description="Line match an entry needs together with lexical agreement"
    )
    retrieval_min_agreement: float = Field(
        2.0, ge=0.0, description="Weight of shared distinctive terms (~ number of rare ones) an entry needs"
    )
    retrieval_min_share: float = Field(
        0.7, ge=0.0, le=1.0, description="Share of the best candidate's agreement an entry needs"
    )
    retrieval_max_gap: float = Field(
        0.05, ge=0.0, le=2.0, description="Entries this far below the best shown line match are not shown"
    )
    redaction_extra_patterns: dict[str, str] = Field(
        default_factory=dict, description="JSON object, placeholder label -> regex"
    )
    opensearch_dashboards_url: HttpUrl | None = None
    grafana_url: HttpUrl | None = None
    incidents_stream_name: str = Field("", description="Firehose stream that indexes incidents in OpenSearch")
    incidents_opensearch_url: str = Field(
        "", description="Local only: OpenSearch for incident documents when no stream is set"
    )


class KnowledgeSyncSettings(AnalyzerSettings):
    knowledge_dir: str = Field("knowledge_base", description="Runbooks and past incidents folder")


class QualityJobSettings(AnalyzerSettings):
    """quality_job: Athena for the checks, a bucket for the report; Slack fields as the analyzer's."""

    athena_workgroup: str = Field("cali-local", description="Athena workgroup (results, scan limit)")
    athena_database: str = Field("cali_local", description="Glue database with raw_lines, dlq_entries")
    reports_bucket: str = Field("cali-local-results", description="Bucket for report.json / report.html")
    quality_opensearch_endpoint: str = Field("", description="OpenSearch domain endpoint; empty: skip")
    query_timeout_seconds: float = Field(600.0, gt=0, description="Longest wait for the queries")
    quality_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="JSON, overrides of the check thresholds (cali.quality.checks.QualitySettings), "
        'e.g. {"max_dlq_share": 0.05}',
    )


@lru_cache(maxsize=1)
def consumer_settings() -> ConsumerSettings:
    return ConsumerSettings()


@lru_cache(maxsize=1)
def analyzer_settings() -> AnalyzerSettings:
    return AnalyzerSettings()


@lru_cache(maxsize=1)
def knowledge_sync_settings() -> KnowledgeSyncSettings:
    return KnowledgeSyncSettings()


@lru_cache(maxsize=1)
def quality_job_settings() -> QualityJobSettings:
    return QualityJobSettings()
