"""Per-environment configuration of the CDK app, read from ``cdk.json`` context.

Every environment (dev, staging, prod, or any other name) is one object under the
``environments`` context key. The model forbids unknown keys so that a typo fails synth
with the dotted path of the field instead of being silently ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stacks.sizing import storage_problems
from stacks.slack_lifecycle import SlackLifecycleConfig

LevelName = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]

# The only values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$")
_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,14}$")


class ConfigError(ValueError):
    """The cdk.json context is invalid; the message names the offending field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KinesisConfig(_Strict):
    mode: Literal["on_demand", "provisioned"] = Field(
        "on_demand", description="Capacity mode of the log stream"
    )
    shards: int | None = Field(
        None, ge=1, le=500, description="Shard count; required when mode is provisioned, unset otherwise"
    )
    retention_hours: int = Field(24, ge=24, le=8760, description="How long records stay in the stream")

    @model_validator(mode="after")
    def _shards_match_mode(self) -> KinesisConfig:
        if self.mode == "provisioned" and self.shards is None:
            raise ValueError("shards is required when mode is 'provisioned'")
        if self.mode == "on_demand" and self.shards is not None:
            raise ValueError("shards must be unset when mode is 'on_demand' (capacity is automatic)")
        return self


class ArchiveConfig(_Strict):
    infrequent_access_days: int = Field(
        30, ge=30, description="Days before raw/ objects move to S3 Standard-IA (S3 minimum: 30)"
    )
    glacier_days: int | None = Field(
        None, ge=1, description="Days before raw/ objects move to Glacier Instant Retrieval; null: never"
    )
    expiration_days: int = Field(365, ge=1, description="Days before raw/ objects are deleted")
    dlq_expiration_days: int = Field(
        90, ge=1, description="Days before dlq/ and opensearch-failed/ objects go"
    )
    access_log_expiration_days: int = Field(90, ge=1, description="Days the S3 access logs are kept")

    @model_validator(mode="after")
    def _ordered(self) -> ArchiveConfig:
        if self.glacier_days is not None and self.glacier_days <= self.infrequent_access_days:
            raise ValueError("glacier_days must be greater than infrequent_access_days")
        last = self.glacier_days or self.infrequent_access_days
        if self.expiration_days <= last:
            raise ValueError("expiration_days must be greater than every transition day")
        return self


class OpenSearchConfig(_Strict):
    engine_version: str = Field(
        "OpenSearch_2.19", pattern=r"^OpenSearch_\d+\.\d+$", description="Engine, e.g. OpenSearch_2.19"
    )
    data_node_type: str = Field(
        "t3.small.search", pattern=r"^[a-z0-9]+\.[a-z0-9]+\.search$", description="Data node instance type"
    )
    data_nodes: int = Field(1, ge=1, le=80, description="Number of data nodes")
    volume_gb: int = Field(20, ge=10, le=16384, description="gp3 EBS volume per data node, GiB")
    dedicated_master_type: str | None = Field(
        None, pattern=r"^[a-z0-9]+\.[a-z0-9]+\.search$", description="Dedicated master type; null: none"
    )
    dedicated_master_count: Literal[0, 3, 5] = Field(0, description="Dedicated masters: 0, 3 or 5")
    availability_zones: Literal[1, 2, 3] = Field(1, description="Zone awareness: 1 (off), 2 or 3 AZs")
    retention_days: int = Field(
        14, ge=1, description="ISM policy deletes cali-logs-* indices older than this"
    )
    daily_ingest_gb: float = Field(
        1.0,
        gt=0,
        description="Expected log volume per day (source GB); volume_gb must fit it by AWS's storage rule",
    )
    reader_role_arns: list[Annotated[str, Field(pattern=_ROLE_ARN)]] = Field(
        default_factory=list,
        description="Extra IAM roles (e.g. a self-hosted Grafana's) mapped to the read-only cali_reader",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OpenSearchConfig:
        if (self.dedicated_master_type is None) != (self.dedicated_master_count == 0):
            raise ValueError("dedicated_master_type and dedicated_master_count must be set together")
        if self.availability_zones > 1 and self.data_nodes % self.availability_zones:
            raise ValueError("data_nodes must be a multiple of availability_zones")
        return self


class ConsumerConfig(_Strict):
    min_level: LevelName = Field("WARN", description="Lowest level that can open an incident")
    level_overrides: dict[str, LevelName] = Field(
        default_factory=dict, description="Per-service minimum level, service -> level"
    )
    throttle_window_seconds: int = Field(900, gt=0, description="Repeats inside this window are counted")
    surge_factor: float = Field(5.0, gt=1.0, description="Rise within a window that re-alerts early")
    batch_size: int = Field(500, ge=1, le=10000, description="Kinesis records per invocation")
    batching_window_seconds: int = Field(1, ge=0, le=300, description="Max wait to fill a batch")
    parallelization_factor: int = Field(1, ge=1, le=10, description="Concurrent batches per shard")
    max_retries: int = Field(3, ge=0, le=10000, description="Retries of a failing batch before on-failure")
    bisect_batch_on_error: bool = Field(
        True,
        description="Split a failing batch in two to isolate a poison record (BisectBatchOnFunctionError)",
    )
    max_record_age_seconds: int = Field(
        3600, ge=60, le=604800, description="Older records go to the on-failure destination"
    )
    memory_mb: int = Field(512, ge=128, le=10240, description="Lambda memory")
    timeout_seconds: int = Field(60, ge=1, le=900, description="Lambda timeout")


class IngestConfig(_Strict):
    """How the log consumer and the log indexer read raw lines (docs/ingest.md)."""

    infer_levels: bool = Field(True, description="Give level-less lines an implied WARN/ERROR")
    infer_levels_services: dict[str, bool] = Field(
        default_factory=dict, description="Per-service switch for implied levels, service -> on/off"
    )
    infer_extra_error: list[str] = Field(default_factory=list, description="Extra regexes that imply ERROR")
    infer_extra_warn: list[str] = Field(default_factory=list, description="Extra regexes that imply WARN")
    http_error_from: int = Field(500, ge=100, le=600, description="Access lines: ERROR from this status")
    http_warn_from: int = Field(400, ge=100, le=600, description="Access lines: WARN from this status")
    max_event_age_seconds: int = Field(1_209_600, ge=0, description="Older line times give way to arrival")
    max_event_ahead_seconds: int = Field(7_200, ge=0, description="Line times further ahead give way too")

    def environment(self) -> dict[str, str]:
        """The Lambda environment variables ``IngestSettings`` reads."""
        return {
            "INFER_LEVELS": str(self.infer_levels).lower(),
            "INFER_LEVELS_SERVICES": json.dumps(self.infer_levels_services, sort_keys=True),
            "INFER_EXTRA_ERROR": json.dumps(self.infer_extra_error),
            "INFER_EXTRA_WARN": json.dumps(self.infer_extra_warn),
            "HTTP_ERROR_FROM": str(self.http_error_from),
            "HTTP_WARN_FROM": str(self.http_warn_from),
            "MAX_EVENT_AGE_SECONDS": str(self.max_event_age_seconds),
            "MAX_EVENT_AHEAD_SECONDS": str(self.max_event_ahead_seconds),
        }


class AnalyzerConfig(_Strict):
    reserved_concurrency: int = Field(
        2,
        ge=2,
        le=1000,
        description="Upper bound on parallel analyses (min 2: the SQS poller's smallest max concurrency)",
    )
    llm_base_url: str = Field(
        "", pattern=r"^(|https://\S+)$", description="OpenAI-compatible base URL (https); empty: OpenAI"
    )
    llm_model: str = Field("gpt-4o-mini", min_length=1, description="Model name sent to the LLM API")
    daily_token_budget: int = Field(2_000_000, ge=0, description="LLM tokens per day; then retrieval only")
    embedding_provider: Literal["local", "openai"] = Field("local", description="Embedder for retrieval")
    batch_size: int = Field(5, ge=1, le=10, description="SQS messages per invocation")
    memory_mb: int = Field(
        2048, ge=128, le=10240, description="Lambda memory (the ONNX embedder needs ~1 GB)"
    )
    timeout_seconds: int = Field(120, ge=1, le=900, description="Lambda timeout")


class KnowledgeSyncConfig(_Strict):
    schedule: str = Field("rate(1 day)", description="EventBridge rate(...) or cron(...) expression")
    memory_mb: int = Field(2048, ge=128, le=10240, description="Lambda memory")
    timeout_seconds: int = Field(600, ge=1, le=900, description="Lambda timeout")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not _SCHEDULE.match(value):
            raise ValueError("must be an EventBridge expression like 'rate(1 day)' or 'cron(0 3 * * ? *)'")
        return value


class AlarmConfig(_Strict):
    email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Address subscribed to the alarm topic"
    )
    iterator_age_seconds: int = Field(300, gt=0, description="Kinesis/Lambda iterator age alarm threshold")
    free_storage_percent: int = Field(25, ge=1, le=90, description="OpenSearch free storage alarm threshold")


class CiConfig(_Strict):
    github_repository: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/name of the fork whose GitHub Actions deploy this environment; null: no CI roles",
    )
    create_oidc_provider: bool = Field(
        True,
        description="Create the account's GitHub OIDC provider (false: it exists, e.g. made by another env)",
    )


class EnvironmentConfig(_Strict):
    """One deployment target; the Stage name is the environment name capitalised."""

    account: str | None = Field(
        None, pattern=r"^\d{12}$", description="AWS account id; null: CDK_DEFAULT_ACCOUNT"
    )
    region: str | None = Field(
        None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region; null: CDK_DEFAULT_REGION"
    )
    removal_policy: Literal["retain", "destroy"] = Field(
        "retain", description="What happens to data stores on stack deletion"
    )
    log_retention_days: int = Field(30, description="CloudWatch Logs retention of every log group")
    kinesis: KinesisConfig = Field(default_factory=KinesisConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    opensearch: OpenSearchConfig = Field(default_factory=OpenSearchConfig)
    consumer: ConsumerConfig = Field(default_factory=ConsumerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig)
    knowledge_sync: KnowledgeSyncConfig = Field(default_factory=KnowledgeSyncConfig)
    alarms: AlarmConfig = Field(default_factory=AlarmConfig)
    grafana_workspace: bool = Field(False, description="Create an Amazon Managed Grafana workspace")
    grafana_url: str | None = Field(
        None,
        pattern=r"^https://[^\s/]+(/\S*)?$",
        description="Base URL of a Grafana people can open (self-hosted); Slack alerts link to it",
    )
    ci: CiConfig = Field(default_factory=CiConfig)

    @model_validator(mode="after")
    def _storage_fits(self) -> EnvironmentConfig:
        search = self.opensearch
        problems = storage_problems(
            daily_ingest_gb=search.daily_ingest_gb,
            retention_days=search.retention_days,
            data_nodes=search.data_nodes,
            volume_gb=search.volume_gb,
            free_storage_alarm_percent=self.alarms.free_storage_percent,
        )
        if problems:
            raise ValueError("opensearch sizing: " + "; ".join(problems))
        return self

    slack: SlackLifecycleConfig = Field(
        default_factory=SlackLifecycleConfig, description="Slack app: workspace, allow-list, escalation"
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of the CloudWatch Logs values {LOG_RETENTION_DAYS}")
        return value


class ResolvedEnvironment(BaseModel):
    """An environment with its account and region decided."""

    model_config = ConfigDict(frozen=True)

    name: str
    account: str | None
    region: str
    config: EnvironmentConfig

    @property
    def stage_name(self) -> str:
        return self.name.capitalize()


Environments = Annotated[dict[str, EnvironmentConfig], Field(min_length=1)]


class AppConfig(_Strict):
    environments: Environments


def _format(error: ValidationError, prefix: str) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        lines.append(f"{path}: {item['msg']}")
    return "invalid cdk.json context:\n  " + "\n  ".join(lines)


def parse_context_value(value: Any) -> Any:
    # `-c environments=...` on the command line arrives as a JSON string.
    return json.loads(value) if isinstance(value, str) else value


def load_environments(
    context: Mapping[str, Any],
    selected: str | None = None,
    defaults: Mapping[str, str] | None = None,
) -> list[ResolvedEnvironment]:
    """Validate the ``environments`` context and resolve accounts and regions.

    ``selected`` is the ``-c env=NAME`` value (None: every environment). ``defaults`` are
    the ``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION`` values (None: read os.environ).
    """
    raw = parse_context_value(context.get("environments"))
    if raw is None:
        raise ConfigError(
            "invalid cdk.json context:\n  environments: missing (run through `npx cdk ...` so that "
            "cdk.json is read, or pass the context to App(context=...))"
        )
    try:
        app = AppConfig.model_validate({"environments": raw})
    except ValidationError as error:
        raise ConfigError(_format(error, "")) from None
    for name in app.environments:
        if not _ENV_NAME.match(name):
            raise ConfigError(
                f"invalid cdk.json context:\n  environments.{name}: name must match {_ENV_NAME.pattern}"
            )
    if selected is not None and selected not in app.environments:
        raise ConfigError(f"invalid -c env={selected}: choose one of {sorted(app.environments)}")
    env = os.environ if defaults is None else defaults
    resolved = []
    for name, config in app.environments.items():
        if selected is not None and name != selected:
            continue
        # Without an account the stack is environment-agnostic: `cdk deploy` takes the
        # account from the credentials in use, and offline synth (CI) still works. A
        # region cannot be left open because the domain, alarms and ARNs depend on it.
        account = config.account or env.get("CDK_DEFAULT_ACCOUNT") or None
        region = config.region or env.get("CDK_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                f"invalid cdk.json context:\n  environments.{name}.region: not set and "
                "CDK_DEFAULT_REGION is empty (set it in cdk.json or configure an AWS profile/region)"
            )
        resolved.append(ResolvedEnvironment(name=name, account=account, region=region, config=config))
    return resolved
