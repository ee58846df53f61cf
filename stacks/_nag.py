"""cdk-nag acknowledgments, kept next to the constructs they concern."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge an AwsSolutions finding on ``construct`` and everything below it.

    ``rule`` is the id without the pack prefix, e.g. ``"OS1"`` or, for one finding of
    a rule that reports several, ``"IAM5[Resource::<Bucket.Arn>/dlq/*]"``.
    """
    Validations.of(construct).acknowledge(
        Acknowledgment(id=f"AwsSolutions::AwsSolutions-{rule}", reason=reason)
    )


def acknowledge_wildcards(construct: IConstruct, resources: Iterable[str], reason: str) -> None:
    """Acknowledge IAM5 for exactly these wildcard resources, each spelled as cdk-nag does."""
    for resource in resources:
        acknowledge(construct, f"IAM5[Resource::{resource}]", reason)


def arn_of(construct: IConstruct) -> str:
    """How cdk-nag spells the ARN of ``construct``'s CloudFormation resource: ``<Id.Arn>``."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    stack = Stack.of(construct)
    return f"<{stack.resolve(stack.get_logical_id(child))}.Arn>"
