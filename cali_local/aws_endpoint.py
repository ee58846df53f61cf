"""A local AWS endpoint for the pipeline and the integration/e2e tests: moto server in a thread.

boto3 honours ``AWS_ENDPOINT_URL``, so the real client code runs unchanged against it.
moto emulates S3, SQS, DynamoDB (conditional writes; TTL is never enforced), Kinesis,
Secrets Manager, CloudWatch and Firehose direct puts; not Lambda or Firehose-from-Kinesis.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoEndpoint:
    url: str
    server: Any

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API), between independent tests."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - local http endpoint


def start_moto(host: str = "127.0.0.1", port: int | None = None, timeout: float = 15.0) -> MotoEndpoint:
    """Start moto server on a free port and wait until it answers; ``stop()`` it when done."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    port = port or free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()  # noqa: S310
            return MotoEndpoint(url, server)
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def aws_environment(endpoint_url: str, region: str = "eu-west-1") -> Iterator[None]:
    """Point boto3 at ``endpoint_url`` with dummy credentials (never real ones) for a block."""
    values = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    saved = {key: os.environ.get(key) for key in (*values, "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    os.environ.update(values)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
