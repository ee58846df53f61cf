"""Docker-free bundling: the asset layout and the wheel platform, without touching PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from stacks import bundling
from stacks.bundling import (
    LAMBDAS_DIR,
    BundleTooLargeError,
    PipLocalBundling,
    check_budget,
    lock_file,
    platform_tags,
    prune,
)
from stacks.sizing import UNZIPPED_LIMIT_BYTES

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


FUNCTIONS = ("log_consumer", "log_indexer", "incident_analyzer", "knowledge_sync", "opensearch_setup")


def lock_entries(folder: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a function's requirements.lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in lock_file(folder).read_text().splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "==" in stripped and not stripped.startswith("--"):
            name, version = stripped.split("==")
            current = name.lower()
            entries[current] = (version, [])
        elif stripped.startswith("--hash=sha256:"):
            entries[current][1].append(stripped.removeprefix("--hash=sha256:"))
    return entries


@pytest.mark.parametrize("folder", FUNCTIONS)
def test_lock_pins_every_package_with_hashes_and_matches_requirements(folder: str) -> None:
    entries = lock_entries(folder)
    assert entries
    for name, (version, hashes) in entries.items():
        assert hashes, f"{folder}: {name}=={version} has no hash"
        assert all(len(digest) == 64 for digest in hashes)
    # The lock was compiled from the current requirements.txt (run `make lock` after a change).
    for line in (LAMBDAS_DIR / folder / "requirements.txt").read_text().splitlines():
        name, version = line.split("==")
        assert entries[name.lower()][0] == version, f"{folder}: lock is stale for {line}; run make lock"


def test_bundling_installs_from_the_lock_without_resolving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> None:
        commands.append(command)

    monkeypatch.setattr("stacks.bundling.subprocess.run", fake_run)
    lock = lock_file("log_consumer")
    PipLocalBundling(("cali", "log_consumer"), lock, lambda_.Architecture.ARM_64).try_bundle(
        str(tmp_path / "a")
    )
    (command,) = commands
    assert command[command.index("-r") + 1] == str(lock)
    assert "--no-deps" in command and "--require-hashes" in command and "--only-binary=:all:" in command
    # ... and function_code() hands the lock, not requirements.txt, to the bundler.
    bundling.function_code("log_consumer", lambda_.Architecture.ARM_64)
    local = bundling._BUNDLING_CACHE[("log_consumer", lambda_.Architecture.ARM_64.name, ())].local
    assert isinstance(local, PipLocalBundling)
    assert local._requirements == lock_file("log_consumer")


def test_prune_removes_what_lambda_never_loads_and_keeps_the_rest(tmp_path: Path) -> None:
    removed = [
        "pandas/tests/test_x.py",
        "numpy/_core/include/numpy/ndarraytypes.h",
        "numpy/_core/tests/test_y.py",
        "onnxruntime/tools/convert.py",
        "onnxruntime/transformers/bert.py",
        "pkg/__pycache__/m.cpython-312.pyc",
        "pydantic_core/core_schema.pyi",
        "hf_xet/hf_xet.abi3.so",
        "bin/normalizer",
        "orjson-3.13.0.dist-info/RECORD",
    ]
    kept = [
        "onnxruntime/capi/onnxruntime_pybind11_state.so",
        "onnxruntime/__init__.py",
        "numpy/testing/__init__.py",
        "pandas/core/frame.py",
        "orjson-3.13.0.dist-info/METADATA",
    ]
    for relative in removed + kept:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    freed = prune(tmp_path)
    assert freed == 100 * len(removed)
    assert [r for r in removed if (tmp_path / r).exists()] == []
    assert all((tmp_path / k).exists() for k in kept)


def test_bundle_over_90_percent_of_lambdas_limit_fails_synth(tmp_path: Path) -> None:
    # Sparse files: the budget counts apparent sizes, as Lambda's unzipped limit does.
    (tmp_path / "onnxruntime").mkdir()
    with (tmp_path / "onnxruntime" / "big.so").open("wb") as handle:
        handle.truncate(int(UNZIPPED_LIMIT_BYTES * 0.89))
    assert check_budget(tmp_path, "incident_analyzer") == int(UNZIPPED_LIMIT_BYTES * 0.89)
    with (tmp_path / "extra.bin").open("wb") as handle:
        handle.truncate(int(UNZIPPED_LIMIT_BYTES * 0.02))
    with pytest.raises(BundleTooLargeError, match=r"incident_analyzer is .* over 90% .*onnxruntime"):
        check_budget(tmp_path, "incident_analyzer")
