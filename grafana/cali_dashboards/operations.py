"""The CALI / Operations dashboard: log volume, levels and errors per service."""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart,
    expr,
    logs,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from cali_dashboards.common import (
    ERROR_LEVELS,
    EXPRESSION_DS,
    LOGS_DS,
    TIME_FIELD,
    Grid,
    bars_by_level,
    distinct_stat,
    green_below,
    histogram,
    new_dashboard,
    os_query,
    terms,
    terms_variable,
    total_stat,
)

# --------------------------------------------------------------------------- operations
OPERATIONS_FILTER = "environment:$environment AND service:$service AND level:$level"
OPERATIONS_ERRORS = f"environment:$environment AND service:$service AND {ERROR_LEVELS}"


def operations() -> dash.Dashboard:
    grid = Grid()
    board = (
        new_dashboard(
            "cali-operations",
            "CALI / Operations",
            "What is failing where: log volume, error rates and the error fingerprints behind them.",
        )
        .with_variable(terms_variable("environment", "Environment", LOGS_DS, "environment"))
        .with_variable(
            terms_variable("service", "Service", LOGS_DS, "service", depends_on="environment:$environment")
        )
        .with_variable(
            terms_variable(
                "level", "Level", LOGS_DS, "level", depends_on="environment:$environment AND service:$service"
            )
        )
    )
    board = (
        board.with_panel(
            total_stat("Log lines", LOGS_DS, OPERATIONS_FILTER)
            .description("Documents indexed in the time range for the selected filters.")
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat("Errors", LOGS_DS, OPERATIONS_ERRORS)
            .description("ERROR and FATAL lines in the time range.")
            .unit("short")
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(green_below(1, "red"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            distinct_stat("Distinct error fingerprints", LOGS_DS, OPERATIONS_ERRORS, "fingerprint")
            .description(
                "How many different error templates occurred (up to 500): a new one is often a new bug."
            )
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            distinct_stat("Services logging", LOGS_DS, OPERATIONS_FILTER, "service")
            .unit("short")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            bars_by_level(
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
                os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [es.Count().id("1")],
                    [terms("3", "service", size=20), histogram("2")],
                    alias="{{term service}}",
                    hide=True,
                )
            )
            .with_target(
                os_query(
                    "B",
                    LOGS_DS,
                    "environment:$environment AND service:$service",
                    [es.Count().id("1")],
                    [terms("3", "service", size=20), histogram("2")],
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
                os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [
                        es.Count().id("1"),
                        es.UniqueCount().id("4").field("service"),
                        es.Max().id("5").field(TIME_FIELD),
                    ],
                    [terms("2", "fingerprint", size=20), terms("3", "template.keyword", size=1)],
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
                os_query(
                    "A", LOGS_DS, OPERATIONS_ERRORS, [es.Count().id("1")], [terms("2", "service", size=15)]
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
                os_query(
                    "A",
                    LOGS_DS,
                    OPERATIONS_ERRORS,
                    [es.Logs().id("1").settings(es.ElasticsearchLogsSettings().limit("100"))],
                    # The plugin rejects a non-document query without bucket aggregations; for
                    # logs it then draws its own volume histogram.
                    [histogram("2")],
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
