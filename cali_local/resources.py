"""The AWS resources of one environment, created on a local endpoint (moto or LocalStack).

The shapes follow the stacks: a Kinesis stream, the archive bucket with its raw/, dlq/
and opensearch-failed/ prefixes, the incidents queue with its redrive DLQ, the consumer's
on-failure queue and the DynamoDB state table (pk/sk, TTL ``expires_at``). Names are
``cali-<env>-<purpose>``; the deployed stacks let CloudFormation name them and pass the
names to the functions in environment variables, exactly as ``handler_environment`` does
here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INCIDENT_MAX_RECEIVES = 3


@dataclass(frozen=True)
class ResourceNames:
    environment: str

    @property
    def stream(self) -> str:
        return f"cali-{self.environment}-logs"

    @property
    def bucket(self) -> str:
        return f"cali-{self.environment}-archive"

    @property
    def incidents_queue(self) -> str:
        return f"cali-{self.environment}-incidents"

    @property
    def incidents_dlq(self) -> str:
        return f"cali-{self.environment}-incidents-dlq"

    @property
    def consumer_failures_queue(self) -> str:
        return f"cali-{self.environment}-consumer-failures"

    @property
    def state_table(self) -> str:
        return f"cali-{self.environment}-state"


@dataclass(frozen=True)
class LocalResources:
    names: ResourceNames
    stream_arn: str
    incidents_queue_url: str
    incidents_dlq_url: str
    consumer_failures_queue_url: str


def create_resources(clients: Any, names: ResourceNames, *, shards: int = 2) -> LocalResources:
    """Create every resource, empty: a run never reads what an earlier run left behind.

    An earlier run against the same endpoint (LocalStack, or moto in the same process,
    whose state is process-wide) would otherwise leave records in the stream, read again
    from TRIM_HORIZON, objects in dlq/ and throttle state in the table.
    """
    kinesis, s3, sqs, dynamodb = clients.kinesis, clients.s3, clients.sqs, clients.dynamodb
    _remove_previous_run(clients, names)
    try:
        kinesis.create_stream(StreamName=names.stream, ShardCount=shards)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    kinesis.get_waiter("stream_exists").wait(StreamName=names.stream, WaiterConfig={"Delay": 0.1})
    stream_arn = kinesis.describe_stream_summary(StreamName=names.stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]

    try:
        region = s3.meta.region_name
        config = (
            {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=names.bucket, **config)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise

    dlq_url = sqs.create_queue(QueueName=names.incidents_dlq)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=names.incidents_queue,
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(INCIDENT_MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    failures_url = sqs.create_queue(QueueName=names.consumer_failures_queue)["QueueUrl"]

    try:
        create_state_table(dynamodb, names.state_table)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    return LocalResources(names, stream_arn, queue_url, dlq_url, failures_url)


def create_state_table(dynamodb_client: DynamoDBClient, name: str) -> None:
    """Create the state table as the stack declares it: pk/sk strings, on-demand, TTL ``expires_at``.

    Tests use it too, so they run against the table shape the functions meet in AWS. An
    existing table raises ``ResourceInUseException`` (a ``ClientError``).
    """
    dynamodb_client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    # Local endpoints create the table at once: poll every 0.1 s, not the default 20 s
    # (botocore sleeps a float happily; its stubs say int).
    dynamodb_client.get_waiter("table_exists").wait(
        TableName=name,
        WaiterConfig={"Delay": 0.1},  # type: ignore[typeddict-item]
    )
    dynamodb_client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )


# What the services answer when the thing to delete is not there: nothing to remove.
_MISSING = ("ResourceNotFoundException", "NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue")


@contextmanager
def _unless_missing() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        if error.response["Error"]["Code"] not in _MISSING:
            raise


def _remove_previous_run(clients: Any, names: ResourceNames) -> None:
    """Delete the stream, the queues and the table and empty the bucket, where they exist."""
    # PurgeQueue is limited to once a minute per queue; deleting has no such limit here.
    for queue in (names.incidents_queue, names.incidents_dlq, names.consumer_failures_queue):
        with _unless_missing():
            clients.sqs.delete_queue(QueueUrl=clients.sqs.get_queue_url(QueueName=queue)["QueueUrl"])
    with _unless_missing():
        clients.kinesis.delete_stream(StreamName=names.stream, EnforceConsumerDeletion=True)
        clients.kinesis.get_waiter("stream_not_exists").wait(
            StreamName=names.stream, WaiterConfig={"Delay": 0.1}
        )
    with _unless_missing():
        clients.dynamodb.delete_table(TableName=names.state_table)
        clients.dynamodb.get_waiter("table_not_exists").wait(
            TableName=names.state_table, WaiterConfig={"Delay": 0.1}
        )
    with _unless_missing():
        _empty_bucket(clients.s3, names.bucket)


def _empty_bucket(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
