"""CALI's Grafana dashboards and alert rules, as code: the entry point.

The dashboards live in the ``cali_dashboards`` package next to this file (one module per
dashboard, ``alerts`` for the alert rules, ``render`` for the JSON/YAML). ``cali dashboards
build`` (or ``make dashboards``) writes every generated file listed by :func:`render_all`;
``cali dashboards check`` fails when a committed file differs, and so does
``tests/unit/test_dashboards.py``. Edit the package, never the generated JSON.

Grafana has no OpenSearch module in the SDK: OpenSearch panels use the Elasticsearch
dataquery builder, whose query model the ``grafana-opensearch-datasource`` plugin shares
(``query`` in Lucene, ``metrics``, ``bucketAggs``, ``timeField``), with ``queryType: lucene``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is loaded by path (``cali dashboards``) and run as a script: either way the
# package beside it is importable once its folder is on the path.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from cali_dashboards.common import ALERT_ENV_VARS, DATASOURCE_UIDS
from cali_dashboards.render import DASHBOARDS, dashboard_json, render_all, schema_check_source

__all__ = [
    "ALERT_ENV_VARS",
    "DASHBOARDS",
    "DATASOURCE_UIDS",
    "dashboard_json",
    "render_all",
    "schema_check_source",
    "stale_files",
    "write_all",
]


def stale_files() -> list[Path]:
    """Generated files whose committed content differs from what the package renders."""
    return [
        path
        for path, text in render_all().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write_all() -> list[Path]:
    written = []
    for path, text in render_all().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(f"wrote {written_path}")
