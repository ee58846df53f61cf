"""Integration fixtures: one moto server per test session, real boto3 clients against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cali_local.aws_endpoint import MotoEndpoint, aws_environment, start_moto


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    endpoint = start_moto()
    try:
        with aws_environment(endpoint.url):
            yield endpoint
    finally:
        endpoint.stop()
