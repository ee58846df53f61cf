"""GitHubDeploy: the GitHub Actions OIDC provider and least-privilege roles for one environment.

The workflows in ``.github/workflows`` exchange GitHub's OIDC token for these roles, so
no long-lived AWS key is stored anywhere. Each role trusts exactly one subject:

* ``DeployRole``: ``repo:<owner>/<name>:environment:<env>``, i.e. only jobs that run in
  the GitHub environment of the same name (where prod's required reviewers apply). It
  may assume the CDK bootstrap roles of this account and region (``cdk deploy`` does the
  rest through them) and read what the ``cali doctor`` preflight reads.
* ``DiffRole``: ``repo:<owner>/<name>:pull_request``. Pull requests run ``cdk diff``
  against the deployed stack through the bootstrap *lookup* role, which is read-only.

Deploy this stack once per environment with your own credentials
(``npx cdk deploy 'Dev/GitHubDeploy'``); after that, CI deploys ``<Stage>/Cali``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks._nag import acknowledge

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# The default qualifier of `cdk bootstrap`; change both if you bootstrap with another.
BOOTSTRAP_QUALIFIER = "hnb659fds"
# What the `cali doctor` preflight calls (all read-only, no secret values).
PREFLIGHT_ACTIONS = (
    "cloudformation:DescribeStacks",
    "lambda:GetAccountSettings",
    "es:ListInstanceTypeDetails",
    "ssm:GetParameter",
)


def bootstrap_role_arn(kind: str) -> str:
    return (
        f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/"
        f"cdk-{BOOTSTRAP_QUALIFIER}-{kind}-role-{Aws.ACCOUNT_ID}-{Aws.REGION}"
    )


class GitHubDeploy(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        repository: str,
        create_provider: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        if create_provider:
            provider: iam.IOidcProvider = iam.OidcProviderNative(
                self, "Provider", url=GITHUB_OIDC_URL, client_ids=["sts.amazonaws.com"]
            )
        else:
            provider = iam.OidcProviderNative.from_oidc_provider_arn(
                self,
                "Provider",
                f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:oidc-provider/{GITHUB_OIDC_HOST}",
            )
        self.provider = provider

        self.deploy_role = self._role(
            "DeployRole",
            f"repo:{repository}:environment:{env_name}",
            f"GitHub Actions of {repository} deploying CALI {env_name} (environment {env_name} only)",
        )
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["sts:AssumeRole", "sts:TagSession"],
                resources=[
                    bootstrap_role_arn(kind)
                    for kind in ("deploy", "file-publishing", "image-publishing", "lookup")
                ],
            )
        )
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks"],
                resources=[
                    f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:stack/"
                    f"{env_name.capitalize()}-Cali/*"
                ],
            )
        )
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:parameter/"
                    f"cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version"
                ],
            )
        )
        self.deploy_role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetAccountSettings", "es:ListInstanceTypeDetails"], resources=["*"]
            )
        )
        acknowledge(
            self.deploy_role,
            "IAM5[Resource::*]",
            "lambda:GetAccountSettings and es:ListInstanceTypeDetails (the cali doctor "
            "preflight's quota and instance-type checks) support no resource-level permissions.",
        )
        acknowledge(
            self.deploy_role,
            f"IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/"
            f"{env_name.capitalize()}-Cali/*]",
            "A stack ARN ends in its generated id: the wildcard covers only this "
            "environment's one CALI stack.",
        )

        self.diff_role = self._role(
            "DiffRole",
            f"repo:{repository}:pull_request",
            f"GitHub Actions pull requests of {repository}: read-only cdk diff against CALI {env_name}",
        )
        self.diff_role.add_to_policy(
            iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[bootstrap_role_arn("lookup")])
        )

        for output_id, role in (("DeployRoleArn", self.deploy_role), ("DiffRoleArn", self.diff_role)):
            CfnOutput(
                Stack.of(self),
                output_id,
                value=role.role_arn,
                description=f"GitHub variable for {env_name}: see docs/deploy.md#ci-cd",
            )

    def _role(self, construct_id: str, subject: str, description: str) -> iam.Role:
        return iam.Role(
            self,
            construct_id,
            assumed_by=iam.WebIdentityPrincipal(
                self.provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": subject,
                    }
                },
            ),
            description=description,
        )


class GitHubDeployStack(Stack):
    """A separate stack: it must exist before CI can deploy the Cali stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        repository: str,
        create_provider: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.roles = GitHubDeploy(
            self, "GitHub", env_name=env_name, repository=repository, create_provider=create_provider
        )
