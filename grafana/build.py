"""CALI's Grafana dashboards and alert rules, as code (grafana-foundation-sdk typed builders).

``cali dashboards build`` (or ``make dashboards``) writes every generated file listed by
:func:`render_all`; ``cali dashboards check`` fails when a committed file differs, and so
does ``tests/unit/test_dashboards.py``. Edit this module, never the generated JSON.

Grafana has no OpenSearch module in the SDK: OpenSearch panels use the Elasticsearch
dataquery builder, whose query model the ``grafana-opensearch-datasource`` plugin shares
(``query`` in Lucene, ``metrics``, ``bucketAggs``, ``timeField``), with ``queryType: lucene``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import alerting as alert
from grafana_foundation_sdk.builders import (
    barchart,
    cloudwatch,
    expr,
    logs,
    piechart,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import cloudwatch as cwm
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import elasticsearch as esm

GRAFANA_DIR = Path(__file__).resolve().parent

# Datasource uids: the provisioning file declares exactly these (tests check both ways).
OPENSEARCH_TYPE = "grafana-opensearch-datasource"
CLOUDWATCH_TYPE = "cloudwatch"
LOGS_DS = dm.DataSourceRef(type_val=OPENSEARCH_TYPE, uid="cali-opensearch-logs")
INCIDENTS_DS = dm.DataSourceRef(type_val=OPENSEARCH_TYPE, uid="cali-opensearch-incidents")
CLOUDWATCH_DS = dm.DataSourceRef(type_val=CLOUDWATCH_TYPE, uid="cali-cloudwatch")
EXPRESSION_DS = dm.DataSourceRef(type_val="__expr__", uid="__expr__")
DATASOURCE_UIDS = {ds.uid: ds.type_val for ds in (LOGS_DS, INCIDENTS_DS, CLOUDWATCH_DS)}

TIME_FIELD = "@timestamp"
ERROR_LEVELS = "level:(ERROR OR FATAL)"
CALI_NAMESPACE = "CALI"
FOLDER = "CALI"
TAGS = ["cali"]

# Env variables that alert rule provisioning needs (Grafana interpolates ${NAME} in
# provisioning files; a literal $ is written $$).
ALERT_ENV_VARS = ("CALI_ENVIRONMENT", "CALI_KINESIS_STREAM_NAME", "CALI_CONSUMER_FUNCTION_NAME")


# --------------------------------------------------------------------------- helpers
class _Grid:
    """Places panels left to right, wrapping at Grafana's 24 columns."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0

    def next(self, w: int, h: int) -> dm.GridPos:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = dm.GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def row(self) -> dm.GridPos:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = dm.GridPos(h=1, w=24, x=0, y=self.y)
        self.y += 1
        return pos


def _os_query(
    ref_id: str,
    datasource: dm.DataSourceRef,
    lucene: str,
    metrics: Sequence[Builder[Any]],
    buckets: Sequence[Builder[Any]] = (),
    *,
    alias: str | None = None,
    hide: bool = False,
) -> es.Dataquery:
    query = (
        es.Dataquery()
        .ref_id(ref_id)
        .datasource(datasource)
        .query_type("lucene")
        .query(lucene)
        .time_field(TIME_FIELD)
        .metrics(list(metrics))
        .bucket_aggs(list(buckets))
    )
    if alias:
        query = query.alias(alias)
    if hide:
        query = query.hide(True)
    return query


def _histogram(agg_id: str, interval: str = "auto") -> es.DateHistogram:
    return (
        es.DateHistogram()
        .id(agg_id)
        .field(TIME_FIELD)
        .settings(es.ElasticsearchDateHistogramSettings().interval(interval).min_doc_count("0"))
    )


def _distinct_rows(datasource: dm.DataSourceRef, lucene: str, field: str) -> es.Dataquery:
    """One table row per distinct value; a stat panel counts the rows.

    A cardinality metric without a bucket aggregation is what one would write, but the
    OpenSearch plugin rejects metric queries that have no bucket aggregation.
    """
    return _os_query("A", datasource, lucene, [es.Count().id("1")], [_terms("2", field, size=500)])


def _terms(agg_id: str, field: str, size: int = 10, order_by: str = "_count") -> es.Terms:
    return (
        es.Terms()
        .id(agg_id)
        .field(field)
        .settings(
            es.ElasticsearchTermsSettings()
            .size(str(size))
            .order(esm.TermsOrder.DESC)
            .order_by(order_by)
            .min_doc_count("1")
        )
    )


def _total_stat(
    title: str, datasource: dm.DataSourceRef, lucene: str, metric: Builder[Any] | None = None
) -> stat.Panel:
    """A stat of the time range's total: the document count (or ``metric``) per interval, summed.

    Per interval because the OpenSearch plugin rejects a metric query without a bucket
    aggregation.
    """
    return (
        stat.Panel()
        .title(title)
        .datasource(datasource)
        .with_target(_os_query("A", datasource, lucene, [metric or es.Count().id("1")], [_histogram("2")]))
        .reduce_options(cb.ReduceDataOptions().calcs(["sum"]))
    )


def _distinct_stat(title: str, datasource: dm.DataSourceRef, lucene: str, field: str) -> stat.Panel:
    """A stat of how many distinct ``field`` values (up to 500) the time range has."""
    return (
        stat.Panel()
        .title(title)
        .datasource(datasource)
        .with_target(_distinct_rows(datasource, lucene, field))
        .reduce_options(cb.ReduceDataOptions().calcs(["count"]))
    )


def _bars_by_level(
    title: str, description: str, datasource: dm.DataSourceRef, lucene: str, levels: int
) -> timeseries.Panel:
    """Documents per interval as bars stacked by ``level`` (the ``levels`` most frequent)."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .with_target(
            _os_query(
                "A",
                datasource,
                lucene,
                [es.Count().id("1")],
                [_terms("3", "level", size=levels), _histogram("2")],
                alias="{{term level}}",
            )
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    )


def _green_below(value: float, color: str) -> dash.ThresholdsConfig:
    """Green under ``value``, ``color`` from ``value`` up."""
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(color="green", value=None), dm.Threshold(color=color, value=value)])
    )


def _cw_query(  # noqa: PLR0917 - positional in the order of the CloudWatch query editor
    ref_id: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, str],
    statistic: str,
    label: str,
    region: str = "default",
    match_exact: bool = True,
) -> cloudwatch.CloudWatchMetricsQuery:
    return (
        cloudwatch.CloudWatchMetricsQuery()
        .ref_id(ref_id)
        .datasource(CLOUDWATCH_DS)
        .query_mode(cwm.CloudWatchQueryMode.METRICS)
        .metric_query_type(cwm.MetricQueryType.SEARCH)
        .metric_editor_mode(cwm.MetricEditorMode.BUILDER)
        .id(ref_id.lower())
        .region(region)
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(dict(dimensions))
        .match_exact(match_exact)
        .statistic(statistic)
        .period("")
        .label(label)
    )


def _terms_variable(
    name: str, label: str, datasource: dm.DataSourceRef, field: str, depends_on: str | None = None
) -> dash.QueryVariable:
    query: dict[str, object] = {"find": "terms", "field": field, "size": 500}
    if depends_on:
        query["query"] = depends_on
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(datasource)
        # A JSON *string*: the plugin's metricFindQuery runs JSON.parse on it.
        .query(json.dumps(query))
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value("*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def _cw_dimension_variable(  # noqa: PLR0917 - positional in the order of the editor
    name: str, label: str, namespace: str, metric: str, dimension: str, regex: str
) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(CLOUDWATCH_DS)
        .query(
            {
                "queryType": "dimensionValues",
                "refId": f"{name}-variable",
                "region": "$region",
                "namespace": namespace,
                "metricName": metric,
                "dimensionKey": dimension,
                "dimensionFilters": {},
            }
        )
        .regex(regex)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def _region_variable() -> dash.QueryVariable:
    return (
        dash.QueryVariable("region")
        .label("Region")
        .datasource(CLOUDWATCH_DS)
        .query({"queryType": "regions", "refId": "region-variable"})
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .current(dm.VariableOption(selected=True, text="default", value="default"))
    )


def _dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("CALI dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


# --------------------------------------------------------------------------- operations
OPERATIONS_FILTER = "environment:$environment AND service:$service AND level:$level"
OPERATIONS_ERRORS = f"environment:$environment AND service:$service AND {ERROR_LEVELS}"


def operations() -> dash.Dashboard:
    grid = _Grid()
    board = (
        _dashboard(
            "cali-operations",
            "CALI / Operations",
            "What is failing where: log volume, error rates and the error fingerprints behind them.",
        )
        .with_variable(_terms_variable("environment", "Environment", LOGS_DS, "environment"))
        .with_variable(
            _terms_variable("service", "Service", LOGS_DS, "service", depends_on="environment:$environment")
        )
        .with_variable(
            _terms_variable(
                "level", "Level", LOGS_DS, "level", depends_on="environment:$environment AND service:$service"
            )
        )
    )
    board = (
        board.with_panel(
            _total_stat("Log lines", LOGS_DS, OPERATIONS_FILTER)
            .description("Documents indexed in the time range for the selected filters.")
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _total_stat("Errors", LOGS_DS, OPERATIONS_ERRORS)
            .description("ERROR and FATAL lines in the time range.")
            .unit("short")
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(_green_below(1, "red"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _distinct_stat("Distinct error fingerprints", LOGS_DS, OPERATIONS_ERRORS, "fingerprint")
            .description(
                "How many different error templates occurred (up to 500): a new one is often a new bug."
            )
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _distinct_stat("Services logging", LOGS_DS, OPERATIONS_FILTER, "service")
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _bars_by_level(
                "Log volume by level", "Lines per interval, stacked by level.", LOGS_DS, OPERATIONS_FILTER, 10
            )
            .unit("short")
            .grid_pos(grid.next(12, 9))
        )
        .with_panel(
            timeseries.Panel()
            .title("Error rate per service")
            .description(
                "ERROR+FATAL lines as a percentage of all lines of each service "
                "(A / B with a Grafana math expression)."
            )
            .datasource(LOGS_DS)
            .with_target(
                _os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [es.Count().id("1")],
                    [_terms("3", "service", size=20), _histogram("2")],
                    alias="{{term service}}",
                    hide=True,
                )
            )
            .with_target(
                _os_query(
                    "B",
                    LOGS_DS,
                    "environment:$environment AND service:$service",
                    [es.Count().id("1")],
                    [_terms("3", "service", size=20), _histogram("2")],
                    alias="{{term service}}",
                    hide=True,
                )
            )
            .with_target(expr.TypeMath().ref_id("C").datasource(EXPRESSION_DS).expression("$A / $B * 100"))
            .unit("percent")
            .min(0)
            .grid_pos(grid.next(12, 9))
        )
        .with_panel(
            table.Panel()
            .title("Top error fingerprints")
            .description(
                "Error templates ranked by occurrences: the fingerprint groups lines that differ only "
                "in ids, numbers and timestamps."
            )
            .datasource(LOGS_DS)
            .with_target(
                _os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [
                        es.Count().id("1"),
                        es.UniqueCount().id("4").field("service"),
                        es.Max().id("5").field(TIME_FIELD),
                    ],
                    [_terms("2", "fingerprint", size=20), _terms("3", "template.keyword", size=1)],
                )
            )
            # Column names as the plugin's table parser gives them: the metric type alone
            # while each type appears once ("Max", not "Max @timestamp").
            .override_by_name(
                "Max",
                [
                    dm.DynamicConfigValue(id_val="unit", value="dateTimeAsIso"),
                    dm.DynamicConfigValue(id_val="displayName", value="Last seen"),
                ],
            )
            .override_by_name("Unique Count", [dm.DynamicConfigValue(id_val="displayName", value="Services")])
            .override_by_name(
                "template.keyword", [dm.DynamicConfigValue(id_val="displayName", value="Template")]
            )
            .sort_by([cb.TableSortByFieldState().display_name("Count").desc(True)])
            .grid_pos(grid.next(24, 10))
        )
        .with_panel(
            barchart.Panel()
            .title("Errors by service")
            .datasource(LOGS_DS)
            .with_target(
                _os_query(
                    "A", LOGS_DS, OPERATIONS_ERRORS, [es.Count().id("1")], [_terms("2", "service", size=15)]
                )
            )
            .orientation(common.VizOrientation.HORIZONTAL)
            .x_field("service")
            .grid_pos(grid.next(8, 10))
        )
        .with_panel(
            logs.Panel()
            .title("Recent errors")
            .description("The latest ERROR and FATAL lines; expand one for trace_id, host and stack trace.")
            .datasource(LOGS_DS)
            .with_target(
                _os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [es.Logs().id("1").settings(es.ElasticsearchLogsSettings().limit("100"))],
                    # The plugin rejects a non-document query without bucket aggregations; for
                    # logs it then draws its own volume histogram.
                    [_histogram("2")],
                )
            )
            .show_time(True)
            .wrap_log_message(True)
            .enable_log_details(True)
            .sort_order(common.LogsSortOrder.DESCENDING)
            .grid_pos(grid.next(16, 10))
        )
    )
    return board


# --------------------------------------------------------------------------- incidents
INCIDENTS_FILTER = "environment:$environment AND services:$service"


def incidents() -> dash.Dashboard:
    grid = _Grid()
    consumer = {"service": "log_consumer"}
    analyzer = {"service": "incident_analyzer"}
    lifecycle = {"service": "slack_interactions"}
    timers = {"service": "incident_lifecycle"}
    board = (
        _dashboard(
            "cali-incidents",
            "CALI / Incidents",
            "What the AI said: incidents over time, alerts sent and suppressed, analysis latency, "
            "tokens, cost and degraded analyses.",
        )
        .with_variable(_terms_variable("environment", "Environment", INCIDENTS_DS, "environment"))
        .with_variable(
            _terms_variable(
                "service", "Service", INCIDENTS_DS, "services", depends_on="environment:$environment"
            )
        )
    )
    board = (
        board.with_panel(
            _total_stat("Incidents analysed", INCIDENTS_DS, INCIDENTS_FILTER).grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _total_stat("Degraded analyses", INCIDENTS_DS, f"{INCIDENTS_FILTER} AND degraded:true")
            .description(
                "Incidents alerted without an LLM answer (timeout, budget spent, invalid output...)."
            )
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(_green_below(1, "orange"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _total_stat("LLM cost", INCIDENTS_DS, INCIDENTS_FILTER, es.Sum().id("1").field("cost_usd"))
            .unit("currencyUSD")
            .decimals(2)
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _total_stat("Slack posts failed", INCIDENTS_DS, f"{INCIDENTS_FILTER} AND slack_status:failed")
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(_green_below(1, "red"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            _bars_by_level(
                "Incidents over time",
                "Analysed incidents per interval, by level.",
                INCIDENTS_DS,
                INCIDENTS_FILTER,
                5,
            ).grid_pos(grid.next(12, 8))
        )
        .with_panel(
            barchart.Panel()
            .title("Incidents by service")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Count().id("1")],
                    [_terms("2", "services", size=15)],
                )
            )
            .orientation(common.VizOrientation.HORIZONTAL)
            .x_field("services")
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("Alerts sent vs suppressed")
            .description(
                "From the log consumer's CloudWatch metrics: suppressed alerts are repeats inside the "
                "throttle window; fail-open alerts were sent while the state table was unavailable."
            )
            .datasource(CLOUDWATCH_DS)
            .with_target(
                _cw_query("A", CALI_NAMESPACE, "AlertsSent", consumer, "Sum", "Sent", match_exact=False)
            )
            .with_target(
                _cw_query(
                    "B", CALI_NAMESPACE, "AlertsSuppressed", consumer, "Sum", "Suppressed", match_exact=False
                )
            )
            .with_target(
                _cw_query(
                    "C", CALI_NAMESPACE, "AlertsFailOpen", consumer, "Sum", "Fail-open", match_exact=False
                )
            )
            .draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(70)
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("AI analysis latency")
            .description("End-to-end analysis time and the LLM call inside it (average and p95).")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [
                        es.Average().id("1").field("analysis_latency_ms"),
                        es.Percentiles()
                        .id("3")
                        .field("analysis_latency_ms")
                        .settings(es.ElasticsearchPercentilesSettings().percents(["95"])),
                        es.Average().id("4").field("llm_latency_ms"),
                    ],
                    [_histogram("2")],
                )
            )
            .unit("ms")
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("LLM tokens by model")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Sum().id("1").field("total_tokens")],
                    [_terms("3", "model", size=5), _histogram("2")],
                    alias="{{term model}}",
                )
            )
            .draw_style(common.GraphDrawStyle.BARS)
            .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
            .unit("short")
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("LLM cost")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Sum().id("1").field("cost_usd")],
                    [_histogram("2")],
                    alias="Cost",
                )
            )
            .with_target(
                _cw_query(
                    "B", CALI_NAMESPACE, "LlmCostUsd", analyzer, "Sum", "Cost (CloudWatch)", match_exact=False
                )
            )
            .datasource(dm.DataSourceRef(type_val="datasource", uid="-- Mixed --"))
            .unit("currencyUSD")
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("Degraded analyses by reason")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    f"{INCIDENTS_FILTER} AND degraded:true",
                    [es.Count().id("1")],
                    [_terms("3", "degraded_reason.keyword", size=10), _histogram("2")],
                    alias="{{term degraded_reason.keyword}}",
                )
            )
            .draw_style(common.GraphDrawStyle.BARS)
            .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            piechart.Panel()
            .title("Analysis confidence")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    f"{INCIDENTS_FILTER} AND degraded:false",
                    [es.Count().id("1")],
                    [_terms("2", "confidence", size=3)],
                )
            )
            .reduce_options(cb.ReduceDataOptions().calcs(["sum"]).values(True))
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("Time to acknowledge and resolve")
            .description(
                "Median seconds from the alert (or its regression) to the first acknowledgement and to "
                "the resolution entered in Slack or with `cali incident`."
            )
            .datasource(CLOUDWATCH_DS)
            .with_target(
                _cw_query(
                    "A",
                    CALI_NAMESPACE,
                    "TimeToAcknowledge",
                    lifecycle,
                    "p50",
                    "Acknowledge",
                    match_exact=False,
                )
            )
            .with_target(
                _cw_query(
                    "B", CALI_NAMESPACE, "TimeToResolve", lifecycle, "p50", "Resolve", match_exact=False
                )
            )
            .unit("s")
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            timeseries.Panel()
            .title("Lifecycle actions and analysis votes")
            .description(
                "Acknowledged, resolved, escalated and muted incidents, and whether people found the AI "
                "analysis helpful (the buttons under every alert)."
            )
            .datasource(CLOUDWATCH_DS)
            .with_target(
                _cw_query(
                    "A",
                    CALI_NAMESPACE,
                    "IncidentAcknowledged",
                    lifecycle,
                    "Sum",
                    "Acknowledged",
                    match_exact=False,
                )
            )
            .with_target(
                _cw_query(
                    "B", CALI_NAMESPACE, "IncidentResolved", lifecycle, "Sum", "Resolved", match_exact=False
                )
            )
            .with_target(
                _cw_query(
                    "C", CALI_NAMESPACE, "IncidentEscalated", timers, "Sum", "Escalated", match_exact=False
                )
            )
            .with_target(
                _cw_query(
                    "D",
                    CALI_NAMESPACE,
                    "AlertsMuted",
                    analyzer,
                    "Sum",
                    "Held back (muted)",
                    match_exact=False,
                )
            )
            .with_target(
                _cw_query(
                    "E", CALI_NAMESPACE, "AnalysisHelpful", lifecycle, "Sum", "Helpful", match_exact=False
                )
            )
            .with_target(
                _cw_query(
                    "F",
                    CALI_NAMESPACE,
                    "AnalysisNotHelpful",
                    lifecycle,
                    "Sum",
                    "Not helpful",
                    match_exact=False,
                )
            )
            .draw_style(common.GraphDrawStyle.BARS)
            .grid_pos(grid.next(12, 8))
        )
        .with_panel(
            table.Panel()
            .title("Recent incidents")
            .description("The latest analyses with the AI's summary and root cause.")
            .datasource(INCIDENTS_DS)
            .with_target(
                _os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.RawData().id("1").settings(es.ElasticsearchRawDataSettings().size("50"))],
                )
            )
            .with_transformation(
                dm.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "indexByName": {
                            "@timestamp": 0,
                            "level": 1,
                            "services": 2,
                            "count": 3,
                            "summary": 4,
                            "root_cause": 5,
                            "confidence": 6,
                            "degraded_reason": 7,
                            "slack_status": 8,
                            "incident_id": 9,
                        },
                        "excludeByName": {
                            "_id": True,
                            "_index": True,
                            "_type": True,
                            "highlight": True,
                            "sort": True,
                            "next_actions": True,
                            "cited_ids": True,
                            "hosts": True,
                            "template": True,
                        },
                    },
                )
            )
            .grid_pos(grid.next(24, 10))
        )
    )
    return board


# --------------------------------------------------------------------------- pipeline health
def pipeline_health() -> dash.Dashboard:
    grid = _Grid()
    region = "$region"
    streams = {"StreamName": "$stream"}
    functions = {"FunctionName": "$function"}
    board = (
        _dashboard(
            "cali-pipeline-health",
            "CALI / Pipeline health",
            "Is the pipeline itself healthy: Kinesis, Lambda, DLQ, Firehose and OpenSearch, from CloudWatch.",
        )
        .with_variable(_region_variable())
        .with_variable(
            _cw_dimension_variable(
                "stream", "Kinesis stream", "AWS/Kinesis", "IncomingRecords", "StreamName", "/cali/i"
            )
        )
        .with_variable(
            _cw_dimension_variable(
                "function", "Lambda function", "AWS/Lambda", "Invocations", "FunctionName", "/cali/i"
            )
        )
        .with_variable(
            _cw_dimension_variable(
                "dlq",
                "Dead-letter queue",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                "/cali.*dlq/i",
            )
        )
        .with_variable(
            _cw_dimension_variable(
                "delivery_stream",
                "Firehose stream",
                "AWS/Firehose",
                "IncomingRecords",
                "DeliveryStreamName",
                "/cali/i",
            )
        )
        .with_variable(
            _cw_dimension_variable(
                "domain", "OpenSearch domain", "AWS/ES", "ClusterStatus.red", "DomainName", "/cali/i"
            )
        )
    )

    def cw_panel(title: str, description: str, unit: str, *targets: cloudwatch.CloudWatchMetricsQuery) -> Any:
        panel = (
            timeseries.Panel()
            .title(title)
            .description(description)
            .datasource(CLOUDWATCH_DS)
            .unit(unit)
            .grid_pos(grid.next(8, 8))
        )
        for target in targets:
            panel = panel.with_target(target)
        return panel

    board = (
        board.with_row(dash.Row("Ingestion").grid_pos(grid.row()))
        .with_panel(
            cw_panel(
                "Kinesis incoming records",
                "Records Fluent Bit put into the log stream.",
                "short",
                _cw_query(
                    "A", "AWS/Kinesis", "IncomingRecords", streams, "Sum", "${PROP('Dim.StreamName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Kinesis iterator age",
                "How far the slowest consumer is behind the tip of the stream: pipeline lag.",
                "ms",
                _cw_query(
                    "A",
                    "AWS/Kinesis",
                    "GetRecords.IteratorAgeMilliseconds",
                    streams,
                    "Maximum",
                    "${PROP('Dim.StreamName')}",
                    region,
                ),
            )
            .thresholds(_green_below(60000, "red"))
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE))
        )
        .with_panel(
            cw_panel(
                "CALI records in / invalid / kept",
                "Log consumer counters: invalid records go to the DLQ with a reason.",
                "short",
                _cw_query(
                    "A", CALI_NAMESPACE, "RecordsIn", {"service": "log_consumer"}, "Sum", "In", region, False
                ),
                _cw_query(
                    "B",
                    CALI_NAMESPACE,
                    "RecordsInvalid",
                    {"service": "log_consumer"},
                    "Sum",
                    "Invalid",
                    region,
                    False,
                ),
                _cw_query(
                    "C",
                    CALI_NAMESPACE,
                    "RecordsKept",
                    {"service": "log_consumer"},
                    "Sum",
                    "Kept",
                    region,
                    False,
                ),
            )
        )
        .with_row(dash.Row("Lambda").grid_pos(grid.row()))
        .with_panel(
            cw_panel(
                "Lambda errors",
                "Failed invocations per function.",
                "short",
                _cw_query(
                    "A", "AWS/Lambda", "Errors", functions, "Sum", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda duration (p99)",
                "Slowest invocations per function; compare with the function timeout.",
                "ms",
                _cw_query(
                    "A", "AWS/Lambda", "Duration", functions, "p99", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda throttles",
                "Invocations refused for lack of concurrency.",
                "short",
                _cw_query(
                    "A", "AWS/Lambda", "Throttles", functions, "Sum", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda iterator age",
                "Age of the last record each stream-triggered function processed.",
                "ms",
                _cw_query(
                    "A",
                    "AWS/Lambda",
                    "IteratorAge",
                    functions,
                    "Maximum",
                    "${PROP('Dim.FunctionName')}",
                    region,
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Dead-letter queue depth",
                "Messages waiting in the dead-letter queues: each one is work a person must look at.",
                "short",
                _cw_query(
                    "A",
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    {"QueueName": "$dlq"},
                    "Maximum",
                    "${PROP('Dim.QueueName')}",
                    region,
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Indexer documents",
                "Documents the log_indexer Firehose transform produced or failed.",
                "short",
                _cw_query(
                    "A",
                    CALI_NAMESPACE,
                    "DocumentsIndexed",
                    {"service": "log_indexer"},
                    "Sum",
                    "Indexed",
                    region,
                    False,
                ),
                _cw_query(
                    "B",
                    CALI_NAMESPACE,
                    "DocumentsFailed",
                    {"service": "log_indexer"},
                    "Sum",
                    "Failed",
                    region,
                    False,
                ),
            )
        )
        .with_row(dash.Row("Delivery and search").grid_pos(grid.row()))
        .with_panel(
            cw_panel(
                "Firehose delivery success",
                "Share of successful deliveries to OpenSearch and to the S3 archive (1 = all delivered).",
                "percentunit",
                _cw_query(
                    "A",
                    "AWS/Firehose",
                    "DeliveryToAmazonOpenSearchService.Success",
                    {"DeliveryStreamName": "$delivery_stream"},
                    "Average",
                    "${PROP('Dim.DeliveryStreamName')} to OpenSearch",
                    region,
                ),
                _cw_query(
                    "B",
                    "AWS/Firehose",
                    "DeliveryToS3.Success",
                    {"DeliveryStreamName": "$delivery_stream"},
                    "Average",
                    "${PROP('Dim.DeliveryStreamName')} to S3",
                    region,
                ),
            )
            .min(0)
            .max(1)
        )
        .with_panel(
            cw_panel(
                "OpenSearch cluster status",
                "1 while the domain is red (a primary shard is unassigned) or yellow (a replica is).",
                "short",
                _cw_query(
                    "A",
                    "AWS/ES",
                    "ClusterStatus.red",
                    {"DomainName": "$domain"},
                    "Maximum",
                    "red",
                    region,
                    match_exact=False,
                ),
                _cw_query(
                    "B",
                    "AWS/ES",
                    "ClusterStatus.yellow",
                    {"DomainName": "$domain"},
                    "Maximum",
                    "yellow",
                    region,
                    match_exact=False,
                ),
            )
            .min(0)
            .max(1)
            .override_by_name(
                "red", [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})]
            )
            .override_by_name(
                "yellow",
                [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "yellow"})],
            )
        )
        .with_panel(
            timeseries.Panel()
            .title("Log documents indexed")
            .description(
                "Documents that reached the cali-logs indices per interval (OpenSearch view of ingestion)."
            )
            .datasource(LOGS_DS)
            .with_target(
                _os_query("A", LOGS_DS, "*", [es.Count().id("1")], [_histogram("2")], alias="Documents")
            )
            .unit("short")
            .grid_pos(grid.next(8, 8))
        )
    )
    return board


# --------------------------------------------------------------------------- alert rules
def _alert_query(
    ref_id: str, datasource_uid: str, model: Builder[Any], seconds: tuple[int, int]
) -> alert.Query:
    from grafana_foundation_sdk.models import alerting as am

    return (
        alert.Query(ref_id)
        .datasource_uid(datasource_uid)
        .relative_time_range(am.RelativeTimeRange(from_val=seconds[0], to=seconds[1]))
        .model(model)
    )


def _expr_query(ref_id: str, model: Builder[Any]) -> alert.Query:
    return alert.Query(ref_id).datasource_uid("__expr__").model(model)


def alert_rules() -> list[alert.Rule]:
    env_filter = "environment:${CALI_ENVIRONMENT}"
    errors = _os_query(
        "A",
        LOGS_DS,
        f"{env_filter} AND {ERROR_LEVELS}",
        [es.Count().id("1")],
        [_terms("3", "service", size=50), _histogram("2", "1m")],
    )
    baseline = _os_query(
        "B",
        LOGS_DS,
        f"{env_filter} AND {ERROR_LEVELS}",
        [es.Count().id("1")],
        [_terms("3", "service", size=50), _histogram("2", "5m")],
    )
    spike = (
        alert.Rule("CALI: error-rate spike")
        .uid("cali-error-rate-spike")
        .condition("E")
        .with_query(_alert_query("A", LOGS_DS.uid or "", errors, (300, 0)))
        .with_query(_alert_query("B", LOGS_DS.uid or "", baseline, (3900, 300)))
        .with_query(_expr_query("C", expr.TypeReduce().ref_id("C").expression("A").reducer("sum")))
        .with_query(_expr_query("D", expr.TypeReduce().ref_id("D").expression("B").reducer("sum")))
        # $$ is a literal $ in provisioning files: Grafana would read $C as an env variable.
        .with_query(
            _expr_query("E", expr.TypeMath().ref_id("E").expression("$$C >= 20 && $$C > 3 * ($$D / 12)"))
        )
        .for_val("5m")
        .no_data_state("OK")
        .exec_err_state("Error")
        .labels({"team": "platform", "severity": "warning", "source": "cali"})
        .annotations(
            {
                "summary": "Errors of {{ $$labels.service }} spiked: {{ $$values.C }} in 5 min",
                "description": "ERROR/FATAL lines of {{ $$labels.service }} in the last 5 minutes are more "
                "than three times the hourly baseline (and at least 20). Open the CALI / Operations "
                "dashboard filtered on the service.",
                "__dashboardUid__": "cali-operations",
            }
        )
    )
    kinesis_lag = _cw_query(
        "A",
        "AWS/Kinesis",
        "GetRecords.IteratorAgeMilliseconds",
        {"StreamName": "${CALI_KINESIS_STREAM_NAME}"},
        "Maximum",
        "iterator age",
    ).period("60")
    lambda_lag = _cw_query(
        "A",
        "AWS/Lambda",
        "IteratorAge",
        {"FunctionName": "${CALI_CONSUMER_FUNCTION_NAME}"},
        "Maximum",
        "iterator age",
    ).period("60")
    lag_rules = []
    for uid, title, model in (
        ("cali-pipeline-lag-kinesis", "CALI: pipeline lag (Kinesis iterator age)", kinesis_lag),
        ("cali-pipeline-lag-consumer", "CALI: pipeline lag (log consumer IteratorAge)", lambda_lag),
    ):
        lag_rules.append(
            alert.Rule(title)
            .uid(uid)
            .condition("C")
            .with_query(_alert_query("A", CLOUDWATCH_DS.uid or "", model, (900, 0)))
            .with_query(_expr_query("B", expr.TypeReduce().ref_id("B").expression("A").reducer("max")))
            .with_query(
                _expr_query(
                    "C",
                    expr.TypeThreshold()
                    .ref_id("C")
                    .expression("B")
                    .conditions(
                        [
                            expr.ExprTypeThresholdConditions().evaluator(
                                expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([60000.0])
                            )
                        ]
                    ),
                )
            )
            .for_val("10m")
            .no_data_state("NoData")
            .exec_err_state("Error")
            .labels({"team": "platform", "severity": "critical", "source": "cali"})
            .annotations(
                {
                    "summary": "CALI is more than a minute behind the log stream ({{ $$values.B }} ms)",
                    "description": "Records wait in Kinesis longer than 60 s: check Lambda errors "
                    "and throttles on the CALI / Pipeline health dashboard.",
                    "__dashboardUid__": "cali-pipeline-health",
                }
            )
        )
    return [spike, *lag_rules]


def alert_provisioning() -> dict[str, Any]:
    """Grafana's file-provisioning format for alert rules (``provisioning/alerting``)."""
    rules = []
    for rule in alert_rules():
        payload = json.loads(json.dumps(rule.build(), cls=JSONEncoder))
        rules.append(
            {
                "uid": payload["uid"],
                "title": payload["title"],
                "condition": payload["condition"],
                "data": payload["data"],
                "noDataState": payload["noDataState"],
                "execErrState": payload["execErrState"],
                "for": payload["for"],
                "labels": payload["labels"],
                "annotations": payload["annotations"],
                "isPaused": False,
            }
        )
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": "cali", "folder": FOLDER, "interval": "1m", "rules": rules}],
    }


# --------------------------------------------------------------------------- rendering
DASHBOARDS = {
    "operations": operations,
    "incidents": incidents,
    "pipeline-health": pipeline_health,
}

_HEADER = (
    "# Generated by grafana/build.py (`cali dashboards build`): edit that file, not this one.\n"
    "# ${CALI_*} are environment variables Grafana substitutes when it loads this file;\n"
    "# $$ is a literal $ in Grafana provisioning files.\n"
)


def dashboard_json(name: str) -> dict[str, Any]:
    built = DASHBOARDS[name]().build()
    data: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    for panel in data.get("panels", []):
        for inner in panel.get("panels", [panel]):
            for target in inner.get("targets", []):
                if target.get("datasource", {}).get("type") == OPENSEARCH_TYPE:
                    _opensearch_dialect(target)
    for variable in data.get("templating", {}).get("list", []):
        # The SDK sets interval-variable defaults on every variable; Grafana's schema has no
        # such keys for query variables, so they are dropped rather than shipped as noise.
        if variable.get("type") != "interval":
            for key in ("auto", "auto_min", "auto_count"):
                variable.pop(key, None)
    return data


def _opensearch_dialect(target: dict[str, Any]) -> None:
    """Settings the OpenSearch plugin reads differently from the Elasticsearch model.

    Its backend takes the logs line count from ``settings.size`` (Elasticsearch: ``limit``)
    and sorts raw data by ``settings.order``, which the Elasticsearch builder cannot set.
    """
    for metric in target.get("metrics", []):
        if metric["type"] == "logs":
            settings = metric.setdefault("settings", {})
            settings["size"] = settings.pop("limit", "500")
        elif metric["type"] in ("raw_data", "raw_document"):
            metric.setdefault("settings", {}).setdefault("order", "desc")


def render_all() -> dict[Path, str]:
    """Every generated file (absolute path -> exact content)."""
    files: dict[Path, str] = {}
    for name in DASHBOARDS:
        data = dashboard_json(name)
        text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        files[GRAFANA_DIR / "dashboards" / f"{name}.json"] = text
    files[GRAFANA_DIR / "provisioning" / "alerting" / "cali-alerts.yaml"] = _HEADER + yaml.safe_dump(
        alert_provisioning(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def schema_check_source(name: str, dashboard_text: str) -> str:
    """A TypeScript module that type-checks one dashboard's JSON against @grafana/schema.

    Written next to ``grafana/schema-check/json-schema.ts`` (in a scratch copy of that
    folder) by the schema test; generated on the fly rather than committed, so the JSON
    stays the single source.
    """
    ident = name.replace("-", "_")
    return (
        'import type { DashboardJson } from "./json-schema";\n\n'
        f"export const {ident} = {dashboard_text.rstrip()} satisfies DashboardJson;\n"
    )


def stale_files() -> list[Path]:
    """Generated files whose committed content differs from what this module renders."""
    return [
        path
        for path, text in render_all().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write_all() -> list[Path]:
    written = []
    for path, text in render_all().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(f"wrote {written_path}")
