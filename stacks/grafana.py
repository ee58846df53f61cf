"""Grafana: an optional Amazon Managed Grafana workspace reading OpenSearch and CloudWatch."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_grafana as grafana
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks._nag import acknowledge, acknowledge_wildcards
from stacks.search_domain import SearchDomain


class Grafana(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, env_name: str, search: SearchDomain) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "grafana.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Managed Grafana: reads CALI's OpenSearch domain and CloudWatch metrics",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["es:ESHttpGet", "es:ESHttpPost", "es:DescribeDomain", "es:DescribeDomainConfig"],
                resources=[search.domain_arn, f"{search.domain_arn}/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "cloudwatch:DescribeAlarmsForMetric",
                    "cloudwatch:DescribeAlarmHistory",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:ListMetrics",
                    "cloudwatch:GetMetricData",
                    "cloudwatch:GetInsightRuleReport",
                    "es:ListDomainNames",
                ],
                resources=["*"],
            )
        )
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "CloudWatch read APIs and es:ListDomainNames have no resource-level permissions; "
            "OpenSearch access is limited to this domain and, inside it, to the read-only "
            "cali_reader role by FGAC.",
        )
        acknowledge_wildcards(
            self.role,
            [search.nag_paths],
            "Dashboards query any cali-* index of this one domain (_msearch, "
            "_mapping); FGAC maps this role to the read-only cali_reader.",
        )
        search.allow(self.role)
        self.workspace = grafana.CfnWorkspace(
            self,
            "Workspace",
            name=f"cali-{env_name}",
            description=f"CALI {env_name}: logs, incidents and pipeline health",
            account_access_type="CURRENT_ACCOUNT",
            authentication_providers=["AWS_SSO"],
            permission_type="CUSTOMER_MANAGED",
            role_arn=self.role.role_arn,
            data_sources=["AMAZON_OPENSEARCH_SERVICE", "CLOUDWATCH"],
        )
        self.url = f"https://{self.workspace.attr_endpoint}"
