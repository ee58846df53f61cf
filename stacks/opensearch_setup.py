"""OpenSearchSetup: applies index templates, the ISM policy and FGAC role mappings at deploy.

A custom resource (``custom_resources.Provider``) runs ``lambdas/opensearch_setup`` as the
domain's master user on every create and every change of its inputs or code.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks._nag import acknowledge, acknowledge_wildcards, arn_of
from stacks.bundling import RUNTIME, asset_hash, function_code
from stacks.search_domain import HTTP_ACTIONS, SearchDomain


class OpenSearchSetup(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        search: SearchDomain,
        retention_days: int,
        replicas: int,
        log_shards: int,
        writer_roles: Sequence[iam.IRole],
        reader_roles: Sequence[iam.IRole | str],
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        code = function_code("opensearch_setup", architecture)
        log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(search.admin_role)
        search.admin_role.add_to_policy(
            iam.PolicyStatement(
                actions=list(HTTP_ACTIONS),
                resources=[search.domain_arn, f"{search.domain_arn}/*"],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=architecture,
            code=code,
            handler="opensearch_setup.handler.handler",
            role=search.admin_role,
            log_group=log_group,
            memory_size=256,
            # The domain can take a few minutes after creation before its security API
            # answers; the handler retries inside this budget.
            timeout=Duration.minutes(10),
            environment={"POWERTOOLS_SERVICE_NAME": "opensearch_setup", "LOG_LEVEL": "INFO"},
            description="Applies CALI's OpenSearch index templates, ISM policy and role mappings",
        )
        provider_role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Custom-resource framework for OpenSearchSetup",
        )
        provider_logs = logs.LogGroup(
            self, "ProviderLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        provider_logs.grant_write(provider_role)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            framework_on_event_role=provider_role,
            log_group=provider_logs,
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=provider.service_token,
            resource_type="Custom::CaliOpenSearchSetup",
            properties={
                "Endpoint": search.endpoint,
                "Region": Stack.of(self).region,
                "RetentionDays": retention_days,
                "Replicas": replicas,
                "LogShards": log_shards,
                "WriterRoleArns": [role.role_arn for role in writer_roles],
                "ReaderRoleArns": [r if isinstance(r, str) else r.role_arn for r in reader_roles],
                # Re-run when the templates or the handler change, not only the inputs.
                "CodeHash": asset_hash("opensearch_setup", architecture),
            },
        )
        self.resource.node.add_dependency(search.domain)
        acknowledge_wildcards(
            provider_role,
            [f"{arn_of(self.function)}:*"],
            "aws-cdk-lib's custom-resource framework may invoke any version of the "
            "one setup function it fronts.",
        )
        acknowledge_wildcards(
            search.admin_role,
            [search.nag_paths],
            "The FGAC master user manages templates, ISM policies and security "
            "roles across the paths of this one domain.",
        )
        acknowledge(
            self,
            "L1",
            "Python 3.12 is the project's Lambda runtime (bundled cp312 wheels); the "
            "provider framework's Node.js runtime is chosen by aws-cdk-lib.",
        )
