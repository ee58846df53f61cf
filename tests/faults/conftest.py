"""Fault-suite fixtures: one moto server, one Slack stand-in and one LLM stand-in per session.

Every scenario gets its own resources (``World``), so scenarios never see each other's
records, queues or state; the stand-ins are cleared between scenarios.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cali_local.aws_endpoint import MotoEndpoint, aws_environment, start_moto
from cali_local.openai_stub import OpenAiStub
from cali_local.slack_sink import SlackSink
from tests.faults.harness import World


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One xdist worker runs the whole suite: the servers start once (``make test`` uses
    # ``--dist loadgroup``) and the other worker keeps the rest of the tests going.
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("faults"))


@pytest.fixture(scope="session")
def fault_endpoint() -> Iterator[MotoEndpoint]:
    endpoint = start_moto()
    try:
        with aws_environment(endpoint.url):
            yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="session")
def slack_standin() -> Iterator[SlackSink]:
    with SlackSink(rate_limit_per_channel=None) as sink:
        yield sink


@pytest.fixture(scope="session")
def llm_standin() -> Iterator[OpenAiStub]:
    with OpenAiStub() as stub:
        yield stub


@pytest.fixture
def world(
    fault_endpoint: MotoEndpoint,
    slack_standin: SlackSink,
    llm_standin: OpenAiStub,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., World]:
    slack_standin.clear()
    slack_standin.latency_seconds = 0.0
    llm_standin.reset()

    def make(**kwargs: Any) -> World:
        return World(
            endpoint_url=fault_endpoint.url,
            slack=slack_standin,
            llm=llm_standin,
            monkeypatch=monkeypatch,
            **kwargs,
        )

    return make
