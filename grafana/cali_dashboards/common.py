"""What every CALI dashboard shares: datasources, field names, the panel grid and the
query/panel/variable builders the three dashboards and the alert rules are made of."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    cloudwatch,
    stat,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import cloudwatch as cwm
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import elasticsearch as esm

GRAFANA_DIR = Path(__file__).resolve().parents[1]

# Datasource uids: the provisioning file declares exactly these (tests check both ways).
OPENSEARCH_TYPE = "grafana-opensearch-datasource"
CLOUDWATCH_TYPE = "cloudwatch"
LOGS_DS = dm.DataSourceRef(type_val=OPENSEARCH_TYPE, uid="cali-opensearch-logs")
INCIDENTS_DS = dm.DataSourceRef(type_val=OPENSEARCH_TYPE, uid="cali-opensearch-incidents")
CLOUDWATCH_DS = dm.DataSourceRef(type_val=CLOUDWATCH_TYPE, uid="cali-cloudwatch")
QUALITY_DS = dm.DataSourceRef(type_val=OPENSEARCH_TYPE, uid="cali-opensearch-quality")
EXPRESSION_DS = dm.DataSourceRef(type_val="__expr__", uid="__expr__")
DATASOURCE_UIDS = {ds.uid: ds.type_val for ds in (LOGS_DS, INCIDENTS_DS, CLOUDWATCH_DS, QUALITY_DS)}

TIME_FIELD = "@timestamp"
ERROR_LEVELS = "level:(ERROR OR FATAL)"
CALI_NAMESPACE = "CALI"
FOLDER = "CALI"
TAGS = ["cali"]

# Env variables that alert rule provisioning needs (Grafana interpolates ${NAME} in
# provisioning files; a literal $ is written $$).
ALERT_ENV_VARS = ("CALI_ENVIRONMENT", "CALI_KINESIS_STREAM_NAME", "CALI_CONSUMER_FUNCTION_NAME")


# --------------------------------------------------------------------------- helpers
class Grid:
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


def os_query(
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


def histogram(agg_id: str, interval: str = "auto") -> es.DateHistogram:
    return (
        es.DateHistogram()
        .id(agg_id)
        .field(TIME_FIELD)
        .settings(es.ElasticsearchDateHistogramSettings().interval(interval).min_doc_count("0"))
    )


def distinct_rows(datasource: dm.DataSourceRef, lucene: str, field: str) -> es.Dataquery:
    """One table row per distinct value; a stat panel counts the rows.

    A cardinality metric without a bucket aggregation is what one would write, but the
    OpenSearch plugin rejects metric queries that have no bucket aggregation.
    """
    return os_query("A", datasource, lucene, [es.Count().id("1")], [terms("2", field, size=500)])


def terms(agg_id: str, field: str, size: int = 10, order_by: str = "_count") -> es.Terms:
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


def total_stat(
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
        .with_target(os_query("A", datasource, lucene, [metric or es.Count().id("1")], [histogram("2")]))
        .reduce_options(cb.ReduceDataOptions().calcs(["sum"]))
    )


def distinct_stat(title: str, datasource: dm.DataSourceRef, lucene: str, field: str) -> stat.Panel:
    """A stat of how many distinct ``field`` values (up to 500) the time range has."""
    return (
        stat.Panel()
        .title(title)
        .datasource(datasource)
        .with_target(distinct_rows(datasource, lucene, field))
        .reduce_options(cb.ReduceDataOptions().calcs(["count"]))
    )


def bars_by_level(
    title: str, description: str, datasource: dm.DataSourceRef, lucene: str, levels: int
) -> timeseries.Panel:
    """Documents per interval as bars stacked by ``level`` (the ``levels`` most frequent)."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .with_target(
            os_query(
                "A",
                datasource,
                lucene,
                [es.Count().id("1")],
                [terms("3", "level", size=levels), histogram("2")],
                alias="{{term level}}",
            )
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    )


def green_below(value: float, color: str) -> dash.ThresholdsConfig:
    """Green under ``value``, ``color`` from ``value`` up."""
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(color="green", value=None), dm.Threshold(color=color, value=value)])
    )


def cw_query(  # noqa: PLR0917 - positional in the order of the CloudWatch query editor
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


def terms_variable(
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


def cw_dimension_variable(  # noqa: PLR0917 - positional in the order of the editor
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


def region_variable() -> dash.QueryVariable:
    return (
        dash.QueryVariable("region")
        .label("Region")
        .datasource(CLOUDWATCH_DS)
        .query({"queryType": "regions", "refId": "region-variable"})
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .current(dm.VariableOption(selected=True, text="default", value="default"))
    )


def new_dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
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
