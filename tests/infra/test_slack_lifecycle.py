"""The Slack interactivity endpoint and the lifecycle worker in every environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.slack_lifecycle import SlackLifecycleConfig

from .conftest import ENVIRONMENTS, Synth, one, props, resources
from .test_stack import functions_by_service

pytestmark = pytest.mark.xdist_group("infra")


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def template(request: pytest.FixtureRequest, synth: Synth) -> dict[str, Any]:
    return synth.templates[request.param]


def test_http_api_route_throttling_and_access_logs(template: dict[str, Any]) -> None:
    api = one(template, "AWS::ApiGatewayV2::Api")["Properties"]
    assert api["ProtocolType"] == "HTTP"
    (route,) = props(template, "AWS::ApiGatewayV2::Route")
    assert route["RouteKey"] == "POST /slack/events"  # nothing else is exposed
    stage = one(template, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 20
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 40
    fields = json.loads(stage["AccessLogSettings"]["Format"])
    assert {"requestId", "ip", "status", "requestTime"} <= set(fields)
    assert "Fn::GetAtt" in stage["AccessLogSettings"]["DestinationArn"]


def test_signing_secret_has_no_plaintext_and_only_the_endpoint_reads_it(template: dict[str, Any]) -> None:
    secrets = {
        lid: res["Properties"]
        for lid, res in resources(template, "AWS::SecretsManager::Secret").items()
        if "SigningSecret" in lid
    }
    ((secret_id, secret),) = secrets.items()
    assert "SecretString" not in secret and "signing_secret" in secret["Description"]
    readers = [
        lid
        for lid, res in resources(template, "AWS::IAM::Policy").items()
        if json.dumps({"Ref": secret_id}) in json.dumps(res["Properties"]["PolicyDocument"])
    ]
    assert len(readers) == 1 and "Interactions" in readers[0]


def test_functions_concurrency_and_config(template: dict[str, Any]) -> None:
    functions = functions_by_service(template)
    endpoint, worker = functions["slack_interactions"], functions["incident_lifecycle"]
    assert (
        "ReservedConcurrentExecutions" not in endpoint
    )  # the HTTP API rate limit bounds it (test_hardening)
    assert endpoint["Timeout"] <= 10
    env = worker["Environment"]["Variables"]
    assert set(json.loads(env["ESCALATION"])) == {"ERROR", "FATAL"}
    assert env["QUIET_AFTER_MINUTES"] == "60"
    analyzer = functions["incident_analyzer"]["Environment"]["Variables"]
    assert analyzer["ESCALATION"] == env["ESCALATION"] and "Ref" in analyzer["LIFECYCLE_QUEUE_URL"]


def test_stream_consumers_are_filtered_and_have_a_failure_destination(template: dict[str, Any]) -> None:
    mappings = [m for m in props(template, "AWS::Lambda::EventSourceMapping") if "StartingPosition" in m]
    streams = [m for m in mappings if "Fn::GetAtt" in m["EventSourceArn"] and "StreamArn" in json.dumps(m)]
    assert len(streams) == 2
    patterns = sorted(
        json.loads(m["FilterCriteria"]["Filters"][0]["Pattern"])["eventName"][0] for m in streams
    )
    assert patterns == ["INSERT", "REMOVE"] or patterns[1] == "REMOVE"
    for mapping in streams:
        assert mapping["BisectBatchOnFunctionError"] is True
        assert "OnFailure" in mapping["DestinationConfig"]
    ttl_only = next(m for m in streams if "REMOVE" in m["FilterCriteria"]["Filters"][0]["Pattern"])
    pattern = json.loads(ttl_only["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern["userIdentity"]["principalId"] == ["dynamodb.amazonaws.com"]


def test_config_rejects_typos() -> None:
    with pytest.raises(ValueError, match="extra"):
        SlackLifecycleConfig.model_validate({"team_id": "T1"})
    assert SlackLifecycleConfig().escalation["FATAL"].after_minutes == 10
