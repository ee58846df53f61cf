"""The same pipeline against LocalStack, and a smoke test of a deployed environment.

Both need what this machine does not have (a Docker engine for LocalStack, an AWS
account), so they are skipped unless configured; see "Tests" in the README.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cali_local.demo_inputs import generated_events, split_waves
from cali_local.pipeline import PipelineOptions, run_pipeline


@pytest.mark.localstack
@pytest.mark.xdist_group("pipeline")
def test_pipeline_on_localstack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = os.environ.get("LOCALSTACK_ENDPOINT_URL")
    if not endpoint:
        pytest.skip("set LOCALSTACK_ENDPOINT_URL (e.g. http://localhost:4566) to run against LocalStack")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    events = generated_events("db-outage", count=600, seed=3, bad_fraction=0.02)
    report = run_pipeline(
        PipelineOptions(
            environment="lstest",
            scenario="db-outage",
            waves=split_waves(events),
            workdir=tmp_path,
            throttle_window_seconds=2,
        )
    )
    assert report.services["aws"].startswith("AWS_ENDPOINT_URL")
    assert all(report.conservation.values()), report.conservation
    assert report.metrics["log_consumer"]["RecordsIn"] == len(events)
    assert report.slack, "the outage must reach Slack"


def _stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


@pytest.mark.aws
def test_deployed_environment_dead_letters_a_bad_record() -> None:
    """A malformed record put into the deployed stream reaches s3://archive/dlq/ with a reason.

    Proves the whole hot path in AWS: the event source mapping, the consumer's IAM
    permissions, the bucket policy and the DLQ format.
    """
    stack = os.environ.get("CALI_AWS_STACK")
    if not stack:
        pytest.skip("set CALI_AWS_STACK (e.g. Dev-Cali) and AWS credentials to test a deployed environment")
    import boto3

    outputs = _stack_outputs(boto3.client("cloudformation"), stack)
    marker = f"cali-smoke-{uuid.uuid4()}"
    kinesis, s3 = boto3.client("kinesis"), boto3.client("s3")
    started = time.time()
    kinesis.put_record(
        StreamName=outputs["LogStreamName"], Data=f"{{not json {marker}".encode(), PartitionKey=marker
    )
    bucket = outputs["ArchiveBucketName"]
    deadline = started + 300
    while time.time() < deadline:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dlq/"):
            for item in page.get("Contents", []):
                if item["LastModified"].timestamp() < started - 60:
                    continue
                body = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                if marker.encode() in base64.b64decode(body.get("data_base64", "")):
                    assert body["reason"] == "not_json"
                    assert body["shard_id"] and body["sequence_number"]
                    return
        time.sleep(10)
    pytest.fail(f"no DLQ object for {marker} in s3://{bucket}/dlq/ within 5 minutes")
