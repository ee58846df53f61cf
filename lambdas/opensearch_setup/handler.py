"""Custom-resource handler: templates, ISM policies and FGAC roles on the CALI domain.

Runs as the domain's FGAC master user (its execution role). Called by the CDK
``custom_resources.Provider`` framework, which turns a return value into SUCCESS and an
exception into FAILED for CloudFormation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import tenacity
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from cali.search import index as search_index
from opensearch_setup.security_roles import apply_roles

logger = Logger()

# A new domain's endpoint resolves before its security plugin answers; retry for
# most of the function's 10 minute timeout.
RETRY_SECONDS = 480.0


class SetupProperties(BaseModel):
    """The custom resource's properties (CloudFormation sends numbers as strings)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    endpoint: str = Field(alias="Endpoint", min_length=1)
    region: str = Field(alias="Region", min_length=1)
    retention_days: int = Field(alias="RetentionDays", ge=1)
    replicas: int = Field(alias="Replicas", ge=0)
    # Absent in resources created before shards were configurable: keep the template's 1.
    log_shards: int | None = Field(alias="LogShards", default=None, ge=1)
    writer_role_arns: list[str] = Field(alias="WriterRoleArns", default_factory=list)
    reader_role_arns: list[str] = Field(alias="ReaderRoleArns", default_factory=list)


def build_client(endpoint: str, region: str) -> search_index.SearchClient:
    import boto3
    from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

    credentials = boto3.Session().get_credentials()
    return OpenSearch(
        hosts=[{"host": endpoint, "port": 443}],
        http_auth=AWSV4SignerAuth(credentials, region, "es"),
        use_ssl=True,
        verify_certs=True,
        connection_class=RequestsHttpConnection,
        timeout=30,
    )


def configure(client: search_index.SearchClient, props: SetupProperties) -> None:
    search_index.apply(client, props.retention_days, replicas=props.replicas, log_shards=props.log_shards)
    apply_roles(client, writers=props.writer_role_arns, readers=props.reader_role_arns)


_RETRYABLE_STATUS = frozenset({401, 403, 429, 500, 502, 503, 504})


def _not_ready(error: BaseException) -> bool:
    """A connection error, or an answer a domain gives while its security plugin starts."""
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError
    from opensearchpy.exceptions import TransportError

    if isinstance(error, SearchConnectionError):
        return True
    return isinstance(error, TransportError) and getattr(error, "status_code", None) in _RETRYABLE_STATUS


def with_retries(
    action: Callable[[], None],
    *,
    budget_seconds: float = RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``action``; retry while the domain is not ready, 5 s doubling to 60 s, within the budget.

    No wait starts that would end past the budget: the custom resource must answer before
    the function's timeout, or CloudFormation waits an hour for it.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_not_ready),
        wait=tenacity.wait_exponential(multiplier=5, max=60),
        stop=tenacity.stop_before_delay(budget_seconds),
        sleep=sleep,
        before_sleep=lambda state: logger.warning(
            "OpenSearch not ready, retrying",
            extra={
                "status": getattr(state.outcome.exception() if state.outcome else None, "status_code", None),
                "delay": state.upcoming_sleep,
            },
        ),
        reraise=True,
    )
    retrying(action)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["RequestType"]
    physical_id = event.get("PhysicalResourceId") or f"cali-opensearch-setup-{event['LogicalResourceId']}"
    if request == "Delete":
        # Templates, policies and roles go with the domain; deleting them while the
        # domain is retained would break delivery into it.
        return {"PhysicalResourceId": physical_id}
    props = SetupProperties.model_validate(event["ResourceProperties"])
    client = build_client(props.endpoint, props.region)
    with_retries(lambda: configure(client, props))
    logger.info(
        "OpenSearch configured",
        extra={"writers": len(props.writer_role_arns), "readers": len(props.reader_role_arns)},
    )
    return {"PhysicalResourceId": physical_id}
