"""``cali dashboards``: regenerate or check the Grafana dashboards and alert rules.

The dashboards are Python (``grafana/build.py``, grafana-foundation-sdk builders); the
JSON under ``grafana/dashboards/`` and the alert rules file are generated from it and
committed so Grafana can provision them directly.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_MODULE = REPO_ROOT / "grafana" / "build.py"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dashboards",
        help="regenerate or check the Grafana dashboards (grafana/dashboards/*.json)",
        description="The Grafana dashboards and alert rules are written in Python in "
        "grafana/build.py. `build` regenerates the committed JSON/YAML from it; `check` "
        "exits with status 1 and lists the files that are out of date (CI runs it through "
        "the unit tests).",
        epilog="Examples:\n  cali dashboards build\n  cali dashboards check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action",
        choices=("build", "check"),
        help="build: write the generated files; check: fail if any is stale",
    )
    parser.set_defaults(func=run)


def load_build_module() -> ModuleType:
    """Import grafana/build.py by path: it lives with the dashboards, outside the packages."""
    spec = importlib.util.spec_from_file_location("cali_grafana_build", BUILD_MODULE)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load {BUILD_MODULE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    build = load_build_module()
    if args.action == "build":
        written: list[Path] = build.write_all()
        for path in written:
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        print(f"{len(written)} file(s) changed" if written else "dashboards are up to date")
        return 0
    stale: list[Path] = build.stale_files()
    if stale:
        for path in stale:
            print(f"stale: {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        print("run `cali dashboards build` (or `make dashboards`) and commit the result", file=sys.stderr)
        return 1
    print("dashboards are up to date")
    return 0
