"""The deploy-time OpenSearch setup handler, against a transport that behaves like the domain.

The fake answers the way OpenSearch's REST API does for the calls the handler makes
(ISM 404 for a missing policy, 503 while a new domain's security plugin starts), so the
handler's request sequence, retries and CloudFormation responses are what is tested.
"""

from __future__ import annotations

from typing import Any

import pytest
from opensearch_setup import handler as setup
from opensearch_setup.security_roles import READER_ROLE, ROLE_BODIES, WRITER_ROLE
from opensearchpy.exceptions import NotFoundError, TransportError

pytestmark = pytest.mark.xdist_group("infra")

WRITER = "arn:aws:iam::111111111111:role/firehose-logs"
READER = "arn:aws:iam::111111111111:role/grafana"


class FakeDomain:
    """Stores what was PUT; fails the first ``unavailable`` requests with 503."""

    def __init__(self, unavailable: int = 0, fail_status: int = 503) -> None:
        self.documents: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []
        self._unavailable = unavailable
        self._fail_status = fail_status

    @property
    def transport(self) -> FakeDomain:
        return self

    def perform_request(
        self, method: str, url: str, params: Any = None, body: Any = None, headers: Any = None
    ) -> Any:
        self.calls.append((method, url))
        if self._unavailable:
            self._unavailable -= 1
            raise TransportError(self._fail_status, "unavailable", {"error": "not ready"})
        if method == "PUT":
            self.documents[url] = body
            return {"acknowledged": True}
        if url in self.documents:
            return {**self.documents[url], "_seq_no": 1, "_primary_term": 1}
        raise NotFoundError(404, "not_found", {})


def event(request: str = "Create", **props: Any) -> dict[str, Any]:
    properties = {
        "ServiceToken": "arn",
        "Endpoint": "search-cali-dev.example",
        "Region": "us-east-1",
        "RetentionDays": "7",
        "Replicas": "0",
        "WriterRoleArns": [WRITER],
        "ReaderRoleArns": [READER],
        "CodeHash": "abc",
        **props,
    }
    return {"RequestType": request, "LogicalResourceId": "OpenSearchSetup", "ResourceProperties": properties}


class Context:
    function_name = "setup"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:111111111111:function:setup"
    aws_request_id = "req-1"


@pytest.fixture
def domain(monkeypatch: pytest.MonkeyPatch) -> FakeDomain:
    fake = FakeDomain()
    monkeypatch.setattr(setup, "build_client", lambda endpoint, region: fake)
    return fake


def test_create_applies_templates_policies_and_role_mappings(domain: FakeDomain) -> None:
    response = setup.handler(event(), Context())  # type: ignore[arg-type]
    assert response == {"PhysicalResourceId": "cali-opensearch-setup-OpenSearchSetup"}
    docs = domain.documents
    assert {"/_index_template/cali-logs", "/_index_template/cali-incidents"} <= set(docs)
    logs_policy = docs["/_plugins/_ism/policies/cali-logs-retention"]
    assert '"7d"' in str(logs_policy).replace("'", '"')
    template_settings = docs["/_index_template/cali-logs"]["template"]["settings"]["index"]
    assert template_settings["number_of_replicas"] == 0
    assert docs[f"/_plugins/_security/api/roles/{WRITER_ROLE}"] == ROLE_BODIES[WRITER_ROLE]
    assert docs[f"/_plugins/_security/api/rolesmapping/{WRITER_ROLE}"]["backend_roles"] == [WRITER]
    assert docs[f"/_plugins/_security/api/rolesmapping/{READER_ROLE}"]["backend_roles"] == [READER]


def test_update_keeps_physical_id(domain: FakeDomain) -> None:
    update = event("Update") | {"PhysicalResourceId": "existing-id"}
    assert setup.handler(update, Context())["PhysicalResourceId"] == "existing-id"  # type: ignore[arg-type]


def test_delete_leaves_the_domain_alone(domain: FakeDomain) -> None:
    delete = event("Delete") | {"PhysicalResourceId": "existing-id"}
    assert setup.handler(delete, Context()) == {"PhysicalResourceId": "existing-id"}  # type: ignore[arg-type]
    assert domain.calls == []


def test_invalid_properties_fail_the_deploy(domain: FakeDomain) -> None:
    with pytest.raises(ValueError, match="RetentionDays"):
        setup.handler(event(RetentionDays="0"), Context())  # type: ignore[arg-type]


def test_retries_while_the_new_domain_is_not_ready() -> None:
    domain = FakeDomain(unavailable=3)
    sleeps: list[float] = []
    props = setup.SetupProperties.model_validate(event()["ResourceProperties"])
    setup.with_retries(lambda: setup.configure(domain, props), sleep=sleeps.append)
    assert sleeps == [5.0, 10.0, 20.0]
    assert f"/_plugins/_security/api/rolesmapping/{WRITER_ROLE}" in domain.documents


def test_gives_up_on_client_errors_and_after_the_budget() -> None:
    props = setup.SetupProperties.model_validate(event()["ResourceProperties"])
    bad_request = FakeDomain(unavailable=1, fail_status=400)
    with pytest.raises(TransportError):
        setup.with_retries(lambda: setup.configure(bad_request, props), sleep=lambda _: None)
    never_ready = FakeDomain(unavailable=1000)
    with pytest.raises(TransportError):
        setup.with_retries(
            lambda: setup.configure(never_ready, props), budget_seconds=0.0, sleep=lambda _: None
        )
