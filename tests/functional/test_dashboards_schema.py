"""Every generated dashboard type-checks against Grafana's published schema (@grafana/schema).

Each committed grafana/dashboards/<name>.json is wrapped as
``export const <name> = <dashboard JSON> satisfies DashboardJson`` (grafana/build.py's
``schema_check_source``) in a scratch copy of grafana/schema-check/; tsc --strict rejects
unknown keys, wrong types and missing required fields anywhere in the dashboard.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cali_cli.commands.dashboards import load_build_module

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


def _scratch_project(tmp_path: Path) -> Path:
    for name in ("json-schema.ts", "tsconfig.json"):
        (tmp_path / name).write_text((PROJECT / name).read_text())
    # tsc resolves @grafana/schema from the nearest node_modules: link the project's.
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    return tmp_path


def test_committed_dashboards_satisfy_grafana_schema(tmp_path: Path) -> None:
    build = load_build_module()
    project = _scratch_project(tmp_path)
    for name in build.DASHBOARDS:
        dashboard = ROOT / "grafana" / "dashboards" / f"{name}.json"
        (project / f"{name}.ts").write_text(build.schema_check_source(name, dashboard.read_text()))
    assert {"operations.ts", "incidents.ts", "pipeline-health.ts"} <= {p.name for p in project.glob("*.ts")}
    result = _tsc(project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_invalid_dashboard(tmp_path: Path) -> None:
    # The same check must fail on a dashboard Grafana's schema forbids, or it proves nothing.
    project = _scratch_project(tmp_path)
    (project / "bad.ts").write_text(
        'import type { DashboardJson } from "./json-schema";\n'
        'export const bad = {"title": "x", "panels": [{"type": "timeseries", '
        '"gridPos": {"h": 8, "w": 12, "x": 0, "y": 0}, "fieldConfig": {"defaults": '
        '{"thresholds": {"mode": "absolutely", "steps": []}}, "overrides": []}}]} '
        "satisfies DashboardJson;\n"
    )
    result = _tsc(project)
    assert result.returncode != 0
    assert "absolutely" in result.stdout
