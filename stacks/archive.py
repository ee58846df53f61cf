"""Archive: the S3 bucket for raw logs, DLQ records and failed OpenSearch deliveries."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks._nag import acknowledge
from stacks.config import ArchiveConfig

RAW_PREFIX = "raw/"
RAW_ERRORS_PREFIX = "raw-errors/"
DLQ_PREFIX = "dlq/"
OPENSEARCH_FAILED_PREFIX = "opensearch-failed/"


class Archive(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: ArchiveConfig, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        # A destroyable environment empties its buckets on `cdk destroy` (a custom resource
        # deletes the objects first); otherwise CloudFormation stops at a non-empty bucket.
        disposable = removal_policy == RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 log delivery supports
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(config.access_log_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=disposable,
        )
        acknowledge(
            self.access_logs,
            "S1",
            "This bucket receives the archive bucket's server access logs; logging it into "
            "itself would loop.",
        )
        transitions = [
            s3.Transition(
                storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                transition_after=Duration.days(config.infrequent_access_days),
            )
        ]
        if config.glacier_days is not None:
            transitions.append(
                s3.Transition(
                    storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                    transition_after=Duration.days(config.glacier_days),
                )
            )
        short_lived = [DLQ_PREFIX, RAW_ERRORS_PREFIX, OPENSEARCH_FAILED_PREFIX]
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="archive/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="raw",
                    prefix=RAW_PREFIX,
                    transitions=transitions,
                    expiration=Duration.days(config.expiration_days),
                ),
                *(
                    s3.LifecycleRule(
                        id=prefix.rstrip("/"),
                        prefix=prefix,
                        expiration=Duration.days(config.dlq_expiration_days),
                    )
                    for prefix in short_lived
                ),
                s3.LifecycleRule(id="multipart", abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=disposable,
        )
