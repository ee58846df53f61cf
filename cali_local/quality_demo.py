"""The demo's last step: the day's data-quality report, with one failure provoked on purpose.

A demo run archives a few minutes of one day, so there is no week to compare with. This
step gives the local archive a 7-day baseline: each earlier day gets the run's own raw
objects again (same hours, same lines), so every real service looks normal, plus the lines
of one more service, ``ledger``, that logged every hour of the baseline and sends
nothing today. The volume check must report it silent; every other check runs on the
demo's real data.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cali_local.archive import write_raw

SILENT_SERVICE = "ledger"
SILENT_SERVICE_LINES_PER_HOUR = 60


def seed_baseline(root: Path, day: date, days: int = 7) -> int:
    """Copy ``day``'s raw objects to the ``days`` before it and add the silent service there."""
    written = 0
    source = root / "raw" / f"year={day:%Y}" / f"month={day:%m}" / f"day={day:%d}"
    hours = sorted(p for p in source.glob("hour=*") if p.is_dir())
    for back in range(1, days + 1):
        earlier = day - timedelta(days=back)
        for hour_dir in hours:
            hour = int(hour_dir.name[5:])
            arrival = datetime(earlier.year, earlier.month, earlier.day, hour, tzinfo=UTC)
            for obj in sorted(hour_dir.glob("*.gz")):
                target = (
                    root
                    / "raw"
                    / f"year={earlier:%Y}"
                    / f"month={earlier:%m}"
                    / f"day={earlier:%d}"
                    / hour_dir.name
                )
                target.mkdir(parents=True, exist_ok=True)
                (target / f"baseline-{obj.name}").write_bytes(obj.read_bytes())
                written += 1
            write_raw(root, arrival, _silent_service_lines(arrival), name=f"baseline-{SILENT_SERVICE}.gz")
            written += 1
    return written


def _silent_service_lines(hour: datetime) -> list[bytes]:
    step = 3600 / SILENT_SERVICE_LINES_PER_HOUR
    return [
        json.dumps(
            {
                "time": (hour + timedelta(seconds=i * step)).isoformat().replace("+00:00", "Z"),
                "level": "INFO",
                "service": SILENT_SERVICE,
                "msg": f"stock level synced for sku {1000 + i}",
            }
        ).encode()
        for i in range(SILENT_SERVICE_LINES_PER_HOUR)
    ]
