"""Every generated dashboard type-checks against Grafana's published schema (@grafana/schema).

grafana/build.py writes grafana/schema-check/<name>.ts as
``export const <name> = <dashboard JSON> satisfies DashboardJson``; tsc --strict rejects
unknown keys, wrong types and missing required fields anywhere in the dashboard.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TSC = ROOT / "node_modules" / ".bin" / "tsc"
PROJECT = ROOT / "grafana" / "schema-check"


def _tsc(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TSC), "--strict", "--noEmit", "-p", str(project)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(autouse=True)
def _needs_node_modules() -> None:
    if not (TSC.exists() and (ROOT / "node_modules" / "@grafana" / "schema").is_dir()):
        pytest.skip("node_modules missing: run `npm ci` (make install) to type-check dashboards with tsc")


def test_generated_dashboards_satisfy_grafana_schema() -> None:
    files = sorted(p.name for p in PROJECT.glob("*.ts"))
    assert {"operations.ts", "incidents.ts", "pipeline-health.ts"} <= set(files)
    result = _tsc(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_invalid_dashboard(tmp_path: Path) -> None:
    # The same check must fail on a dashboard Grafana's schema forbids, or it proves nothing.
    (tmp_path / "json-schema.ts").write_text((PROJECT / "json-schema.ts").read_text())
    (tmp_path / "tsconfig.json").write_text((PROJECT / "tsconfig.json").read_text())
    (tmp_path / "bad.ts").write_text(
        'import type { DashboardJson } from "./json-schema";\n'
        'export const bad = {"title": "x", "panels": [{"type": "timeseries", '
        '"gridPos": {"h": 8, "w": 12, "x": 0, "y": 0}, "fieldConfig": {"defaults": '
        '{"thresholds": {"mode": "absolutely", "steps": []}}, "overrides": []}}]} '
        "satisfies DashboardJson;\n"
    )
    # tsc resolves @grafana/schema from the nearest node_modules: link the project's.
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    result = _tsc(tmp_path)
    assert result.returncode != 0
    assert "absolutely" in result.stdout
