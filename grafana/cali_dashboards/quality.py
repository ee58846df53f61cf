"""The CALI / Data quality dashboard: the daily checks of quality_job (index ``cali-quality-*``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

from cali_dashboards.common import (
    QUALITY_DS,
    Grid,
    green_below,
    histogram,
    new_dashboard,
    os_query,
    terms,
    terms_variable,
    total_stat,
)

QUALITY_FILTER = "environment:$environment AND check:$check"


def quality() -> dash.Dashboard:
    grid = Grid()
    board = (
        new_dashboard(
            "cali-quality",
            "CALI / Data quality",
            "The daily data-quality checks over the raw archive (cali quality, quality_job): "
            "silent or tripled services, missing fields, unparsed and dead-letter shares, level "
            "drift, clock skew, duplicates and new message templates. One document per check and day.",
        )
        .time("now-30d", "now")
        .refresh("1h")
        .with_variable(terms_variable("environment", "Environment", QUALITY_DS, "environment"))
        .with_variable(
            terms_variable("check", "Check", QUALITY_DS, "check", depends_on="environment:$environment")
        )
    )
    return (
        board.with_panel(
            total_stat("Failed checks", QUALITY_DS, f"{QUALITY_FILTER} AND passed:false")
            .description("Check-days that failed in the time range.")
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .thresholds(green_below(1, "red"))
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat("Checks run", QUALITY_DS, QUALITY_FILTER)
            .description("Check-days in the time range (8 a day when the job runs daily).")
            .grid_pos(grid.next(6, 4))
        )
        .with_panel(
            total_stat(
                "Unexpected rows",
                QUALITY_DS,
                f"{QUALITY_FILTER} AND passed:false",
                es.Sum().id("1").field("unexpected_count"),
            )
            .description("Service-hours, services or templates that failed a check, summed.")
            .grid_pos(grid.next(12, 4))
        )
        .with_panel(
            timeseries.Panel()
            .title("Failed checks per day")
            .description("Each bar is one day; colours are the checks that failed.")
            .datasource(QUALITY_DS)
            .with_target(
                os_query(
                    "A",
                    QUALITY_DS,
                    f"{QUALITY_FILTER} AND passed:false",
                    [es.Count().id("1")],
                    [terms("3", "check", size=10), histogram("2", "1d")],
                    alias="{{term check}}",
                )
            )
            .draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
            .grid_pos(grid.next(24, 8))
        )
        .with_panel(
            table.Panel()
            .title("Latest results")
            .description("One row per check and day; the HTML report in S3 has the failing rows.")
            .datasource(QUALITY_DS)
            .with_target(
                os_query(
                    "A",
                    QUALITY_DS,
                    QUALITY_FILTER,
                    [es.RawData().id("1").settings(es.ElasticsearchRawDataSettings().size("100"))],
                )
            )
            .with_transformation(
                dm.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "indexByName": {
                            "@timestamp": 0,
                            "check": 1,
                            "status": 2,
                            "unexpected_count": 3,
                            "summary": 4,
                            "environment": 5,
                        },
                        "excludeByName": {
                            "_id": True,
                            "_index": True,
                            "_type": True,
                            "highlight": True,
                            "sort": True,
                        },
                    },
                )
            )
            .grid_pos(grid.next(24, 10))
        )
    )
