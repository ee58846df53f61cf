"""cdk.json validation: every mistake fails synth with the dotted path of the field."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from aws_cdk import App
from pydantic import BaseModel

from stacks.app import build_app
from stacks.config import (
    AlarmConfig,
    AnalyzerConfig,
    ArchiveConfig,
    CiConfig,
    ConfigError,
    ConsumerConfig,
    EnvironmentConfig,
    IngestConfig,
    KinesisConfig,
    KnowledgeSyncConfig,
    OpenSearchConfig,
    load_environments,
)
from stacks.slack_lifecycle import EscalationConfig, SlackLifecycleConfig

from .conftest import ROOT, cdk_context

pytestmark = pytest.mark.xdist_group("infra")

DEFAULTS = {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "eu-west-1"}


def shipped() -> dict[str, Any]:
    return copy.deepcopy(cdk_context()["environments"])


def error_for(environments: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_environments({"environments": environments}, defaults=kwargs.pop("defaults", DEFAULTS), **kwargs)
    return str(caught.value)


def test_shipped_cdk_json_is_valid_and_has_three_environments() -> None:
    envs = load_environments({"environments": shipped()}, defaults={})
    assert [env.name for env in envs] == ["dev", "staging", "prod"]
    assert [env.stage_name for env in envs] == ["Dev", "Staging", "Prod"]
    # No real account ids in the repo: accounts come from the deploying credentials.
    assert all(env.account is None for env in envs)


def test_unknown_key_is_rejected_with_its_path() -> None:
    envs = shipped()
    envs["dev"]["consumer"]["batchsize"] = 100
    assert "environments.dev.consumer.batchsize: Extra inputs are not permitted" in error_for(envs)


def test_unknown_top_level_environment_key_is_rejected() -> None:
    envs = shipped()
    envs["prod"]["shards"] = 4
    assert "environments.prod.shards" in error_for(envs)


def test_missing_region_names_the_field() -> None:
    envs = shipped()
    envs["staging"]["region"] = None
    message = error_for(envs, defaults={})
    assert "environments.staging.region" in message
    assert "CDK_DEFAULT_REGION" in message


def test_region_and_account_fall_back_to_cdk_defaults() -> None:
    envs = shipped()
    envs["dev"]["region"] = None
    (dev,) = load_environments({"environments": envs}, selected="dev", defaults=DEFAULTS)
    assert (dev.account, dev.region) == ("111111111111", "eu-west-1")


def test_explicit_account_wins_over_defaults() -> None:
    envs = shipped()
    envs["prod"]["account"] = "222222222222"
    (prod,) = load_environments({"environments": envs}, selected="prod", defaults=DEFAULTS)
    assert prod.account == "222222222222"


@pytest.mark.parametrize(
    ("section", "key", "value", "path"),
    [
        ("opensearch", "retention_days", -1, "environments.dev.opensearch.retention_days"),
        ("consumer", "batch_size", 0, "environments.dev.consumer.batch_size"),
        ("consumer", "parallelization_factor", 11, "environments.dev.consumer.parallelization_factor"),
        ("consumer", "min_level", "LOUD", "environments.dev.consumer.min_level"),
        ("kinesis", "retention_hours", 1, "environments.dev.kinesis.retention_hours"),
        ("analyzer", "reserved_concurrency", 1, "environments.dev.analyzer.reserved_concurrency"),
        ("analyzer", "llm_base_url", "http://plain-text.example", "environments.dev.analyzer.llm_base_url"),
        ("knowledge_sync", "schedule", "every day", "environments.dev.knowledge_sync.schedule"),
        ("alarms", "email", "not-an-address", "environments.dev.alarms.email"),
    ],
)
def test_nonsense_values_name_the_field(section: str, key: str, value: Any, path: str) -> None:
    envs = shipped()
    envs["dev"][section][key] = value
    assert re.search(rf"^  {re.escape(path)}: ", error_for(envs), re.MULTILINE)


def test_reader_roles_must_be_role_arns() -> None:
    envs = shipped()
    envs["dev"]["opensearch"]["reader_role_arns"] = ["arn:aws:iam::111111111111:user/alice"]
    assert "environments.dev.opensearch.reader_role_arns.0" in error_for(envs)


def test_account_must_look_like_an_account_id() -> None:
    envs = shipped()
    envs["dev"]["account"] = "my-account"
    assert "environments.dev.account" in error_for(envs)


def test_log_retention_must_be_a_cloudwatch_value() -> None:
    envs = shipped()
    envs["dev"]["log_retention_days"] = 10
    assert "environments.dev.log_retention_days" in error_for(envs)


def test_cross_field_rules() -> None:
    envs = shipped()
    envs["dev"]["kinesis"] = {"mode": "provisioned"}
    assert "environments.dev.kinesis: Value error, shards is required" in error_for(envs)
    envs = shipped()
    envs["prod"]["opensearch"]["dedicated_master_count"] = 0
    assert "environments.prod.opensearch: Value error, dedicated_master_type" in error_for(envs)
    envs = shipped()
    envs["staging"]["archive"]["expiration_days"] = 60
    assert "environments.staging.archive: Value error, expiration_days" in error_for(envs)


def test_missing_or_empty_environments() -> None:
    assert "environments: missing" in error_for(None)
    assert "environments" in error_for({})


def test_unknown_selected_environment() -> None:
    assert "-c env=qa" in error_for(shipped(), selected="qa")


def test_env_context_synthesizes_only_that_stage() -> None:
    app = App(context=cdk_context(env="staging"))
    stages = build_app(app, nag=False)
    assert [stage.stage_name for stage in stages] == ["Staging"]


def test_every_config_key_is_documented() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    models: list[type[BaseModel]] = [
        EnvironmentConfig,
        KinesisConfig,
        ArchiveConfig,
        OpenSearchConfig,
        ConsumerConfig,
        IngestConfig,
        AnalyzerConfig,
        KnowledgeSyncConfig,
        AlarmConfig,
        CiConfig,
        SlackLifecycleConfig,
        EscalationConfig,
    ]
    missing = [
        f"{model.__name__}.{field}"
        for model in models
        for field in model.model_fields
        if f"`{field}`" not in doc
    ]
    assert not missing, f"undocumented cdk.json keys: {missing}"
