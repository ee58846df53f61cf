"""Fixtures shared by unit and functional tests: moto's state table, the OpenAI-compatible stub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws
from mypy_boto3_dynamodb import DynamoDBClient

from cali_local.openai_stub import OpenAiStub
from cali_local.resources import create_state_table


@dataclass(frozen=True)
class StateTable:
    client: DynamoDBClient
    name: str
    region: str


@pytest.fixture
def state_table() -> Iterator[StateTable]:
    """The DynamoDB state table (pk/sk, TTL ``expires_at``) on moto, shaped as ``make demo`` makes it."""
    with mock_aws():
        table = StateTable(boto3.client("dynamodb", region_name="eu-west-1"), "cali-test-state", "eu-west-1")
        create_state_table(table.client, table.name)
        yield table


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAiStub]:
    """One stub server per module: starting an HTTP server per test would dominate the run."""
    with OpenAiStub() as server:
        yield server


@pytest.fixture
def stub(openai_server: OpenAiStub) -> OpenAiStub:
    """The module's stub with nothing scripted and every switch a test may flip back off."""
    openai_server.reset()
    openai_server.reject_response_format = False
    openai_server.json_schema_status = None
    openai_server.unsupported_params = frozenset()
    openai_server.api_key = None
    return openai_server
