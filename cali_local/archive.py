"""A local copy of the archive bucket, laid out exactly as in S3, for DuckDB to read.

``cali archive query --local`` and ``cali quality run --local`` read ``.cali/archive`` by
default: ``make demo`` downloads its moto bucket's ``raw/`` and ``dlq/`` prefixes there, and
``download`` does the same from any bucket (a deployed one included, for one day's prefix).
"""

from __future__ import annotations

import gzip
import shutil
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cali.ingest.dlq import DlqEntry, entry_key

DEFAULT_ROOT = Path(".cali") / "archive"


def raw_key(arrival: datetime, name: str | None = None) -> str:
    """Key of one raw object: Firehose's Hive-style hourly prefix of the arrival time."""
    return (
        f"raw/year={arrival:%Y}/month={arrival:%m}/day={arrival:%d}/hour={arrival:%H}/"
        f"{name or f'local-raw-{uuid.uuid4()}.gz'}"
    )


def write_raw(root: Path, arrival: datetime, lines: Iterable[bytes], name: str | None = None) -> Path:
    """One GZIP object of newline-terminated records, as Firehose writes them."""
    path = root / raw_key(arrival, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(body, compresslevel=1))
    return path


def write_dlq(root: Path, entry: DlqEntry, prefix: str = "dlq/") -> Path:
    path = root / entry_key(prefix, entry.entry_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry.model_dump_json(), encoding="utf-8")
    return path


def download(
    s3: Any, bucket: str, root: Path, prefixes: Iterable[str] = ("raw/", "dlq/"), day: date | None = None
) -> int:
    """Copy the archive's objects (all, or one day's) under ``root``; returns the object count."""
    copied = 0
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for listed in _day_prefixes(prefix, day):
            for page in paginator.paginate(Bucket=bucket, Prefix=listed):
                for item in page.get("Contents", []):
                    target = root / item["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    target.write_bytes(body)
                    copied += 1
    return copied


def _day_prefixes(prefix: str, day: date | None) -> list[str]:
    if day is None:
        return [prefix]
    if prefix.startswith("raw"):
        return [f"{prefix}year={day:%Y}/month={day:%m}/day={day:%d}/"]
    return [f"{prefix}{day:%Y/%m/%d}/"]


def replace_with_bucket(s3: Any, bucket: str, root: Path) -> int:
    """Make ``root`` a fresh copy of the bucket's archive prefixes (the demo's last step)."""
    for prefix in ("raw", "dlq"):
        if (root / prefix).exists():
            shutil.rmtree(root / prefix)
    return download(s3, bucket, root)
