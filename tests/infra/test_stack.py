"""Security-relevant properties of every resource, and what differs between environments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cali.contracts.settings import (
    AnalyzerSettings,
    CommonSettings,
    ConsumerSettings,
    IngestSettings,
    KnowledgeSyncSettings,
)
from cali.lifecycle.config import LifecycleSettings

from .conftest import ENVIRONMENTS, Synth, one, props, resources

pytestmark = pytest.mark.xdist_group("infra")

POWERTOOLS_VARS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}
FUNCTIONS: dict[str, type[CommonSettings]] = {
    "log_consumer": ConsumerSettings,
    "log_indexer": IngestSettings,
    "incident_analyzer": AnalyzerSettings,
    "knowledge_sync": KnowledgeSyncSettings,
    "slack_interactions": LifecycleSettings,
    "incident_lifecycle": LifecycleSettings,
}


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def template(request: pytest.FixtureRequest, synth: Synth) -> dict[str, Any]:
    return synth.templates[request.param]


def functions_by_service(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for res in resources(template, "AWS::Lambda::Function").values():
        env = res["Properties"].get("Environment", {}).get("Variables", {})
        if "POWERTOOLS_SERVICE_NAME" in env:
            found[env["POWERTOOLS_SERVICE_NAME"]] = res["Properties"]
    return found


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::Role"):
        for res in props(template, kind):
            found.extend(res.get("PolicyDocument", {}).get("Statement", []))
            for policy in res.get("Policies", []):
                found.extend(policy["PolicyDocument"]["Statement"])
    return found


def stand_in(value: Any) -> str:
    """A CloudFormation value as text, with every reference replaced by a placeholder word."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(stand_in(part) for part in parts)
    return "resolved-at-deploy"


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- Kinesis --------------------------------------------------------------------------------


def test_stream_is_kms_encrypted(template: dict[str, Any]) -> None:
    (stream,) = props(template, "AWS::Kinesis::Stream")
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}


def test_stream_capacity_per_environment(synth: Synth) -> None:
    (dev,) = props(synth.templates["dev"], "AWS::Kinesis::Stream")
    (prod,) = props(synth.templates["prod"], "AWS::Kinesis::Stream")
    assert dev["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert "ShardCount" not in dev
    assert prod["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert prod["ShardCount"] == 4
    assert (dev["RetentionPeriodHours"], prod["RetentionPeriodHours"]) == (24, 168)


# --- S3 ---------------------------------------------------------------------------------------


def test_every_bucket_is_private_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3  # archive, its access logs, Athena results and quality reports
    policies = {p["Bucket"]["Ref"]: p["PolicyDocument"] for p in props(template, "AWS::S3::BucketPolicy")}
    for logical_id, bucket in buckets.items():
        p = bucket["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert sse["SSEAlgorithm"] == "AES256"
        deny_insecure = [
            s
            for s in policies[logical_id]["Statement"]
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_insecure, f"{logical_id} accepts plain HTTP"
        assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_archive_is_access_logged_with_lifecycle_per_prefix(synth: Synth) -> None:
    for name in ENVIRONMENTS:
        archive = one(synth.templates[name], "AWS::S3::Bucket", "ArchiveBucket")["Properties"]
        assert archive["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": _access_logs_id(synth, name)
        }
        rules = {rule.get("Prefix", ""): rule for rule in archive["LifecycleConfiguration"]["Rules"]}
        assert {"raw/", "dlq/", "raw-errors/", "opensearch-failed/"} <= set(rules)
        assert all(rule["Status"] == "Enabled" for rule in rules.values())
    dev = _rules(synth, "dev")
    prod = _rules(synth, "prod")
    assert dev["raw/"]["ExpirationInDays"] == 90
    assert [t["StorageClass"] for t in dev["raw/"]["Transitions"]] == ["STANDARD_IA"]
    assert prod["raw/"]["ExpirationInDays"] == 400
    assert [t["StorageClass"] for t in prod["raw/"]["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]


def _access_logs_id(synth: Synth, name: str) -> str:
    (logical_id,) = [
        lid
        for lid in resources(synth.templates[name], "AWS::S3::Bucket")
        if lid.startswith("ArchiveAccessLogs")
    ]
    return logical_id


def _rules(synth: Synth, name: str) -> dict[str, dict[str, Any]]:
    archive = one(synth.templates[name], "AWS::S3::Bucket", "ArchiveBucket")["Properties"]
    return {rule.get("Prefix", ""): rule for rule in archive["LifecycleConfiguration"]["Rules"]}


# --- DynamoDB ---------------------------------------------------------------------------------


def test_state_table(template: dict[str, Any]) -> None:
    (table,) = props(template, "AWS::DynamoDB::Table")
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


# --- SQS --------------------------------------------------------------------------------------


def test_queues_are_encrypted_tls_only_and_redriven(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    assert len(queues) == 6  # incidents + DLQ, consumer failures, lifecycle worker + DLQ, stream failures
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    for policy in props(template, "AWS::SQS::QueuePolicy"):
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["PolicyDocument"]["Statement"]
        )
    assert len(props(template, "AWS::SQS::QueuePolicy")) == 6
    (incidents,) = [
        q["Properties"]
        for lid, q in queues.items()
        if "RedrivePolicy" in q["Properties"] and "Incident" in lid
    ]
    assert incidents["RedrivePolicy"]["maxReceiveCount"] == 5
    assert incidents["VisibilityTimeout"] == 6 * 120


# --- OpenSearch -------------------------------------------------------------------------------


def test_domain_security(template: dict[str, Any]) -> None:
    (domain,) = props(template, "AWS::OpenSearchService::Domain")
    assert domain["EncryptionAtRestOptions"] == {"Enabled": True}
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert domain["DomainEndpointOptions"] == {
        "EnforceHTTPS": True,
        "TLSSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
    }
    fgac = domain["AdvancedSecurityOptions"]
    assert fgac["Enabled"] is True
    assert fgac["InternalUserDatabaseEnabled"] is False
    assert "Fn::GetAtt" in fgac["MasterUserOptions"]["MasterUserARN"]
    logs = domain["LogPublishingOptions"]
    assert set(logs) == {"SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS"}
    assert all(option["Enabled"] for option in logs.values())


def test_domain_access_policy_names_only_cali_roles(template: dict[str, Any]) -> None:
    (domain,) = props(template, "AWS::OpenSearchService::Domain")
    (statement,) = domain["AccessPolicies"]["Statement"]
    assert statement["Effect"] == "Allow"
    principals = statement["Principal"]["AWS"]
    assert principals and all("Fn::GetAtt" in p for p in principals), "no wildcard or account principals"
    # master user + the two Firehose roles + quality_job (no Grafana by default)
    assert len(principals) == 4


def test_domain_sizing_differs_between_dev_and_prod(synth: Synth) -> None:
    (dev,) = props(synth.templates["dev"], "AWS::OpenSearchService::Domain")
    (prod,) = props(synth.templates["prod"], "AWS::OpenSearchService::Domain")
    assert dev["ClusterConfig"]["InstanceCount"] == 1
    assert dev["ClusterConfig"]["DedicatedMasterEnabled"] is False
    assert dev["ClusterConfig"]["ZoneAwarenessEnabled"] is False
    assert prod["ClusterConfig"]["InstanceCount"] == 3
    assert prod["ClusterConfig"]["DedicatedMasterEnabled"] is True
    assert prod["ClusterConfig"]["DedicatedMasterCount"] == 3
    assert prod["ClusterConfig"]["ZoneAwarenessEnabled"] is True
    assert prod["ClusterConfig"]["ZoneAwarenessConfig"] == {"AvailabilityZoneCount": 3}
    assert (dev["EBSOptions"]["VolumeSize"], prod["EBSOptions"]["VolumeSize"]) == (40, 400)
    # A replica needs a second node: none on the one-node dev domain (it would stay yellow).
    (dev_setup,) = props(synth.templates["dev"], "Custom::CaliOpenSearchSetup")
    (prod_setup,) = props(synth.templates["prod"], "Custom::CaliOpenSearchSetup")
    assert (int(dev_setup["Replicas"]), int(prod_setup["Replicas"])) == (0, 1)


def test_domain_log_groups_writable_only_by_opensearch_from_this_account(template: dict[str, Any]) -> None:
    (policy,) = props(template, "AWS::Logs::ResourcePolicy")
    # The document is a Fn::Join of JSON text around tokens that all sit inside strings.
    parts = policy["PolicyDocument"]["Fn::Join"][1]
    (statement,) = json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))["Statement"]
    assert statement["Principal"] == {"Service": "es.amazonaws.com"}
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "TOKEN"}
    assert ":domain/cali-" in statement["Condition"]["ArnLike"]["aws:SourceArn"]
    assert len(statement["Resource"]) == 4


# --- Secrets ----------------------------------------------------------------------------------


def test_secrets_have_no_plaintext(template: dict[str, Any]) -> None:
    secrets = props(template, "AWS::SecretsManager::Secret")
    assert len(secrets) == 4  # Slack, OpenAI, Milvus, Slack signing secret
    for secret in secrets:
        assert "SecretString" not in secret
        assert "GenerateSecretString" in secret


# --- Lambda -----------------------------------------------------------------------------------


def test_functions_runtime_logs_and_environment_contract(template: dict[str, Any]) -> None:
    functions = functions_by_service(template)
    # quality_job (a container image) is checked in test_quality_stack.py.
    assert set(functions) == {*FUNCTIONS, "opensearch_setup", "quality_job"}
    for service, settings in FUNCTIONS.items():
        function = functions[service]
        assert function["Runtime"] == "python3.12"
        assert function["Architectures"] == ["arm64"]
        assert function["Handler"] == f"{service}.handler.handler"
        assert "LogGroup" in function["LoggingConfig"]
        env = function["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == service
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "CALI"
        unknown = set(env) - POWERTOOLS_VARS - {name.upper() for name in settings.model_fields}
        assert not unknown, f"{service} sets variables its settings do not read: {unknown}"
        # The values must parse with the function's own settings class, read from the
        # environment as in Lambda (CloudFormation references stand in as plain text).
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, stand_in(value))
            settings()


def test_analyzer_env_points_at_secrets_and_incident_stream(template: dict[str, Any]) -> None:
    env = functions_by_service(template)["incident_analyzer"]["Environment"]["Variables"]
    for key in ("SLACK_SECRET_ARN", "OPENAI_SECRET_ARN", "MILVUS_SECRET_ARN"):
        assert "Ref" in env[key]
    assert "Ref" in env["INCIDENTS_STREAM_NAME"]
    # No person can open the IAM-only domain's Dashboards: no link to it, and without a
    # Grafana configured no link at all (tests/infra/test_hardening.py covers the link).
    assert "OPENSEARCH_DASHBOARDS_URL" not in env
    assert "GRAFANA_URL" not in env


def test_log_groups_have_retention(synth: Synth) -> None:
    for name, days in (("dev", 14), ("staging", 30), ("prod", 90)):
        groups = props(synth.templates[name], "AWS::Logs::LogGroup")
        assert len(groups) >= 10
        assert {group.get("RetentionInDays") for group in groups} == {days}


def test_no_managed_policies_and_no_admin_wildcards(template: dict[str, Any]) -> None:
    for logical_id, resource in resources(template, "AWS::IAM::Role").items():
        role = resource["Properties"]
        # aws-cdk-lib's bucket-emptying provider (dev/staging only) is the one exception:
        # it logs with the basic execution policy and may only delete objects of our buckets.
        if logical_id.startswith("CustomS3AutoDeleteObjectsCustomResourceProviderRole"):
            assert role["ManagedPolicyArns"] == [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
            ]
            continue
        assert "ManagedPolicyArns" not in role
    for statement in statements(template):
        if statement.get("Effect") != "Allow" or "Principal" in statement:
            continue
        actions = as_list(statement["Action"])
        assert not any(action == "*" or action.endswith(":*") for action in actions), statement
        assert "*" not in as_list(statement["Resource"]) or all(
            action.startswith(("xray:", "cloudwatch:", "es:ListDomainNames", "dynamodb:ListStreams"))
            for action in actions
        ), statement


def test_consumer_event_source(synth: Synth) -> None:
    for name, batch, factor, retries, age in (("dev", 500, 1, 3, 3600), ("prod", 1000, 4, 10, 21600)):
        template = synth.templates[name]
        (consumer,) = props(template, "AWS::Kinesis::StreamConsumer")
        mapping = [
            m for m in props(template, "AWS::Lambda::EventSourceMapping") if "ConsumerARN" in json.dumps(m)
        ]
        (esm,) = mapping
        (consumer_id,) = resources(template, "AWS::Kinesis::StreamConsumer")
        assert esm["EventSourceArn"] == {"Fn::GetAtt": [consumer_id, "ConsumerARN"]}  # enhanced fan-out
        assert consumer["ConsumerName"] == f"cali-{name}-log-consumer"
        assert esm["StartingPosition"] == "TRIM_HORIZON"
        assert esm["BatchSize"] == batch
        assert esm["MaximumBatchingWindowInSeconds"] == 1
        assert esm["ParallelizationFactor"] == factor
        # The throttle needs to know: its redelivery dedupe is only sound with factor 1.
        consumer_env = functions_by_service(template)["log_consumer"]["Environment"]["Variables"]
        assert consumer_env["PARALLELIZATION_FACTOR"] == str(factor)
        assert esm["BisectBatchOnFunctionError"] is True
        assert esm["MaximumRetryAttempts"] == retries
        assert esm["MaximumRecordAgeInSeconds"] == age
        assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert "Fn::GetAtt" in esm["DestinationConfig"]["OnFailure"]["Destination"]


def test_analyzer_event_source_and_reserved_concurrency(synth: Synth) -> None:
    for name, reserved in (("dev", 2), ("prod", 5)):
        template = synth.templates[name]
        (esm,) = [
            m
            for m in props(template, "AWS::Lambda::EventSourceMapping")
            if "StartingPosition" not in m and "IncidentQueue" in json.dumps(m)
        ]
        assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert esm["BatchSize"] == 5
        assert esm["ScalingConfig"] == {"MaximumConcurrency": reserved}
        analyzer = functions_by_service(template)["incident_analyzer"]
        assert analyzer["ReservedConcurrentExecutions"] == reserved


def test_knowledge_sync_schedule(synth: Synth) -> None:
    (dev_rule,) = props(synth.templates["dev"], "AWS::Events::Rule")
    (prod_rule,) = props(synth.templates["prod"], "AWS::Events::Rule")
    assert dev_rule["ScheduleExpression"] == "rate(1 day)"
    assert prod_rule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert dev_rule["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 2


# --- Firehose ---------------------------------------------------------------------------------


def test_raw_archive_delivery(template: dict[str, Any]) -> None:
    raw = one(template, "AWS::KinesisFirehose::DeliveryStream", "DeliveryRaw")["Properties"]
    assert raw["DeliveryStreamType"] == "KinesisStreamAsSource"
    s3 = raw["ExtendedS3DestinationConfiguration"]
    assert s3["CompressionFormat"] == "GZIP"
    assert s3["Prefix"].startswith("raw/year=!{timestamp:yyyy}/")
    assert s3["ErrorOutputPrefix"].startswith("raw-errors/!{firehose:error-output-type}/")
    assert s3["CloudWatchLoggingOptions"]["Enabled"] is True


def test_search_deliveries(template: dict[str, Any]) -> None:
    logs = one(template, "AWS::KinesisFirehose::DeliveryStream", "DeliverySearchLogs")["Properties"]
    incidents = one(template, "AWS::KinesisFirehose::DeliveryStream", "DeliveryIncidents")["Properties"]
    assert logs["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert incidents["DeliveryStreamType"] == "DirectPut"
    assert incidents["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    for stream, index, rotation, name in (
        (logs, "cali-logs", "OneDay", "logs"),
        (incidents, "cali-incidents", "OneMonth", "incidents"),
    ):
        destination = stream["AmazonopensearchserviceDestinationConfiguration"]
        assert destination["IndexName"] == index
        assert destination["IndexRotationPeriod"] == rotation
        assert destination["S3BackupMode"] == "FailedDocumentsOnly"
        assert destination["S3Configuration"]["Prefix"] == f"opensearch-failed/{name}/"
        assert destination["CloudWatchLoggingOptions"]["Enabled"] is True
    processor = logs["AmazonopensearchserviceDestinationConfiguration"]["ProcessingConfiguration"]
    assert processor["Enabled"] is True
    (lambda_processor,) = processor["Processors"]
    assert lambda_processor["Type"] == "Lambda"


def test_firehose_roles_are_confused_deputy_safe(template: dict[str, Any]) -> None:
    firehose_roles = [
        r
        for r in props(template, "AWS::IAM::Role")
        if r["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        == "firehose.amazonaws.com"
    ]
    assert len(firehose_roles) == 3
    for role in firehose_roles:
        condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
        assert condition == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}


# --- Setup, alarms, Grafana -------------------------------------------------------------------


def test_opensearch_setup_maps_both_firehose_roles(template: dict[str, Any]) -> None:
    (setup,) = props(template, "Custom::CaliOpenSearchSetup")
    assert len(setup["WriterRoleArns"]) == 3  # the two Firehose roles and quality_job
    assert setup["ReaderRoleArns"] == []
    assert int(setup["RetentionDays"]) >= 1
    deliveries = resources(template, "AWS::KinesisFirehose::DeliveryStream")
    setup_id = next(iter(resources(template, "Custom::CaliOpenSearchSetup")))
    for logical_id in deliveries:
        if not logical_id.startswith("DeliveryRaw"):
            assert setup_id in deliveries[logical_id]["DependsOn"]


def test_alarms_cover_the_pipeline(template: dict[str, Any]) -> None:
    (topic,) = props(template, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic
    alarms = props(template, "AWS::CloudWatch::Alarm")
    metrics = {(a.get("Namespace"), a.get("MetricName")) for a in alarms}
    expected = {
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Firehose", "DeliveryToS3.Success"),
        ("AWS/Firehose", "DeliveryToAmazonOpenSearchService.Success"),
        ("AWS/Firehose", "ExecuteProcessing.Success"),
        ("AWS/ES", "ClusterStatus.red"),
        ("AWS/ES", "FreeStorageSpace"),
    }
    assert expected <= metrics
    errors = [a for a in alarms if a.get("MetricName") == "Errors"]
    assert len(errors) == 7  # the four pipeline functions, the two lifecycle ones and quality_job
    for alarm in alarms:
        assert alarm["AlarmActions"] and alarm["OKActions"]


def test_alarm_topic_policy_lets_cloudwatch_publish(template: dict[str, Any]) -> None:
    # A topic policy replaces SNS's default one: without an Allow for CloudWatch, every
    # alarm action fails ("not authorized to perform: SNS:Publish") and nobody is paged.
    (topic_id,) = resources(template, "AWS::SNS::Topic")
    (policy,) = props(template, "AWS::SNS::TopicPolicy")
    assert policy["Topics"] == [{"Ref": topic_id}]
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    (allow,) = [s for s in allows if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    # The key lets the same publisher encrypt, or the publish fails one step later.
    (key,) = props(template, "AWS::KMS::Key")
    key_statements = key["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key_statements)


def test_free_storage_threshold_follows_sizing(synth: Synth) -> None:
    def alarm(name: str) -> dict[str, Any]:
        (found,) = [
            a
            for a in props(synth.templates[name], "AWS::CloudWatch::Alarm")
            if a.get("MetricName") == "FreeStorageSpace"
        ]
        return found

    # With the cluster dimensions, Minimum is the free space of the fullest data node (MiB),
    # so the threshold is a share of one node's volume, whatever the node count.
    for name, volume_gb in (("dev", 40), ("staging", 150), ("prod", 400)):
        assert alarm(name)["Statistic"] == "Minimum"
        assert float(alarm(name)["Threshold"]) == volume_gb * 1024 * 0.25


def test_no_grafana_by_default(template: dict[str, Any]) -> None:
    assert not resources(template, "AWS::Grafana::Workspace")


def test_removal_policies_dev_vs_prod(synth: Synth) -> None:
    dev_table = one(synth.templates["dev"], "AWS::DynamoDB::Table")
    prod_table = one(synth.templates["prod"], "AWS::DynamoDB::Table")
    assert dev_table["DeletionPolicy"] == "Delete"
    # RetainExceptOnCreate: a rolled-back first create leaves nothing behind.
    assert prod_table["DeletionPolicy"] == "RetainExceptOnCreate"
    assert prod_table["Properties"]["DeletionProtectionEnabled"] is True
    domain = one(synth.templates["prod"], "AWS::OpenSearchService::Domain")
    assert domain["DeletionPolicy"] == "RetainExceptOnCreate"
    bucket = one(synth.templates["prod"], "AWS::S3::Bucket", "ArchiveBucket")
    assert bucket["DeletionPolicy"] == "RetainExceptOnCreate"
