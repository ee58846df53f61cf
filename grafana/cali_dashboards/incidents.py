"""The CALI / Incidents dashboard: incidents opened, analysed and alerted."""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart,
    piechart,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from cali_dashboards.common import (
    CALI_NAMESPACE,
    CLOUDWATCH_DS,
    INCIDENTS_DS,
    Grid,
    bars_by_level,
    cw_query,
    green_below,
    histogram,
    new_dashboard,
    os_query,
    terms,
    terms_variable,
    total_stat,
)

# --------------------------------------------------------------------------- incidents
INCIDENTS_FILTER = "environment:$environment AND services:$service"


def incidents() -> dash.Dashboard:
    grid = Grid()
    consumer = {"service": "log_consumer"}
    analyzer = {"service": "incident_analyzer"}
    lifecycle = {"service": "slack_interactions"}
    timers = {"service": "incident_lifecycle"}
    board = (
        new_dashboard(
            "cali-incidents",
            "CALI / Incidents",
            "What the AI said: incidents over time, alerts sent and suppressed, analysis latency, "
            "tokens, cost and degraded analyses.",
        )
        .with_variable(terms_variable("environment", "Environment", INCIDENTS_DS, "environment"))
        .with_variable(
            terms_variable(
                "service", "Service", INCIDENTS_DS, "services", depends_on="environment:$environment"
            )
        )
    )
    board = (
        board.with_panel(
            total_stat("Incidents analysed", INCIDENTS_DS, INCIDENTS_FILTER).grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat("Degraded analyses", INCIDENTS_DS, f"{INCIDENTS_FILTER} AND degraded:true")
            .description(
                "Incidents alerted without an LLM answer (timeout, budget spent, invalid output...)."
            )
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(green_below(1, "orange"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat("LLM cost", INCIDENTS_DS, INCIDENTS_FILTER, es.Sum().id("1").field("cost_usd"))
            .unit("currencyUSD")
            .decimals(2)
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat("Slack posts failed", INCIDENTS_DS, f"{INCIDENTS_FILTER} AND slack_status:failed")
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(green_below(1, "red"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            bars_by_level(
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
                os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Count().id("1")],
                    [terms("2", "services", size=15)],
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
                cw_query("A", CALI_NAMESPACE, "AlertsSent", consumer, "Sum", "Sent", match_exact=False)
            )
            .with_target(
                cw_query(
                    "B", CALI_NAMESPACE, "AlertsSuppressed", consumer, "Sum", "Suppressed", match_exact=False
                )
            )
            .with_target(
                cw_query(
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
                os_query(
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
                    [histogram("2")],
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
                os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Sum().id("1").field("total_tokens")],
                    [terms("3", "model", size=5), histogram("2")],
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
                os_query(
                    "A",
                    INCIDENTS_DS,
                    INCIDENTS_FILTER,
                    [es.Sum().id("1").field("cost_usd")],
                    [histogram("2")],
                    alias="Cost",
                )
            )
            .with_target(
                cw_query(
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
                os_query(
                    "A",
                    INCIDENTS_DS,
                    f"{INCIDENTS_FILTER} AND degraded:true",
                    [es.Count().id("1")],
                    [terms("3", "degraded_reason.keyword", size=10), histogram("2")],
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
                os_query(
                    "A",
                    INCIDENTS_DS,
                    f"{INCIDENTS_FILTER} AND degraded:false",
                    [es.Count().id("1")],
                    [terms("2", "confidence", size=3)],
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
                cw_query(
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
                cw_query("B", CALI_NAMESPACE, "TimeToResolve", lifecycle, "p50", "Resolve", match_exact=False)
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
                cw_query(
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
                cw_query(
                    "B", CALI_NAMESPACE, "IncidentResolved", lifecycle, "Sum", "Resolved", match_exact=False
                )
            )
            .with_target(
                cw_query(
                    "C", CALI_NAMESPACE, "IncidentEscalated", timers, "Sum", "Escalated", match_exact=False
                )
            )
            .with_target(
                cw_query(
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
                cw_query(
                    "E", CALI_NAMESPACE, "AnalysisHelpful", lifecycle, "Sum", "Helpful", match_exact=False
                )
            )
            .with_target(
                cw_query(
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
                os_query(
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
