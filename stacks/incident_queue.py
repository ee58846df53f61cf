"""IncidentQueue: consumer -> analyzer queue, its redrive DLQ, and the consumer's on-failure queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks._nag import acknowledge

_RETENTION = Duration.days(14)  # the SQS maximum: time for a person to look


class IncidentQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, analyzer_timeout: Duration) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # AWS's guidance for Lambda sources: six times the function timeout, so a
            # message is not redelivered while a retrying invocation still holds it.
            visibility_timeout=Duration.seconds(analyzer_timeout.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.dead_letters),
        )
        # Kinesis batches the consumer gives up on (retries or record age exhausted):
        # the message names shard and sequence range so `cali dlq replay` can re-read them.
        self.consumer_failures = sqs.Queue(
            self,
            "ConsumerFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=_RETENTION,
        )
        acknowledge(
            self.consumer_failures,
            "SQS3",
            "This queue is itself the on-failure destination of the Kinesis consumer; "
            "an alarm fires on its first visible message.",
        )
