"""cdk-nag (AwsSolutions) and cfn-lint over every synthesized environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

from .conftest import ENVIRONMENTS, Synth, synthesize

pytestmark = pytest.mark.xdist_group("infra")

SELF_HOSTED_GRAFANA = "arn:aws:iam::111111111111:role/self-hosted-grafana"


def test_cdk_nag_has_no_unacknowledged_findings(synth: Synth) -> None:
    # The synth fixture would already have raised on an error; the report says why.
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    (plugin,) = report["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    assert plugin["conclusion"] == "success"
    assert plugin["violations"] == []
    # The plugin really ran: the acknowledged findings are in the report, each with a reason.
    acknowledged = plugin["suppressedViolations"]
    assert acknowledged
    for finding in acknowledged:
        assert len(finding["reason"]) >= 40, finding["acknowledgedId"]


def test_cdk_nag_acknowledgments_are_specific(synth: Synth) -> None:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    ids = {finding["acknowledgedId"] for finding in report["pluginReports"][0]["suppressedViolations"]}
    # Wildcard findings are acknowledged one resource at a time, never for a whole rule.
    assert "AwsSolutions::AwsSolutions-IAM5" not in ids
    assert all(ack.startswith("AwsSolutions::AwsSolutions-") for ack in ids)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_cfn_lint_reports_no_errors(synth: Synth, name: str) -> None:
    matches = lint_file(Path(synth.template_files[name]), config=ManualArgs(regions=["us-east-1"]))
    errors = [str(match) for match in matches if match.rule.id.startswith("E")]
    assert not errors, "\n".join(errors)


def test_grafana_and_extra_readers_are_nag_clean_when_enabled(tmp_path: Path) -> None:
    context = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
    envs = context["environments"]
    envs["dev"]["grafana_workspace"] = True
    envs["dev"]["opensearch"]["reader_role_arns"] = [SELF_HOSTED_GRAFANA]
    result = synthesize(tmp_path, env="dev", environments=envs)
    template = result.templates["dev"]
    (workspace,) = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Grafana::Workspace"
    ]
    assert workspace["PermissionType"] == "CUSTOMER_MANAGED"
    assert workspace["AuthenticationProviders"] == ["AWS_SSO"]
    (setup,) = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "Custom::CaliOpenSearchSetup"
    ]
    assert len(setup["ReaderRoleArns"]) == 2
    assert SELF_HOSTED_GRAFANA in setup["ReaderRoleArns"]
    (domain,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::OpenSearchService::Domain"
    ]
    principals = domain["AccessPolicies"]["Statement"][0]["Principal"]["AWS"]
    assert SELF_HOSTED_GRAFANA in principals
    assert len(principals) == 6  # master, 2 Firehose, quality_job, managed Grafana, self-hosted reader
    analyzer_env = [
        r["Properties"]["Environment"]["Variables"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME")
        == "incident_analyzer"
    ]
    assert "GRAFANA_URL" in analyzer_env[0]
    matches = lint_file(result.template_files["dev"], config=ManualArgs(regions=["us-east-1"]))
    assert not [m for m in matches if m.rule.id.startswith("E")]
