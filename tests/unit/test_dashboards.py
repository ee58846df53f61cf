"""The committed Grafana files are what grafana/build.py generates, and they agree with each
other: datasource uids, template variables, index fields and metric names."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from cali.search import index as search_index
from cali_cli.commands.dashboards import REPO_ROOT, load_build_module, run

GRAFANA = REPO_ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
BUILTIN_DATASOURCES = {"__expr__", "-- Mixed --"}
# CloudWatch metrics the CALI functions publish (each function's doc lists them: docs/ingest.md,
# docs/incidents.md, docs/search.md, docs/analysis.md).
CALI_METRICS = {
    "RecordsIn",
    "RecordsInvalid",
    "RecordsFiltered",
    "RecordsKept",
    "ControlMessagesSkipped",
    "IncidentsOpened",
    "AlertsSent",
    "AlertsSuppressed",
    "AlertsFailOpen",
    "IncidentsAnalyzed",
    "AnalysisDegraded",
    "LlmTokens",
    "LlmCostUsd",
    "LlmLatencyMs",
    "AnalysisLatencyMs",
    "SlackPosted",
    "SlackFailed",
    "DocumentsIndexed",
    "DocumentsFailed",
    "AlertsMuted",
    "TimeToAcknowledge",
    "TimeToResolve",
    "IncidentAcknowledged",
    "IncidentResolved",
    "IncidentEscalated",
    "AnalysisHelpful",
    "AnalysisNotHelpful",
} | {f"Records{level}" for level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")}
INDEX_OF_DATASOURCE = {
    "cali-opensearch-logs": search_index.LOGS_TEMPLATE,
    "cali-opensearch-incidents": search_index.INCIDENTS_TEMPLATE,
    "cali-opensearch-quality": search_index.QUALITY_TEMPLATE,
}


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_build_module()


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARD_FILES}


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "cali.yaml").read_text())
    return {ds["uid"]: ds for ds in data["datasources"]}


@pytest.fixture(scope="module")
def alerts_text() -> str:
    return (GRAFANA / "provisioning" / "alerting" / "cali-alerts.yaml").read_text()


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def index_fields(template_name: str) -> set[str]:
    mapping = search_index.index_templates()[template_name]["template"]["mappings"]["properties"]
    fields = set()
    for name, spec in mapping.items():
        fields.add(name)
        fields.update(f"{name}.{sub}" for sub in spec.get("fields", {}))
    return fields


def lucene_fields(query: str) -> set[str]:
    return set(re.findall(r"([A-Za-z_@][\w.@]*):", query))


def test_committed_files_equal_regenerated(build: ModuleType) -> None:
    stale = build.stale_files()
    assert not stale, f"stale generated files, run `cali dashboards build`: {stale}"


def test_check_command_fails_on_a_stale_file(
    build: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argparse.Namespace(action="check")) == 0
    target = GRAFANA / "dashboards" / "operations.json"
    original = build.render_all

    def with_one_change() -> dict[Path, str]:
        files: dict[Path, str] = original()
        files[target] = files[target].replace("CALI / Operations", "CALI / Changed")
        return files

    monkeypatch.setattr(build, "render_all", with_one_change)
    monkeypatch.setattr("cali_cli.commands.dashboards.load_build_module", lambda: build)
    assert run(argparse.Namespace(action="check")) == 1
    assert "stale: grafana/dashboards/operations.json" in capsys.readouterr().err


def test_four_dashboards_with_unique_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"operations", "incidents", "pipeline-health", "quality"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == 4
    for board in dashboards.values():
        ids = [p["id"] for p in panels(board) if "id" in p]
        assert len(ids) == len(set(ids))
        assert list(panels(board)), board["title"]


def test_provisioned_datasources_match_the_code(build: ModuleType, datasources: dict[str, Any]) -> None:
    assert {uid: ds["type"] for uid, ds in datasources.items()} == build.DATASOURCE_UIDS
    for uid, index in (
        ("cali-opensearch-logs", "cali-logs-*"),
        ("cali-opensearch-incidents", "cali-incidents-*"),
    ):
        json_data = datasources[uid]["jsonData"]
        assert json_data["database"] == index
        assert json_data["timeField"] == "@timestamp"
        assert json_data["sigV4Auth"] is True
        assert json_data["flavor"] == "opensearch"


def test_every_panel_and_target_uses_an_existing_datasource(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, Any]
) -> None:
    known = set(datasources) | BUILTIN_DATASOURCES
    for board in dashboards.values():
        for panel in panels(board):
            assert panel.get("datasource", {}).get("uid") in known, panel["title"]
            assert panel.get("targets"), panel["title"]
            for target in panel["targets"]:
                uid = target["datasource"]["uid"]
                assert uid in known and uid != "-- Mixed --", (panel["title"], target)
                if uid in datasources:
                    assert target["datasource"]["type"] == datasources[uid]["type"]
                    if panel["datasource"]["uid"] != "-- Mixed --":
                        assert panel["datasource"]["uid"] == uid, panel["title"]
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] in datasources, variable["name"]


def test_variables_used_are_defined_and_consistent(dashboards: dict[str, dict[str, Any]]) -> None:
    by_name: dict[str, set[str]] = {}
    for board in dashboards.values():
        defined = {v["name"] for v in board["templating"]["list"]}
        text = json.dumps([*panels(board), board["templating"]["list"]])
        used = set(re.findall(r"\$(?!__)(\w+)", text)) - {"A", "B"}  # $A/$B: expression refs
        assert used <= defined, (board["title"], used - defined)
        assert defined <= used, (board["title"], "unused variables", defined - used)
        for variable in board["templating"]["list"]:
            query = variable["query"]
            if variable["datasource"]["type"] == "grafana-opensearch-datasource":
                # The plugin's metricFindQuery calls JSON.parse(query): it must be a JSON string.
                assert isinstance(query, str), variable["name"]
                query = json.loads(query)
                assert query["find"] == "terms"
            if isinstance(query, dict) and query.get("find") == "terms":
                by_name.setdefault(variable["name"], set()).add(json.dumps(variable["datasource"]))
                assert variable["includeAll"] and variable["allValue"] == "*"
    # environment exists on every OpenSearch dashboard and service on the logs and incidents
    # ones, so links keep the filter (the quality documents are per check, not per service).
    assert len(by_name["environment"]) == 3 and len(by_name["service"]) == 2


def test_opensearch_fields_exist_in_the_index_templates(dashboards: dict[str, dict[str, Any]]) -> None:
    variables = []
    for board in dashboards.values():
        variables += [v for v in board["templating"]["list"] if v["datasource"]["uid"] in INDEX_OF_DATASOURCE]
        for panel in panels(board):
            for target in panel["targets"]:
                uid = target["datasource"]["uid"]
                if uid not in INDEX_OF_DATASOURCE:
                    continue
                fields = index_fields(INDEX_OF_DATASOURCE[uid])
                used = lucene_fields(target["query"])
                used |= {a["field"] for a in target["bucketAggs"] + target["metrics"] if "field" in a}
                assert used <= fields, (panel["title"], used - fields)
    for variable in variables:
        fields = index_fields(INDEX_OF_DATASOURCE[variable["datasource"]["uid"]])
        query = json.loads(variable["query"])
        assert query["field"] in fields
        assert lucene_fields(query.get("query", "")) <= fields


def test_cloudwatch_queries_use_published_metrics(dashboards: dict[str, dict[str, Any]]) -> None:
    seen = set()
    for board in dashboards.values():
        for panel in panels(board):
            for target in panel["targets"]:
                if target["datasource"]["uid"] != "cali-cloudwatch":
                    continue
                seen.add((target["namespace"], target["metricName"]))
                if target["namespace"] == "CALI":
                    assert target["metricName"] in CALI_METRICS
                    assert set(target["dimensions"]) == {"service"}
                    assert target["dimensions"]["service"] in {
                        "log_consumer",
                        "incident_analyzer",
                        "knowledge_sync",
                        "log_indexer",
                        "slack_interactions",
                        "incident_lifecycle",
                    }
                assert re.fullmatch(r"[a-z][A-Za-z0-9_]*", target["id"])
    required = {
        ("AWS/Kinesis", "IncomingRecords"),
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Firehose", "DeliveryToAmazonOpenSearchService.Success"),
        ("AWS/Firehose", "DeliveryToS3.Success"),
        ("AWS/ES", "ClusterStatus.red"),
        ("AWS/ES", "ClusterStatus.yellow"),
        ("CALI", "AlertsSent"),
        ("CALI", "AlertsSuppressed"),
    }
    assert required <= seen, required - seen


def test_alert_rules_reference_existing_datasources_and_dashboards(
    build: ModuleType, alerts_text: str, datasources: dict[str, Any], dashboards: dict[str, dict[str, Any]]
) -> None:
    groups = yaml.safe_load(alerts_text)["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["uid"] for r in rules} == {
        "cali-error-rate-spike",
        "cali-pipeline-lag-kinesis",
        "cali-pipeline-lag-consumer",
    }
    uids = {d["uid"] for d in dashboards.values()}
    for rule in rules:
        refs = {q["refId"] for q in rule["data"]}
        assert rule["condition"] in refs
        for query in rule["data"]:
            assert query["datasourceUid"] in set(datasources) | {"__expr__"}
            if query["datasourceUid"] == "__expr__":
                # Expressions may only reference queries of the same rule ($$X in math).
                expression = query["model"]["expression"]
                used = (
                    set(re.findall(r"\$\$([A-Z])", expression))
                    if query["model"]["type"] == "math"
                    else {expression}
                )
                assert used and used <= refs - {query["refId"]}, (rule["uid"], expression)
            if query["datasourceUid"] != "__expr__":
                assert query["relativeTimeRange"]["from"] > query["relativeTimeRange"]["to"]
        assert rule["annotations"]["__dashboardUid__"] in uids
    # Grafana reads $NAME in provisioning files as an environment variable: every $ must be
    # an escaped literal ($$) or one of the documented variables.
    for match in re.finditer(r"\$(\$|\{(\w+)\}|\w+)", alerts_text):
        assert match.group(1) == "$" or match.group(2) in build.ALERT_ENV_VARS, match.group(0)
    docs = (REPO_ROOT / "docs" / "dashboards.md").read_text()
    assert all(name in docs for name in build.ALERT_ENV_VARS)


def test_dashboard_provider_points_at_a_folder(dashboards: dict[str, dict[str, Any]]) -> None:
    data = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cali.yaml").read_text())
    (provider,) = data["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# The OpenSearch plugin's names for metric columns (pkg/opensearch/response_parser.go).
PLUGIN_METRIC_NAMES = {
    "count": "Count",
    "avg": "Average",
    "sum": "Sum",
    "max": "Max",
    "min": "Min",
    "cardinality": "Unique Count",
    "percentiles": "Percentiles",
}


def table_columns(target: dict[str, Any]) -> set[str]:
    """Columns of a table (no date histogram) query: bucket fields, then metrics named by
    type, with the field appended only when a type appears more than once."""
    columns = {agg["field"] for agg in target["bucketAggs"]}
    types = [m["type"] for m in target["metrics"]]
    for metric in target["metrics"]:
        name = PLUGIN_METRIC_NAMES[metric["type"]]
        columns.add(f"{name} {metric['field']}" if types.count(metric["type"]) > 1 else name)
    return columns


def test_table_overrides_and_sorting_name_real_columns(dashboards: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for board in dashboards.values():
        for panel in panels(board):
            targets = [t for t in panel["targets"] if t["datasource"]["uid"] in INDEX_OF_DATASOURCE]
            if panel["type"] != "table" or not targets or not targets[0]["bucketAggs"]:
                continue
            columns = table_columns(targets[0])
            names = {
                o["matcher"]["options"]
                for o in panel["fieldConfig"]["overrides"]
                if o["matcher"]["id"] == "byName"
            }
            names |= {s["displayName"] for s in panel["options"].get("sortBy", [])}
            assert names <= columns, (panel["title"], names - columns)
            checked += 1
    assert checked, "no table panel was checked"
