"""SQL over the archive: a Glue database with the raw and DLQ tables, and an Athena workgroup.

* ``raw_lines``: every line of ``raw/year=YYYY/month=MM/day=DD/hour=HH/*.gz`` as one text
  column (the archive holds whatever producers sent, valid JSON or not: queries parse with
  ``JSON_EXTRACT_SCALAR``). Partition projection computes the hourly partitions from the
  query's predicates, so nothing has to add partitions and a query reads only the hours it
  names.
* ``dlq_entries``: the DLQ's JSON entries (``dlq/YYYY/MM/DD/HH/<id>.json``).
* Workgroup ``cali-<env>``: its settings are enforced (clients cannot point results
  elsewhere), results are encrypted in a bucket of their own that deletes them after
  ``results_days``, and a query that would scan more than ``bytes_scanned_cutoff`` is
  cancelled (the cost guard: Athena bills per byte scanned).

The local engine (DuckDB, ``cali.quality.engines``) exposes the same tables over a copy.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks._nag import acknowledge, arn_of
from stacks.archive import DLQ_PREFIX, RAW_PREFIX

RESULTS_PREFIX = "athena-results/"
REPORTS_PREFIX = "quality-reports/"
# Mirrors cali.ingest.dlq.DlqEntry; every column is read as text (timestamps stay ISO-8601).
DLQ_COLUMNS = (
    "reason",
    "error",
    "source",
    "shard_id",
    "sequence_number",
    "partition_key",
    "arrival_time",
    "dlq_time",
    "data_base64",
    "event_index",
    "events",
    "stream_arn",
    "replayed_at",
)
_PARTITIONS = ("year", "month", "day", "hour")


def _projection(first_year: int) -> dict[str, str]:
    ranges = {"year": f"{first_year},2099", "month": "1,12", "day": "1,31", "hour": "0,23"}
    params = {"projection.enabled": "true"}
    for name, bounds in ranges.items():
        params[f"projection.{name}.type"] = "integer"
        params[f"projection.{name}.range"] = bounds
        params[f"projection.{name}.digits"] = "4" if name == "year" else "2"
    return params


class ArchiveSql(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        archive: s3.Bucket,
        removal_policy: RemovalPolicy,
        bytes_scanned_cutoff: int = 100 * 1024**3,
        results_days: int = 30,
        reports_days: int = 400,
        first_year: int = 2026,
    ) -> None:
        super().__init__(scope, construct_id)
        self.archive = archive
        self.database_name = f"cali_{env_name.replace('-', '_')}"
        self.workgroup_name = f"cali-{env_name}"
        self.results = s3.Bucket(
            self,
            "Results",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="athena-results", prefix=RESULTS_PREFIX, expiration=Duration.days(results_days)
                ),
                s3.LifecycleRule(
                    id="quality-reports", prefix=REPORTS_PREFIX, expiration=Duration.days(reports_days)
                ),
                s3.LifecycleRule(id="multipart", abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
            removal_policy=removal_policy,
            # dev/staging: emptied on destroy, like the archive (cdk destroy would stop on it).
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.results,
            "S1",
            "Athena query results and the daily quality reports: both are produced by CALI "
            "itself, expire by lifecycle, and every query is already recorded by Athena.",
        )
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="CALI raw log archive and DLQ (Athena)"
            ),
        )
        location = f"s3://{archive.bucket_name}/"
        self.raw_table = self._table(
            "RawLines",
            "raw_lines",
            "Every archived line as text; parse with JSON_EXTRACT_SCALAR(line, '$.field')",
            columns=[glue.CfnTable.ColumnProperty(name="line", type="string")],
            location=f"{location}{RAW_PREFIX}",
            template=f"{location}{RAW_PREFIX}year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}/",
            serde=glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                # \u001e never occurs in a log line: the whole line is the one column.
                parameters={"field.delim": "\u001e", "serialization.format": "\u001e"},
            ),
            first_year=first_year,
        )
        self.dlq_table = self._table(
            "DlqEntries",
            "dlq_entries",
            "Dead-letter entries of the log consumer (cali.ingest.dlq.DlqEntry)",
            columns=[glue.CfnTable.ColumnProperty(name=c, type="string") for c in DLQ_COLUMNS],
            location=f"{location}{DLQ_PREFIX}",
            template=f"{location}{DLQ_PREFIX}${{year}}/${{month}}/${{day}}/${{hour}}/",
            serde=glue.CfnTable.SerdeInfoProperty(
                serialization_library="org.openx.data.jsonserde.JsonSerDe",
                parameters={"ignore.malformed.json": "true"},
            ),
            first_year=first_year,
        )
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=self.workgroup_name,
            description="CALI: SQL over the raw archive, and the daily quality checks",
            recursive_delete_option=removal_policy == RemovalPolicy.DESTROY,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results.bucket_name}/{RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                ),
            ),
        )

    def _table(
        self,
        construct_id: str,
        name: str,
        description: str,
        *,
        columns: list[glue.CfnTable.ColumnProperty],
        location: str,
        template: str,
        serde: glue.CfnTable.SerdeInfoProperty,
        first_year: int,
    ) -> glue.CfnTable:
        table = glue.CfnTable(
            self,
            construct_id,
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    "EXTERNAL": "TRUE",
                    **_projection(first_year),
                    "storage.location.template": template,
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name=p, type="string") for p in _PARTITIONS],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=columns,
                    location=location,
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=serde,
                ),
            ),
        )
        table.node.add_dependency(self.database)
        return table

    def grant_query(self, grantee: iam.IGrantable) -> None:
        """Run queries in the workgroup over both tables and read/write their results."""
        glue_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        athena_arn = f"arn:{Aws.PARTITION}:athena:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "athena:StartQueryExecution",
                "athena:GetQueryExecution",
                "athena:BatchGetQueryExecution",
                "athena:GetQueryResults",
                "athena:StopQueryExecution",
                "athena:GetWorkGroup",
            ],
            resource_arns=[f"{athena_arn}:workgroup/{self.workgroup_name}"],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"],
            resource_arns=[
                f"{glue_arn}:catalog",
                f"{glue_arn}:database/{self.database_name}",
                f"{glue_arn}:table/{self.database_name}/raw_lines",
                f"{glue_arn}:table/{self.database_name}/dlq_entries",
            ],
        )
        # Exact actions instead of grant_read/grant_read_write (s3:GetObject*, s3:DeleteObject*).
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject"],
            resource_arns=[
                self.archive.arn_for_objects(f"{RAW_PREFIX}*"),
                self.archive.arn_for_objects(f"{DLQ_PREFIX}*"),
            ],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket", "s3:GetBucketLocation"],
            resource_arns=[self.archive.bucket_arn, self.results.bucket_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "s3:GetObject",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            resource_arns=[self.results.arn_for_objects(f"{RESULTS_PREFIX}*")],
        )

    def nag_wildcards(self) -> list[str]:
        """The wildcard resources of grant_query, spelled as cdk-nag reports them."""
        return [
            f"{arn_of(self.archive)}/{RAW_PREFIX}*",
            f"{arn_of(self.archive)}/{DLQ_PREFIX}*",
            f"{arn_of(self.results)}/{RESULTS_PREFIX}*",
        ]
