"""Delivery: the Firehose streams.

* ``raw``: Kinesis -> S3 ``raw/`` (GZIP, Hive-style hourly partitions), the replayable
  archive of the original bytes.
* ``logs``: Kinesis -> ``log_indexer`` transform -> OpenSearch ``cali-logs-<day>``;
  documents OpenSearch rejects go to S3 ``opensearch-failed/logs/``.
* ``incidents``: direct put by the analyzer -> OpenSearch ``cali-incidents-<month>``;
  rejected documents go to S3 ``opensearch-failed/incidents/``.

Both Kinesis readers are standard (shared 2 MB/s per shard) consumers; the Lambda consumer
uses enhanced fan-out, so per shard 2 readers x 1 MB/s of writes fit the read limit.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks._nag import acknowledge, acknowledge_wildcards, arn_of
from stacks.archive import OPENSEARCH_FAILED_PREFIX, RAW_ERRORS_PREFIX, RAW_PREFIX
from stacks.search_domain import SearchDomain

LOGS_INDEX = "cali-logs"
INCIDENTS_INDEX = "cali-incidents"
_HOURLY = "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"


class Delivery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.Stream,
        bucket: s3.Bucket,
        search: SearchDomain,
        indexer: lambda_.IFunction,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._bucket = bucket
        self._search = search
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )

        raw_role = self._role("RawRole", [RAW_PREFIX, RAW_ERRORS_PREFIX])
        stream.grant_read(raw_role)
        self.raw = firehose.CfnDeliveryStream(
            self,
            "Raw",
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration=firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                kinesis_stream_arn=stream.stream_arn, role_arn=raw_role.role_arn
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=raw_role.role_arn,
                prefix=RAW_PREFIX + _HOURLY,
                error_output_prefix=RAW_ERRORS_PREFIX + "!{firehose:error-output-type}/" + _HOURLY,
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=300, size_in_m_bs=128
                ),
                cloud_watch_logging_options=self._logging("raw"),
            ),
        )
        self._depends_on_role(self.raw, raw_role)

        self.logs_role = self._role("LogsRole", [f"{OPENSEARCH_FAILED_PREFIX}logs/"])
        stream.grant_read(self.logs_role)
        # The unqualified ARN is the one in the processing configuration: no version wildcard.
        self.logs_role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                resources=[indexer.function_arn],
            )
        )
        search_access = self._search_access(self.logs_role)
        self.logs = firehose.CfnDeliveryStream(
            self,
            "SearchLogs",
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration=firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                kinesis_stream_arn=stream.stream_arn, role_arn=self.logs_role.role_arn
            ),
            amazonopensearchservice_destination_configuration=self._search_destination(
                self.logs_role, LOGS_INDEX, "OneDay", "logs", processor=indexer
            ),
        )
        self._depends_on_role(self.logs, self.logs_role, search_access)

        self.incidents_role = self._role("IncidentsRole", [f"{OPENSEARCH_FAILED_PREFIX}incidents/"])
        search_access = self._search_access(self.incidents_role)
        self.incidents = firehose.CfnDeliveryStream(
            self,
            "Incidents",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            amazonopensearchservice_destination_configuration=self._search_destination(
                self.incidents_role, INCIDENTS_INDEX, "OneMonth", "incidents"
            ),
        )
        self._depends_on_role(self.incidents, self.incidents_role, search_access)
        self.incidents_stream_name = self.incidents.ref
        self.incidents_stream_arn = self.incidents.attr_arn
        search.allow(self.logs_role, self.incidents_role)

        for stream_construct in (self.raw, self.logs):
            acknowledge(
                stream_construct,
                "KDF1",
                "Kinesis-sourced delivery streams cannot take Firehose SSE; the source "
                "stream is KMS-encrypted and Firehose encrypts in transit.",
            )

    def grant_put_incidents(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
            resource_arns=[self.incidents_stream_arn],
        )

    @property
    def search_writer_roles(self) -> list[iam.IRole]:
        return [self.logs_role, self.incidents_role]

    def _role(self, construct_id: str, prefixes: list[str]) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": Aws.ACCOUNT_ID}}
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "s3:AbortMultipartUpload",
                    "s3:GetBucketLocation",
                    "s3:GetObject",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:PutObject",
                ],
                resources=[
                    self._bucket.bucket_arn,
                    *(f"{self._bucket.bucket_arn}/{prefix}*" for prefix in prefixes),
                ],
            )
        )
        self.log_group.grant_write(role)
        acknowledge_wildcards(
            role,
            [f"{arn_of(self._bucket)}/{prefix}*" for prefix in prefixes],
            "Firehose writes objects whose keys it generates (time partitions, file "
            "names) under this stream's own prefix of the archive bucket; the role "
            "cannot touch other prefixes.",
        )
        return role

    def _search_access(self, role: iam.Role) -> iam.Policy:
        search = self._search
        policy = iam.Policy(
            self,
            f"{role.node.id}Search",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["es:DescribeDomain", "es:DescribeDomains", "es:DescribeDomainConfig"],
                    resources=[search.domain_arn, f"{search.domain_arn}/*"],
                ),
                iam.PolicyStatement(
                    actions=["es:ESHttpPost", "es:ESHttpPut", "es:ESHttpGet"],
                    resources=[search.domain_arn, f"{search.domain_arn}/*"],
                ),
            ],
        )
        acknowledge_wildcards(
            policy,
            [search.nag_paths],
            "Firehose creates time-rotated indices (cali-logs-<day>, cali-incidents-<month>) "
            "and calls _bulk, _cluster/stats and _nodes on this one domain; FGAC limits its "
            "backend role to the cali-* indices.",
        )
        return policy

    def _depends_on_role(
        self, delivery: firehose.CfnDeliveryStream, role: iam.Role, *more: Construct
    ) -> None:
        # Firehose validates its role at creation: the role's policies must exist first
        # (the role itself is already a GetAtt dependency).
        delivery.node.add_dependency(role.node.find_child("DefaultPolicy"), *more)

    def _logging(self, stream_name: str) -> firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty:
        log_stream = logs.LogStream(
            self,
            f"{stream_name.capitalize()}LogStream",
            log_group=self.log_group,
            log_stream_name=stream_name,
            removal_policy=RemovalPolicy.DESTROY,
        )
        return firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
            enabled=True,
            log_group_name=self.log_group.log_group_name,
            log_stream_name=log_stream.log_stream_name,
        )

    def _search_destination(
        self, role: iam.Role, index: str, rotation: str, name: str, processor: lambda_.IFunction | None = None
    ) -> Any:
        props = firehose.CfnDeliveryStream
        processing = None
        if processor is not None:
            processing = props.ProcessingConfigurationProperty(
                enabled=True,
                processors=[
                    props.ProcessorProperty(
                        type="Lambda",
                        parameters=[
                            props.ProcessorParameterProperty(
                                parameter_name="LambdaArn", parameter_value=processor.function_arn
                            ),
                            # 1 MB in keeps the enriched output well under Lambda's 6 MB response.
                            props.ProcessorParameterProperty(
                                parameter_name="BufferSizeInMBs", parameter_value="1"
                            ),
                            props.ProcessorParameterProperty(
                                parameter_name="BufferIntervalInSeconds", parameter_value="60"
                            ),
                            props.ProcessorParameterProperty(
                                parameter_name="NumberOfRetries", parameter_value="3"
                            ),
                        ],
                    )
                ],
            )
        return props.AmazonopensearchserviceDestinationConfigurationProperty(
            domain_arn=self._search.domain.domain_arn,
            index_name=index,
            index_rotation_period=rotation,
            role_arn=role.role_arn,
            s3_backup_mode="FailedDocumentsOnly",
            s3_configuration=props.S3DestinationConfigurationProperty(
                bucket_arn=self._bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=f"{OPENSEARCH_FAILED_PREFIX}{name}/",
                compression_format="UNCOMPRESSED",
                cloud_watch_logging_options=self._logging(f"{name}-backup"),
            ),
            buffering_hints=props.AmazonopensearchserviceBufferingHintsProperty(
                interval_in_seconds=60, size_in_m_bs=5
            ),
            retry_options=props.AmazonopensearchserviceRetryOptionsProperty(duration_in_seconds=300),
            processing_configuration=processing,
            cloud_watch_logging_options=self._logging(name),
        )
