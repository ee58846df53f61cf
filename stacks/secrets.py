"""Secrets: Slack, OpenAI and Milvus credentials, created without any plaintext value.

CloudFormation fills each with a random placeholder; operators set the real JSON with
``aws secretsmanager put-secret-value`` (see docs/deploy.md). The functions treat a
value that is not the documented JSON as "not configured" and degrade.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks._nag import acknowledge

_SHAPES = {
    "Slack": '{"webhook_url"} or {"bot_token", "channel"}',
    "OpenAi": '{"api_key"}',
    "Milvus": '{"uri", "token"}',
}


class Secrets(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, env_name: str, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        created = {
            name: secretsmanager.Secret(
                self,
                name,
                removal_policy=removal_policy,
                description=f"CALI {env_name}: {name} credentials as JSON {shape}",
            )
            for name, shape in _SHAPES.items()
        }
        self.slack = created["Slack"]
        self.openai = created["OpenAi"]
        self.milvus = created["Milvus"]
        acknowledge(
            self,
            "SMG4",
            "Third-party credentials (Slack, OpenAI, Milvus/Zilliz) are rotated at their "
            "issuer; Secrets Manager has no rotation function for them.",
        )
