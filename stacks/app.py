"""Builds the CDK app: one Stage (Dev, Staging, Prod, ...) per environment in cdk.json."""

from __future__ import annotations

from aws_cdk import App, Environment, Stage, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from stacks.config import ResolvedEnvironment, load_environments
from stacks.github_deploy import GitHubDeployStack
from stacks.pipeline_stack import CaliStack

STACK_ID = "Cali"
CI_STACK_ID = "GitHubDeploy"


class CaliStage(Stage):
    """One environment; ``cdk deploy 'Prod/*'`` deploys it."""

    def __init__(self, scope: Construct, environment: ResolvedEnvironment) -> None:
        env = Environment(account=environment.account, region=environment.region)
        super().__init__(scope, environment.stage_name, env=env)
        self.stack = CaliStack(
            self,
            STACK_ID,
            environment=environment,
            description=f"CALI log intelligence pipeline ({environment.name})",
        )
        self.ci_stack: GitHubDeployStack | None = None
        ci = environment.config.ci
        if ci.github_repository is not None:
            self.ci_stack = GitHubDeployStack(
                self,
                CI_STACK_ID,
                env_name=environment.name,
                repository=ci.github_repository,
                create_provider=ci.create_oidc_provider,
                description=f"CALI {environment.name}: GitHub Actions OIDC deploy roles",
            )


def build_app(app: App, *, nag: bool = True) -> list[CaliStage]:
    """Add the selected environments (``-c env=NAME``, default all) and the cdk-nag checks."""
    selected = app.node.try_get_context("env")
    environments = load_environments(
        {"environments": app.node.try_get_context("environments")}, selected=selected or None
    )
    stages = [CaliStage(app, environment) for environment in environments]
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages
