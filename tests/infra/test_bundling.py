"""Docker-free bundling: the asset layout and the wheel platform, without touching PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from stacks.bundling import LAMBDAS_DIR, PipLocalBundling, platform_tags

pytestmark = pytest.mark.xdist_group("infra")


def test_platform_tags_cover_lambda_glibc_for_the_architecture() -> None:
    arm = platform_tags(lambda_.Architecture.ARM_64)
    assert "manylinux2014_aarch64" in arm
    assert "manylinux_2_28_aarch64" in arm
    assert "manylinux_2_34_aarch64" in arm  # Amazon Linux 2023
    assert "manylinux_2_35_aarch64" not in arm
    assert all("x86_64" in tag for tag in platform_tags(lambda_.Architecture.X86_64))


def test_every_function_pins_its_requirements_exactly() -> None:
    root_pins = {}
    for line in (LAMBDAS_DIR.parent / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            root_pins[name.split("[")[0].lower()] = version
    folders = [
        "log_consumer",
        "log_indexer",
        "incident_analyzer",
        "knowledge_sync",
        "opensearch_setup",
        "slack_interactions",
        "incident_lifecycle",
    ]
    for folder in folders:
        for line in (LAMBDAS_DIR / folder / "requirements.txt").read_text().splitlines():
            name, version = line.split("==")
            assert root_pins.get(name.lower()) == version, f"{folder}: {line} differs from requirements.txt"
    # Milvus Lite is the local stand-in; in Lambda, Milvus/Zilliz is reached by URI.
    analyzer = (LAMBDAS_DIR / "incident_analyzer" / "requirements.txt").read_text()
    assert "milvus-lite" not in analyzer
    assert "boto3" not in analyzer  # provided by the Lambda runtime


def test_bundle_holds_the_shared_package_and_the_handler_only(tmp_path: Path) -> None:
    empty = tmp_path / "requirements.txt"
    empty.write_text("")
    out = tmp_path / "asset"
    bundler = PipLocalBundling(("cali", "log_consumer"), empty, lambda_.Architecture.ARM_64)
    assert bundler.try_bundle(str(out)) is True
    assert (out / "cali" / "contracts" / "settings.py").is_file()
    assert (out / "log_consumer" / "__init__.py").is_file()
    assert not (out / "incident_analyzer").exists()
    assert not list(out.rglob("__pycache__"))
    assert not (out / "log_consumer" / "requirements.txt").exists()
