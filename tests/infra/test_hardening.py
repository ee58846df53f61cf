"""The first-deploy review (issue 13): sizing, failed creates, quotas, producers, readers,
links, teardown and alarms, each checked on the synthesized templates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opensearch_setup.security_roles import READER_ROLE, ROLE_BODIES

from cali.search import index as search_index
from stacks.config import ConfigError, load_environments
from stacks.sizing import (
    LAMBDA_UNRESERVED_MINIMUM,
    concurrency_need,
    estimate_storage,
    firehose_monthly_usd,
    log_shards_for,
    replicas_for,
)

from .conftest import ENVIRONMENTS, ROOT, Synth, props, resources, synthesize

pytestmark = pytest.mark.xdist_group("infra")


def cdk_json_environments() -> dict[str, Any]:
    environments: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]["environments"]
    return environments


# --- OpenSearch sizing ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_shipped_domains_meet_aws_storage_rule(synth: Synth, name: str) -> None:
    config = cdk_json_environments()[name]["opensearch"]
    (domain,) = props(synth.templates[name], "AWS::OpenSearchService::Domain")
    nodes = domain["ClusterConfig"]["InstanceCount"]
    volume = domain["EBSOptions"]["VolumeSize"]
    # raw x (1 + replicas) x 1.45 + 20 GiB per node, with today's index on top of retention.
    source = config["daily_ingest_gb"] * (config["retention_days"] + 1)
    required = source * (1 + replicas_for(nodes)) * 1.45 + 20 * nodes
    assert nodes * volume >= required, f"{name}: {nodes} x {volume} GiB < {required:.0f} GiB"
    # Normal use stays clear of the free-storage alarm line on every node.
    estimate = estimate_storage(
        daily_ingest_gb=config["daily_ingest_gb"],
        retention_days=config["retention_days"],
        data_nodes=nodes,
        volume_gb=volume,
    )
    assert estimate.steady_free_percent > cdk_json_environments()[name]["alarms"]["free_storage_percent"]


def test_undersized_domain_fails_synth_with_the_number_to_use() -> None:
    environments = cdk_json_environments()
    # The sizes the review found: staging 2 x 100 GiB for 5 GB/day kept 14 days.
    environments["staging"]["opensearch"]["volume_gb"] = 100
    with pytest.raises(ConfigError) as raised:
        load_environments({"environments": environments}, defaults={})
    message = str(raised.value)
    assert "environments.staging" in message
    assert "258 GiB" in message  # 75 x 2 x 1.45 + 40
    assert "set volume_gb to at least 129" in message


def test_domain_that_would_run_at_the_alarm_line_fails_synth() -> None:
    environments = cdk_json_environments()
    # Prod's old 3 x 300 GiB: about AWS's rule, but 20% free in normal use under a 25% alarm.
    environments["prod"]["opensearch"]["volume_gb"] = 310
    with pytest.raises(ConfigError, match="free-storage alarm"):
        load_environments({"environments": environments}, defaults={})


def test_daily_log_index_has_one_primary_shard_per_data_node(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        (domain,) = props(synth.templates[name], "AWS::OpenSearchService::Domain")
        (setup,) = props(synth.templates[name], "Custom::CaliOpenSearchSetup")
        nodes = domain["ClusterConfig"]["InstanceCount"]
        assert int(setup["LogShards"]) == nodes == log_shards_for(nodes)
    templates = search_index.index_templates(replicas=1, log_shards=3)
    assert templates["cali-logs"]["template"]["settings"]["index"]["number_of_shards"] == 3
    assert templates["cali-incidents"]["template"]["settings"]["index"]["number_of_shards"] == 1
    with pytest.raises(ValueError, match="log_shards"):
        search_index.index_templates(log_shards=0)


# --- A failed first create leaves nothing behind ---------------------------------------------

DATA_STORES = (
    "AWS::OpenSearchService::Domain",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::Kinesis::Stream",
    "AWS::SecretsManager::Secret",
)


def test_prod_data_stores_are_retained_except_on_create(synth: Synth) -> None:
    for kind in DATA_STORES:
        found = resources(synth.templates["prod"], kind)
        assert found, kind
        for logical_id, resource in found.items():
            assert resource["DeletionPolicy"] == "RetainExceptOnCreate", logical_id
            assert resource["UpdateReplacePolicy"] == "Retain", logical_id
    for name in ("dev", "staging"):
        for kind in DATA_STORES:
            for resource in resources(synth.templates[name], kind).values():
                assert resource["DeletionPolicy"] == "Delete"


def test_dev_and_staging_buckets_are_emptied_on_destroy(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        template = synth.templates[name]
        buckets = set(resources(template, "AWS::S3::Bucket"))
        emptied = {
            res["Properties"]["BucketName"]["Ref"]
            for res in resources(template, "Custom::S3AutoDeleteObjects").values()
        }
        assert emptied == (buckets if name != "prod" else set()), name


# --- Lambda concurrency ---------------------------------------------------------------------


def test_only_the_analyzer_reserves_concurrency_and_its_poller_matches(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        template = synth.templates[name]
        reserved = {
            res["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME"): res["Properties"][
                "ReservedConcurrentExecutions"
            ]
            for res in resources(template, "AWS::Lambda::Function").values()
            if "ReservedConcurrentExecutions" in res["Properties"]
        }
        expected = cdk_json_environments()[name]["analyzer"]["reserved_concurrency"]
        assert reserved == {"incident_analyzer": expected}
        (sqs_mapping,) = [
            p for p in props(template, "AWS::Lambda::EventSourceMapping") if "ScalingConfig" in p
        ]
        assert sqs_mapping["ScalingConfig"] == {"MaximumConcurrency": expected}


def test_prod_needs_more_concurrency_than_a_new_account_has() -> None:
    prod = cdk_json_environments()["prod"]
    need = concurrency_need(
        shards=prod["kinesis"]["shards"],
        parallelization_factor=prod["consumer"]["parallelization_factor"],
        analyzer_reserved=prod["analyzer"]["reserved_concurrency"],
    )
    # 4 shards x 4 parallel batches for the consumer alone: a quota of 10 throttles it.
    assert need.peak >= 16 + 5
    assert need.required_quota() > 10
    assert need.reserved + LAMBDA_UNRESERVED_MINIMUM == 15


# --- Producers ------------------------------------------------------------------------------


def outputs(template: dict[str, Any]) -> dict[str, Any]:
    return {key: value["Value"] for key, value in template["Outputs"].items()}


def test_stream_arn_and_producer_policy_are_outputs(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        template = synth.templates[name]
        (stream_id,) = resources(template, "AWS::Kinesis::Stream")
        out = outputs(template)
        assert out["LogStreamArn"] == {"Fn::GetAtt": [stream_id, "Arn"]}
        policy_id = out["ProducerPolicyArn"]["Ref"]
        policy = template["Resources"][policy_id]
        assert policy["Type"] == "AWS::IAM::ManagedPolicy"
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Resource"] == {"Fn::GetAtt": [stream_id, "Arn"]}
        assert "kinesis:PutRecords" in statement["Action"]
        # The AWS-managed aws/kinesis key needs no KMS grant for producers in the account.
        assert not any(action.startswith("kms:") for action in statement["Action"])


def test_operator_outputs_name_what_the_runbook_uses(synth: Synth) -> None:
    out = outputs(synth.templates["dev"])
    functions = {
        res["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: lid
        for lid, res in resources(synth.templates["dev"], "AWS::Lambda::Function").items()
        if "POWERTOOLS_SERVICE_NAME" in res["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert out["KnowledgeSyncFunctionName"] == {"Ref": functions["knowledge_sync"]}
    assert out["IncidentAnalyzerFunctionName"] == {"Ref": functions["incident_analyzer"]}
    for key in ("IncidentDeadLettersQueueArn", "IncidentQueueArn", "OpenSearchDomainName", "StateTableName"):
        assert key in out
    assert "OpenSearchDashboardsUrl" not in out  # no person can open it


# --- Readers --------------------------------------------------------------------------------

# OpenSearch security's static action groups that the CALI roles use (from
# static_action_groups.yml of the security plugin, 2.x).
ACTION_GROUPS = {
    "read": ("indices:data/read*", "indices:admin/mappings/fields/get*", "indices:admin/resolve/index"),
    "indices_monitor": ("indices:monitor/*",),
    "cluster_monitor": ("cluster:monitor/*",),
    "cluster_composite_ops_ro": (
        "indices:data/read/mget",
        "indices:data/read/msearch",
        "indices:data/read/mtv",
        "indices:admin/aliases/exists*",
        "indices:admin/aliases/get*",
        "indices:data/read/scroll",
        "indices:admin/resolve/index",
    ),
}
# What Grafana's OpenSearch data source sends, and the action each needs.
GRAFANA_INDEX_ACTIONS = {
    "GET /cali-logs-*/_mapping (field list)": "indices:admin/mappings/get",
    "POST /_msearch (every panel), per index": "indices:data/read/search",
    "GET /_resolve/index (index picker)": "indices:admin/resolve/index",
}
GRAFANA_CLUSTER_ACTIONS = {
    "GET / (version detection)": "cluster:monitor/main",
    "POST /_msearch": "indices:data/read/msearch",
}


def _allows(granted: list[str], action: str) -> bool:
    patterns = [p for group in granted for p in ACTION_GROUPS.get(group, (group,))]
    return any(action == p or (p.endswith("*") and action.startswith(p[:-1])) for p in patterns)


def test_reader_role_grants_what_grafanas_opensearch_data_source_calls() -> None:
    body = ROLE_BODIES[READER_ROLE]
    (index_permission,) = body["index_permissions"]
    for call, action in GRAFANA_INDEX_ACTIONS.items():
        assert _allows(index_permission["allowed_actions"], action), call
    for call, action in GRAFANA_CLUSTER_ACTIONS.items():
        assert _allows(body["cluster_permissions"], action), call
    # ... and nothing that writes.
    assert not _allows(index_permission["allowed_actions"], "indices:data/write/bulk")
    assert not _allows(index_permission["allowed_actions"], "indices:admin/delete")


# --- Alarms ---------------------------------------------------------------------------------

RECOMMENDED = {
    # metric: (statistic, period seconds, datapoints, operator, threshold or None)
    "ClusterStatus.red": ("Maximum", 60, 1, "GreaterThanOrEqualToThreshold", 1),
    "ClusterStatus.yellow": ("Maximum", 60, 5, "GreaterThanOrEqualToThreshold", 1),
    "ClusterIndexWritesBlocked": ("Maximum", 300, 1, "GreaterThanOrEqualToThreshold", 1),
    "FreeStorageSpace": ("Minimum", 300, 1, "LessThanOrEqualToThreshold", None),
    "Nodes": ("Minimum", 86400, 1, "LessThanThreshold", None),
    "AutomatedSnapshotFailure": ("Maximum", 60, 1, "GreaterThanOrEqualToThreshold", 1),
    "CPUUtilization": ("Maximum", 900, 3, "GreaterThanOrEqualToThreshold", 80),
    "JVMMemoryPressure": ("Maximum", 300, 3, "GreaterThanOrEqualToThreshold", 80),
    "OldGenJVMMemoryPressure": ("Maximum", 60, 3, "GreaterThanOrEqualToThreshold", 80),
    "MasterReachableFromNode": ("Maximum", 86400, 1, "LessThanThreshold", 1),
    "KMSKeyError": ("Maximum", 60, 1, "GreaterThanOrEqualToThreshold", 1),
    "KMSKeyInaccessible": ("Maximum", 60, 1, "GreaterThanOrEqualToThreshold", 1),
}
MASTER = {
    "MasterCPUUtilization": ("Maximum", 900, 3, "GreaterThanOrEqualToThreshold", 50),
    "MasterJVMMemoryPressure": ("Maximum", 60, 3, "GreaterThanOrEqualToThreshold", 95),
    "MasterOldGenJVMMemoryPressure": ("Maximum", 60, 3, "GreaterThanOrEqualToThreshold", 80),
}


def test_opensearch_has_awss_recommended_alarms(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        alarms = {
            a["MetricName"]: a
            for a in props(synth.templates[name], "AWS::CloudWatch::Alarm")
            if a.get("Namespace") == "AWS/ES"
        }
        expected = {**RECOMMENDED, **(MASTER if name == "prod" else {})}
        assert expected.keys() <= alarms.keys(), name
        if name != "prod":
            assert not MASTER.keys() & alarms.keys()
        for metric, (statistic, period, datapoints, operator, threshold) in expected.items():
            alarm = alarms[metric]
            assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == (
                statistic,
                period,
                datapoints,
            ), metric
            assert alarm["ComparisonOperator"] == operator, metric
            if threshold is not None:
                assert alarm["Threshold"] == threshold, metric
        (domain,) = props(synth.templates[name], "AWS::OpenSearchService::Domain")
        assert alarms["Nodes"]["Threshold"] == domain["ClusterConfig"]["InstanceCount"]
        assert alarms["Nodes"]["TreatMissingData"] == "breaching"


# --- Links and CI roles (one extra synth of dev with both configured) ------------------------

GRAFANA = "https://grafana.example.com"


@pytest.fixture(scope="module")
def configured_dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    environments = cdk_json_environments()
    environments["dev"]["grafana_url"] = GRAFANA
    environments["dev"]["ci"] = {"github_repository": "example-org/cali-fork", "create_oidc_provider": True}
    return synthesize(tmp_path_factory.mktemp("configured"), env="dev", environments=environments)


def test_slack_links_go_to_the_configured_grafana(configured_dev: Synth) -> None:
    template = configured_dev.templates["dev"]
    for res in resources(template, "AWS::Lambda::Function").values():
        variables = res["Properties"].get("Environment", {}).get("Variables", {})
        assert "OPENSEARCH_DASHBOARDS_URL" not in variables
        if variables.get("POWERTOOLS_SERVICE_NAME") in ("incident_analyzer", "knowledge_sync"):
            assert variables["GRAFANA_URL"] == GRAFANA


def test_cdk_nag_is_clean_with_ci_roles(configured_dev: Synth) -> None:
    report = json.loads((configured_dev.outdir / "validation-report.json").read_text())
    assert report["pluginReports"][0]["violations"] == []


def test_github_deploy_roles_trust_one_subject_each_and_only_assume_bootstrap_roles(
    configured_dev: Synth,
) -> None:
    assert not synth_names_without_ci()
    template = configured_dev.templates["dev-ci"]
    (provider,) = props(template, "AWS::IAM::OIDCProvider")
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIdList"] == ["sts.amazonaws.com"]
    roles = resources(template, "AWS::IAM::Role")
    subjects = {}
    for logical_id, role in roles.items():
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        condition = trust["Condition"]["StringEquals"]
        assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subjects[logical_id.split("Role")[0]] = condition["token.actions.githubusercontent.com:sub"]
    assert sorted(subjects.values()) == [
        "repo:example-org/cali-fork:environment:dev",
        "repo:example-org/cali-fork:pull_request",
    ]
    text = json.dumps(props(template, "AWS::IAM::Policy"))
    # No direct power over resources: deploys go through the CDK bootstrap roles.
    for forbidden in ('"iam:', '"s3:', '"cloudformation:CreateStack', '"cloudformation:*', '"*"]'):
        assert forbidden not in text
    assert "cdk-hnb659fds-deploy-role-" in text
    diff_policies = [p for p in props(template, "AWS::IAM::Policy") if "DiffRole" in json.dumps(p["Roles"])]
    (diff,) = diff_policies
    (statement,) = diff["PolicyDocument"]["Statement"]
    assert "lookup-role" in json.dumps(statement["Resource"])
    outputs_ = outputs(template)
    assert {"DeployRoleArn", "DiffRoleArn"} <= outputs_.keys()


def synth_names_without_ci() -> set[str]:
    # cdk.json ships without a repository: no CI stack unless a fork opts in.
    return {name for name, env in cdk_json_environments().items() if env["ci"]["github_repository"]}


# --- Cost table -----------------------------------------------------------------------------


def test_docs_firehose_cost_line_rounds_records_up_to_5_kb() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    (row,) = [line for line in doc.splitlines() if line.startswith("| Firehose (2 Kinesis-sourced streams)")]
    documented = [float(cell) for cell in row.split("|")[2:5]]
    computed = [
        firehose_monthly_usd(
            daily_ingest_gb=cdk_json_environments()[name]["opensearch"]["daily_ingest_gb"],
            avg_record_kb=1,
            streams=2,
        )
        for name in ENVIRONMENTS
    ]
    assert documented == [round(value) for value in computed]
    # One 1 KB log line per record is billed as 5 KB: five times the naive GB price.
    assert firehose_monthly_usd(daily_ingest_gb=1, avg_record_kb=1, streams=1) == pytest.approx(
        5 * 30 * 0.029
    )
    assert firehose_monthly_usd(daily_ingest_gb=1, avg_record_kb=12, streams=1) == pytest.approx(
        15 / 12 * 30 * 0.029
    )
