"""The archive's SQL layer (Glue tables, Athena workgroup) and the daily quality job, per environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cali.quality.engines import DLQ_COLUMNS, athena_names
from cali.quality.sql import DLQ_TABLE, RAW_TABLE
from stacks import archive_sql

from .conftest import ENVIRONMENTS, Synth, one, props, resources

pytestmark = pytest.mark.xdist_group("infra")


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def env_template(request: pytest.FixtureRequest, synth: Synth) -> tuple[str, dict[str, Any]]:
    return request.param, synth.templates[request.param]


def _tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["TableInput"]["Name"]: t for t in props(template, "AWS::Glue::Table")}


def test_glue_database_and_tables_match_the_local_engine(env_template: tuple[str, dict[str, Any]]) -> None:
    name, template = env_template
    _workgroup, database = athena_names(name)
    (db,) = props(template, "AWS::Glue::Database")
    assert db["DatabaseInput"]["Name"] == database
    tables = _tables(template)
    assert set(tables) == {RAW_TABLE, DLQ_TABLE}
    raw = tables[RAW_TABLE]["TableInput"]
    assert [c["Name"] for c in raw["StorageDescriptor"]["Columns"]] == ["line"]
    assert [c["Name"] for c in raw["PartitionKeys"]] == ["year", "month", "day", "hour"]
    assert all(c["Type"] == "string" for c in raw["PartitionKeys"])
    params = raw["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.month.digits"] == "2"
    assert params["projection.hour.range"] == "0,23"
    template_text = json.dumps(params["storage.location.template"])
    # The Firehose prefix of stacks/delivery.py, with projection variables.
    assert "raw/year=${year}/month=${month}/day=${day}/hour=${hour}/" in template_text
    serde = raw["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"].endswith("LazySimpleSerDe")
    dlq = tables[DLQ_TABLE]["TableInput"]
    assert tuple(c["Name"] for c in dlq["StorageDescriptor"]["Columns"]) == DLQ_COLUMNS
    assert "dlq/${year}/${month}/${day}/${hour}/" in json.dumps(
        dlq["Parameters"]["storage.location.template"]
    )
    assert (
        dlq["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    )


def test_workgroup_encrypts_limits_and_expires_results(env_template: tuple[str, dict[str, Any]]) -> None:
    name, template = env_template
    (workgroup,) = props(template, "AWS::Athena::WorkGroup")
    assert workgroup["Name"] == athena_names(name)[0]
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 100 * 1024**3
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    assert archive_sql.RESULTS_PREFIX in json.dumps(result["OutputLocation"])
    buckets = [
        b
        for b in props(template, "AWS::S3::Bucket")
        if "athena-results" in json.dumps(b.get("LifecycleConfiguration"))
    ]
    assert len(buckets) == 1
    rules = {r["Id"]: r for r in buckets[0]["LifecycleConfiguration"]["Rules"]}
    assert rules["athena-results"]["ExpirationInDays"] == 30
    assert rules["athena-results"]["Prefix"] == archive_sql.RESULTS_PREFIX


def test_schedule_starts_the_quality_job_daily(env_template: tuple[str, dict[str, Any]]) -> None:
    name, template = env_template
    (schedule,) = props(template, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "cron(30 1 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    target = schedule["Target"]
    functions = {
        lid: res
        for lid, res in resources(template, "AWS::Lambda::Function").items()
        if res["Properties"].get("PackageType") == "Image"
    }
    (function_id,) = functions
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    function = functions[function_id]["Properties"]
    assert function["Timeout"] == 900
    variables = function["Environment"]["Variables"]
    assert variables["ATHENA_WORKGROUP"] == athena_names(name)[0]
    assert variables["ATHENA_DATABASE"] == athena_names(name)[1]
    assert "SLACK_SECRET_ARN" in variables and "QUALITY_OPENSEARCH_ENDPOINT" in variables
    # The scheduler's role may invoke exactly this function.
    scheduler_policies = [
        p for p in props(template, "AWS::IAM::Policy") if "lambda:InvokeFunction" in json.dumps(p)
    ]
    assert any(function_id in json.dumps(p["PolicyDocument"]) for p in scheduler_policies)


def test_quality_job_permissions_are_scoped(env_template: tuple[str, dict[str, Any]]) -> None:
    _name, template = env_template
    role_id = next(lid for lid in resources(template, "AWS::IAM::Role") if lid.startswith("QualityJobRole"))
    statements = [
        s
        for p in props(template, "AWS::IAM::Policy")
        if role_id in json.dumps(p.get("Roles", []))
        for s in p["PolicyDocument"]["Statement"]
    ]
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"athena:StartQueryExecution", "athena:GetQueryResults", "glue:GetTable"} <= actions
    assert not any(a.endswith("*") and ":" in a and a.split(":")[1] == "*" for a in actions)
    athena_resources = json.dumps(
        [s["Resource"] for s in statements if "athena:StartQueryExecution" in s["Action"]]
    )
    assert "workgroup/cali-" in athena_resources
    text = json.dumps(statements)
    assert "/raw/*" in text and "/dlq/*" in text
    assert "s3:DeleteObject" not in text
    one(template, "AWS::Scheduler::Schedule")


def test_quality_job_environment_parses_with_its_settings(env_template: tuple[str, dict[str, Any]]) -> None:
    from cali.contracts.settings import QualityJobSettings

    _name, template = env_template
    (function,) = [
        res["Properties"]
        for res in resources(template, "AWS::Lambda::Function").values()
        if res["Properties"].get("PackageType") == "Image"
    ]
    env = function["Environment"]["Variables"]
    known = {name.upper() for name in QualityJobSettings.model_fields} | {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "GX_ANALYTICS_ENABLED",
    }
    assert set(env) <= known, set(env) - known
    assert function["Architectures"] == ["arm64"]


def test_quality_job_may_write_and_grafana_read_the_quality_indices() -> None:
    from opensearch_setup.security_roles import READER_ROLE, ROLE_BODIES, WRITER_ROLE

    for role in (WRITER_ROLE, READER_ROLE):
        patterns = {p for perm in ROLE_BODIES[role]["index_permissions"] for p in perm["index_patterns"]}
        assert "cali-quality-*" in patterns, role
