"""The CALI / Pipeline health dashboard: CloudWatch metrics of every pipeline stage."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import (
    cloudwatch,
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
    LOGS_DS,
    Grid,
    cw_dimension_variable,
    cw_query,
    green_below,
    histogram,
    new_dashboard,
    os_query,
    region_variable,
)


# --------------------------------------------------------------------------- pipeline health
def pipeline_health() -> dash.Dashboard:
    grid = Grid()
    region = "$region"
    streams = {"StreamName": "$stream"}
    functions = {"FunctionName": "$function"}
    board = (
        new_dashboard(
            "cali-pipeline-health",
            "CALI / Pipeline health",
            "Is the pipeline itself healthy: Kinesis, Lambda, DLQ, Firehose and OpenSearch, from CloudWatch.",
        )
        .with_variable(region_variable())
        .with_variable(
            cw_dimension_variable(
                "stream", "Kinesis stream", "AWS/Kinesis", "IncomingRecords", "StreamName", "/cali/i"
            )
        )
        .with_variable(
            cw_dimension_variable(
                "function", "Lambda function", "AWS/Lambda", "Invocations", "FunctionName", "/cali/i"
            )
        )
        .with_variable(
            cw_dimension_variable(
                "dlq",
                "Dead-letter queue",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                "/cali.*dlq/i",
            )
        )
        .with_variable(
            cw_dimension_variable(
                "delivery_stream",
                "Firehose stream",
                "AWS/Firehose",
                "IncomingRecords",
                "DeliveryStreamName",
                "/cali/i",
            )
        )
        .with_variable(
            cw_dimension_variable(
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
                cw_query(
                    "A", "AWS/Kinesis", "IncomingRecords", streams, "Sum", "${PROP('Dim.StreamName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Kinesis iterator age",
                "How far the slowest consumer is behind the tip of the stream: pipeline lag.",
                "ms",
                cw_query(
                    "A",
                    "AWS/Kinesis",
                    "GetRecords.IteratorAgeMilliseconds",
                    streams,
                    "Maximum",
                    "${PROP('Dim.StreamName')}",
                    region,
                ),
            )
            .thresholds(green_below(60000, "red"))
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE))
        )
        .with_panel(
            cw_panel(
                "CALI records in / invalid / kept",
                "Log consumer counters: invalid records go to the DLQ with a reason.",
                "short",
                cw_query(
                    "A", CALI_NAMESPACE, "RecordsIn", {"service": "log_consumer"}, "Sum", "In", region, False
                ),
                cw_query(
                    "B",
                    CALI_NAMESPACE,
                    "RecordsInvalid",
                    {"service": "log_consumer"},
                    "Sum",
                    "Invalid",
                    region,
                    False,
                ),
                cw_query(
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
                cw_query(
                    "A", "AWS/Lambda", "Errors", functions, "Sum", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda duration (p99)",
                "Slowest invocations per function; compare with the function timeout.",
                "ms",
                cw_query(
                    "A", "AWS/Lambda", "Duration", functions, "p99", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda throttles",
                "Invocations refused for lack of concurrency.",
                "short",
                cw_query(
                    "A", "AWS/Lambda", "Throttles", functions, "Sum", "${PROP('Dim.FunctionName')}", region
                ),
            )
        )
        .with_panel(
            cw_panel(
                "Lambda iterator age",
                "Age of the last record each stream-triggered function processed.",
                "ms",
                cw_query(
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
                cw_query(
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
                cw_query(
                    "A",
                    CALI_NAMESPACE,
                    "DocumentsIndexed",
                    {"service": "log_indexer"},
                    "Sum",
                    "Indexed",
                    region,
                    False,
                ),
                cw_query(
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
                cw_query(
                    "A",
                    "AWS/Firehose",
                    "DeliveryToAmazonOpenSearchService.Success",
                    {"DeliveryStreamName": "$delivery_stream"},
                    "Average",
                    "${PROP('Dim.DeliveryStreamName')} to OpenSearch",
                    region,
                ),
                cw_query(
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
                cw_query(
                    "A",
                    "AWS/ES",
                    "ClusterStatus.red",
                    {"DomainName": "$domain"},
                    "Maximum",
                    "red",
                    region,
                    match_exact=False,
                ),
                cw_query(
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
                os_query("A", LOGS_DS, "*", [es.Count().id("1")], [histogram("2")], alias="Documents")
            )
            .unit("short")
            .grid_pos(grid.next(8, 8))
        )
    )
    return board
