"""Grafana alert rules (error spike, consumer lag) and their file-provisioning format."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import alerting as alert
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.builders import expr
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from cali_dashboards.common import (
    CLOUDWATCH_DS,
    ERROR_LEVELS,
    FOLDER,
    LOGS_DS,
    cw_query,
    histogram,
    os_query,
    terms,
)


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
    errors = os_query(
        "A",
        LOGS_DS,
        f"{env_filter} AND {ERROR_LEVELS}",
        [es.Count().id("1")],
        [terms("3", "service", size=50), histogram("2", "1m")],
    )
    baseline = os_query(
        "B",
        LOGS_DS,
        f"{env_filter} AND {ERROR_LEVELS}",
        [es.Count().id("1")],
        [terms("3", "service", size=50), histogram("2", "5m")],
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
    kinesis_lag = cw_query(
        "A",
        "AWS/Kinesis",
        "GetRecords.IteratorAgeMilliseconds",
        {"StreamName": "${CALI_KINESIS_STREAM_NAME}"},
        "Maximum",
        "iterator age",
    ).period("60")
    lambda_lag = cw_query(
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
