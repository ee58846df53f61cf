"""Every query of the Data quality dashboard returns data from documents quality_job writes.

Two environments' reports (a normal week, and one with a silent service) are published
through the real ``publish`` and ``OpenSearchIndex`` into the OpenSearch-compatible server
with CALI's index templates; each panel target is then translated exactly as in
``test_dashboard_queries`` (the Grafana OpenSearch plugin's request), over the dashboard's
own default range (30 days).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from cali.quality.engines import DuckDbEngine
from cali.quality.publish import OpenSearchIndex, publish
from cali.quality.runner import run_quality
from cali.search import index as search_index
from tests.integration import test_dashboard_queries as grafana
from tests.support import quality_support as qs

pytestmark = pytest.mark.xdist_group("dashboard_queries")

BOARD = grafana.DASHBOARDS["quality"]
DATASOURCE = "cali-opensearch-quality"


class _MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.objects[key] = body
        return f"memory://{key}"

    def create_once(self, key: str) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = b""
        return True


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearch]:
    today = datetime.now(UTC).date()
    with OsmemServer.start() as server:
        os_client = OpenSearch(hosts=[server.url], timeout=30)
        with contextlib.suppress(search_index.IsmUnavailableError):
            search_index.apply(os_client, retention_days=14)
        index = OpenSearchIndex(os_client)
        for environment, edits in (("prod", []), ("staging", [qs.only("billing", qs.silent)])):
            root = qs.Week(Path(tmp_path_factory.mktemp(environment)), today_edits=edits).write().root
            report = run_quality(DuckDbEngine(root), qs.DAY, environment=environment)
            # The dashboard shows recent days: date the report yesterday.
            report = report.model_copy(update={"day": today - timedelta(days=1)})
            published = publish(report, store=_MemoryStore(), index=index, notifier=None)
            assert published.documents == 8
        os_client.indices.refresh(index="cali-quality-*")
        assert os_client.count(index="cali-quality-*")["count"] == 16
        yield os_client


@pytest.fixture
def thirty_days(monkeypatch: pytest.MonkeyPatch) -> None:
    # The dashboard's default range is now-30d; the shared translation reads these globals.
    monkeypatch.setattr(grafana, "RANGE_FROM", grafana.NOW - timedelta(days=30))
    monkeypatch.setattr(grafana, "INTERVAL", "1h")
    monkeypatch.setitem(grafana.INDEX_OF_DATASOURCE, DATASOURCE, "cali-quality-*")


def _targets() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{panel['title']} [{target['refId']}]", target)
        for panel in BOARD["panels"]
        for target in panel.get("targets", [])
        if target["datasource"]["uid"] == DATASOURCE
    ]


def test_every_panel_returns_data(client: OpenSearch, thirty_days: None) -> None:
    variables = {v["name"]: ["*"] for v in BOARD["templating"]["list"]}
    titles = []
    for title, target in _targets():
        grafana.run_target(client, target, variables)
        titles.append(title)
    assert len(titles) == 5


def test_variables_list_environments_and_checks(client: OpenSearch, thirty_days: None) -> None:
    variables: dict[str, list[str]] = {v["name"]: ["*"] for v in BOARD["templating"]["list"]}
    (environment, check) = BOARD["templating"]["list"]
    assert grafana.variable_values(client, environment, variables) == ["prod", "staging"]
    variables["environment"] = ["staging"]
    assert len(grafana.variable_values(client, check, variables)) == 8
    variables["check"] = ["volume"]
    failed = next(t for title, t in _targets() if title.startswith("Failed checks ["))
    result = grafana.run_target(client, failed, variables)
    assert result["aggregations"], "the silent service's failed volume check is counted"


def test_documents_carry_the_day(client: OpenSearch) -> None:
    hits = client.search(index="cali-quality-*", body={"size": 20})["hits"]["hits"]
    days = {hit["_source"]["@timestamp"][:10] for hit in hits}
    assert days == {str(datetime.now(UTC).date() - timedelta(days=1))}
    assert {hit["_id"].split("-")[0] for hit in hits} == {"prod", "staging"}
