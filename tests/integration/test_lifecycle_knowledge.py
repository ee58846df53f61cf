"""A resolution entered in Slack is indexed from the stream and retrieved for the next similar incident.

Real pieces end to end: the interactivity handler's state change on the moto state table,
the stream record DynamoDB would emit for the resolution item, the knowledge sync's
stream path into Milvus Lite with the local MiniLM embedder, and the analyzer's search.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cali.analysis.embeddings import LocalOnnxEmbedder
from cali.knowledge.store import KnowledgeStore
from cali.lifecycle.learning import entries_from_stream, index_resolutions
from cali.lifecycle.state import AlertPosted, Resolve
from cali.lifecycle.store import DynamoDbLifecycleStore, apply
from cali_local.resources import create_state_table

pytestmark = pytest.mark.xdist_group("milvus")
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
FP = "a1b2c3d4e5f60718"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KnowledgeStore]:
    knowledge = KnowledgeStore.connect(str(tmp_path / "k.db"), collection="lifecycle", dim=384)
    yield knowledge
    knowledge.close()


def test_slack_resolution_is_retrieved_for_the_next_similar_incident(store: KnowledgeStore) -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_state_table(client, "state")
        lifecycle = DynamoDbLifecycleStore("state", client=client)
        apply(
            lifecycle,
            FP,
            AlertPosted(
                title="orders: Kafka consumer lag on topic orders.created",
                service="orders",
                template="Consumer group <*> lag <*> exceeds threshold on partition <*>",
                level="ERROR",
                count=40,
                first_seen=T0,
                last_seen=T0 + timedelta(minutes=10),
            ),
            T0,
        )
        apply(
            lifecycle,
            FP,
            Resolve(
                "U0BOB",
                "A rebalance storm: session.timeout.ms shorter than a GC pause",
                "Raised session.timeout.ms to 45s and max.poll.records to 200",
            ),
            T0 + timedelta(hours=1),
        )
        [item] = client.scan(
            TableName="state",
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": "incident#"}},
        )["Items"]
    # What DynamoDB Streams delivers for that write (NEW_IMAGE view).
    record = {"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {"NewImage": item}}
    entries, problems = entries_from_stream([record])
    assert problems == [] and [e.id for e in entries] == [item["pk"]["S"]]

    embedder = LocalOnnxEmbedder()
    report, _ = index_resolutions([record], store, embedder)
    assert report.inserted == 1
    again, _ = index_resolutions([record], store, embedder)  # stream redelivery: nothing re-embedded
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)

    # The next incident: another partition and numbers, worded by a different logger.
    query = "orders consumer group order-workers lag 120000 exceeds threshold on partition 7, rebalancing"
    [vector] = embedder.embed([query])
    hits = store.search(vector, top_k=3, min_score=0.35, service="orders")
    assert hits and hits[0].id == item["pk"]["S"]
    assert "session.timeout.ms" in (hits[0].resolution or "")
