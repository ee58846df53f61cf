"""Capacity rules the CDK config must satisfy, shared by config validation, tests and `cali doctor`.

Pure functions of numbers, no CDK imports: ``stacks.config`` validates ``cdk.json`` with
them (synth fails on an undersized environment) and the doctor reuses the concurrency
rule against the account's real Lambda quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

# AWS's storage rule for OpenSearch Service ("Calculating storage requirements"):
# source data x (1 + replicas) x 1.45, where 1.45 covers indexing overhead (10%),
# OS-reserved space (5%), service-reserved space (20%) and a 10% minimum free margin.
STORAGE_OVERHEAD = 1.45
# On top of that the service keeps up to 20 GiB per data node for segment merges, logs
# and internal operations: the volume a node shows is never fully usable.
SERVICE_RESERVED_GIB_PER_NODE = 20
# What indexed data occupies on disk relative to its source (the 10% indexing overhead).
INDEXING_OVERHEAD = 1.10
# Lambda keeps this much of the account's concurrency unreserved; a reservation that
# would leave less fails the deploy ("specified ConcurrentExecutions ... decreases
# account's UnreservedConcurrentExecution below its minimum value of [10]").
LAMBDA_UNRESERVED_MINIMUM = 10
# A new on-demand stream starts with 4 MB/s of write capacity, i.e. 4 shards.
ON_DEMAND_INITIAL_SHARDS = 4
# Lambda's 250 MiB limit for the unzipped code of a function and its layers.
UNZIPPED_LIMIT_BYTES = 262_144_000
# Bundles stay under 90% of it: a patch release of a big dependency must not be what
# pushes a deploy over the limit.
BUDGET_FRACTION = 0.9


def replicas_for(data_nodes: int) -> int:
    """One replica where a second node can hold it; none on a one-node domain (else yellow forever)."""
    return min(1, data_nodes - 1)


def log_shards_for(data_nodes: int) -> int:
    """Primary shards of each daily ``cali-logs-*`` index: one per data node.

    With a single primary every write of the day lands on one node; one per node spreads
    indexing over all of them (the replicas land on the other nodes).
    """
    return data_nodes


def days_on_disk(retention_days: int) -> int:
    # ISM deletes an index once it is older than the retention; until then today's index
    # is being written next to `retention_days` complete ones.
    return retention_days + 1


@dataclass(frozen=True)
class StorageEstimate:
    source_gib: float  # log data kept, before replication and overhead
    required_gib: float  # AWS's rule: the total volume needed across data nodes
    provisioned_gib: int  # volume_gb x data_nodes
    steady_free_percent: float  # free space on a node in normal use, as FreeStorageSpace sees it

    @property
    def meets_rule(self) -> bool:
        return self.provisioned_gib >= self.required_gib


def estimate_storage(
    *, daily_ingest_gb: float, retention_days: int, data_nodes: int, volume_gb: int
) -> StorageEstimate:
    replicas = replicas_for(data_nodes)
    source = daily_ingest_gb * days_on_disk(retention_days)
    required = source * (1 + replicas) * STORAGE_OVERHEAD + SERVICE_RESERVED_GIB_PER_NODE * data_nodes
    provisioned = volume_gb * data_nodes
    # In normal use a node holds its share of the indexed data plus what the service keeps.
    used_per_node = source * (1 + replicas) * INDEXING_OVERHEAD / data_nodes + SERVICE_RESERVED_GIB_PER_NODE
    free_percent = 100 * (volume_gb - used_per_node) / volume_gb
    return StorageEstimate(
        source_gib=source,
        required_gib=required,
        provisioned_gib=provisioned,
        steady_free_percent=free_percent,
    )


def storage_problems(
    *,
    daily_ingest_gb: float,
    retention_days: int,
    data_nodes: int,
    volume_gb: int,
    free_storage_alarm_percent: int,
) -> list[str]:
    """Why this sizing is too small (empty when it is fine), each with the number to use."""
    estimate = estimate_storage(
        daily_ingest_gb=daily_ingest_gb,
        retention_days=retention_days,
        data_nodes=data_nodes,
        volume_gb=volume_gb,
    )
    problems = []
    if not estimate.meets_rule:
        per_node = math.ceil(estimate.required_gib / data_nodes)
        problems.append(
            f"{data_nodes} x {volume_gb} GiB is below AWS's storage rule for {daily_ingest_gb:g} GB/day "
            f"kept {retention_days} days: {estimate.source_gib:g} GiB x (1 + "
            f"{replicas_for(data_nodes)} replicas) x {STORAGE_OVERHEAD} + "
            f"{SERVICE_RESERVED_GIB_PER_NODE} GiB per node = {estimate.required_gib:.0f} GiB; "
            f"set volume_gb to at least {per_node}"
        )
    if estimate.steady_free_percent <= free_storage_alarm_percent:
        problems.append(
            f"in normal use a data node keeps only {estimate.steady_free_percent:.0f}% free, at or "
            f"under the {free_storage_alarm_percent}% free-storage alarm: raise volume_gb or data_nodes"
        )
    return problems


@dataclass(frozen=True)
class ConcurrencyNeed:
    reserved: int  # concurrency the stack reserves (fails the deploy if the account lacks it)
    peak: int  # concurrent executions the environment can run at once

    def required_quota(self) -> int:
        """The account quota under which the deploy succeeds and nothing is throttled."""
        return max(self.reserved + LAMBDA_UNRESERVED_MINIMUM, self.peak)


def concurrency_need(
    *,
    shards: int | None,
    parallelization_factor: int,
    analyzer_reserved: int,
) -> ConcurrencyNeed:
    """Peak concurrent Lambda executions of one environment.

    The consumer runs one batch per shard and parallelization slot; Firehose invokes the
    indexer about once per shard at a time; the knowledge sync and the OpenSearch setup
    run alone; the analyzer is capped by its reservation.
    """
    shard_count = shards if shards is not None else ON_DEMAND_INITIAL_SHARDS
    consumer = shard_count * parallelization_factor
    indexer = shard_count
    return ConcurrencyNeed(reserved=analyzer_reserved, peak=consumer + indexer + analyzer_reserved + 1 + 1)


def tree_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (apparent sizes, as Lambda counts unzipped code)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


# Firehose bills ingestion per GB in 5 KB increments per record (a 1 KB record is billed as
# 5 KB), for Direct PUT and Kinesis-sourced streams alike; us-east-1 list price, first tier.
FIREHOSE_USD_PER_GB = 0.029
FIREHOSE_RECORD_INCREMENT_KB = 5
DAYS_PER_MONTH = 30


def firehose_monthly_usd(*, daily_ingest_gb: float, avg_record_kb: float, streams: int) -> float:
    """Monthly ingestion cost of ``streams`` Firehose streams that each read every record."""
    billed_kb = math.ceil(avg_record_kb / FIREHOSE_RECORD_INCREMENT_KB) * FIREHOSE_RECORD_INCREMENT_KB
    billed_gb_per_day = daily_ingest_gb * billed_kb / avg_record_kb
    return billed_gb_per_day * DAYS_PER_MONTH * FIREHOSE_USD_PER_GB * streams
