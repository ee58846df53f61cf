"""Synthesizes the CDK app once per test session (with cdk-nag) and shares the result.

Infra tests all run in one xdist group so that the ~10 s synth happens in one worker.
Bundling is skipped (`aws:cdk:bundling-stacks: []`): `make synth` exercises it for real.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before the first jsii import: the Node runtime banner would otherwise clutter the output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App

from stacks.app import build_app

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


def cdk_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    context["aws:cdk:bundling-stacks"] = []
    context.update(overrides)
    return context


@dataclass(frozen=True)
class Synth:
    outdir: Path
    templates: dict[str, dict[str, Any]]  # environment name -> CloudFormation template
    template_files: dict[str, Path]


def synthesize(outdir: Path, **context: Any) -> Synth:
    app = App(context=cdk_context(**context), outdir=str(outdir))
    stages = build_app(app)
    assembly = app.synth()
    templates: dict[str, dict[str, Any]] = {}
    files: dict[str, Path] = {}
    for stage in stages:
        artifact = assembly.get_nested_assembly(f"assembly-{stage.stage_name}").get_stack_by_name(
            stage.stack.stack_name
        )
        name = stage.stage_name.lower()
        templates[name] = artifact.template
        files[name] = Path(artifact.template_full_path)
        if stage.ci_stack is not None:
            ci = assembly.get_nested_assembly(f"assembly-{stage.stage_name}").get_stack_by_name(
                stage.ci_stack.stack_name
            )
            templates[f"{name}-ci"] = ci.template
            files[f"{name}-ci"] = Path(ci.template_full_path)
    return Synth(outdir=outdir, templates=templates, template_files=files)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield synthesize(tmp_path_factory.mktemp("cdk.out"))


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] == kind}


def props(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [res.get("Properties", {}) for res in resources(template, kind).values()]


def one(template: dict[str, Any], kind: str, logical_prefix: str = "") -> dict[str, Any]:
    found = [res for lid, res in resources(template, kind).items() if lid.startswith(logical_prefix)]
    assert len(found) == 1, f"expected one {kind} starting with {logical_prefix!r}, got {len(found)}"
    return found[0]
