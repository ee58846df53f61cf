"""What flows through the emulated pipeline: sources, pod metadata, events, Kinesis records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PodMetadata:
    """What the ``kubernetes`` filter would fetch from the API server for a pod."""

    pod_name: str
    namespace_name: str
    container_name: str
    host: str
    labels: Mapping[str, str]
    pod_id: str
    docker_id: str
    container_image: str

    @property
    def log_path(self) -> str:
        name = f"{self.pod_name}_{self.namespace_name}_{self.container_name}-{self.docker_id}"
        return f"/var/log/containers/{name}.log"

    def as_record(self) -> dict[str, Any]:
        return {
            "pod_name": self.pod_name,
            "namespace_name": self.namespace_name,
            "pod_id": self.pod_id,
            "labels": dict(self.labels),
            "host": self.host,
            "container_name": self.container_name,
            "docker_id": self.docker_id,
            "container_image": self.container_image,
        }


@dataclass(frozen=True)
class LogSource:
    """Where lines come from: a file path, and for Kubernetes the pod that wrote it."""

    path: str
    pod: PodMetadata | None = None
    stream: str = "stdout"

    @classmethod
    def for_pod(cls, pod: PodMetadata, stream: str = "stdout") -> LogSource:
        return cls(path=pod.log_path, pod=pod, stream=stream)


@dataclass
class Event:
    """A record inside the pipeline: Fluent Bit's [timestamp, map]."""

    time: datetime
    body: dict[str, Any]
    source: LogSource
    tag: str


@dataclass(frozen=True)
class KinesisRecord:
    """One record as the ``kinesis_streams`` output sends it."""

    data: bytes
    time: datetime
    source: LogSource

    @property
    def record(self) -> dict[str, Any]:
        """The record as every consumer sees it (``json.loads``: last duplicate key wins)."""
        value: dict[str, Any] = json.loads(self.data)
        return value


@dataclass
class PipelineStats:
    lines_in: int = 0
    events_grouped: int = 0
    records_out: int = 0
    records_unparsed: int = 0
    skipped_long_lines: int = 0
    discarded_empty: int = 0
    discarded_oversize: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)
