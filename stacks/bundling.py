"""Lambda code assets built without Docker.

Each function's asset is the shared ``cali`` package, its own handler folder (plus any
extra folders such as the knowledge base) and its ``requirements.txt`` installed as
manylinux wheels for the Lambda runtime. ``pip install --platform ... --only-binary``
resolves wheels for Linux/CPython 3.12 from any host, so no container is needed.
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

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
PYTHON_VERSION = "3.12"
RUNTIME = lambda_.Runtime.PYTHON_3_12
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): every manylinux tag up
# to 2_34 runs there. pip does not expand manylinux_2_x tags itself, so list them.
_GLIBC_MINORS = range(17, 35)
UNZIPPED_LIMIT_BYTES = 262_144_000  # Lambda's 250 MiB limit for code + layers
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt", ".pytest_cache")
# Bump when the bundling recipe changes so every asset hash changes with it.
_RECIPE_VERSION = "1"


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
            # The check compares against the synth venv, not the bundle: misleading here.
            "--no-warn-conflicts",
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
        _prune(out)
        for folder in self._folders:
            shutil.copytree(LAMBDAS_DIR / folder, out / folder, ignore=_IGNORED, dirs_exist_ok=True)
        size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
        if size > UNZIPPED_LIMIT_BYTES:
            # Fail at synth with the reason rather than at deploy with a generic error.
            raise RuntimeError(
                f"Lambda bundle for {self._folders[1]} is {size / 1e6:.1f} MB unzipped; "
                f"Lambda allows {UNZIPPED_LIMIT_BYTES / 1e6:.1f} MB"
            )
        return True


def _prune(out: Path) -> None:
    # Files Lambda never loads: they only inflate the unzipped size (limit 250 MB).
    for pattern in ("**/__pycache__", "**/tests", "**/*.dist-info/RECORD"):
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                path.unlink()
    shutil.rmtree(out / "bin", ignore_errors=True)


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
    """The asset of one function: ``cali`` + ``handler_folder`` + extras + requirements.

    Editing one handler changes only that function's bundle, so only it redeploys.
    """
    key = (handler_folder, architecture.name, tuple(extra_folders))
    if key not in _BUNDLING_CACHE:
        # One BundlingOptions object per function for the whole app: every Stage then
        # hits the same staging cache entry, so pip runs once per function, not per env.
        folders = ("cali", handler_folder, *extra_folders)
        requirements = LAMBDAS_DIR / handler_folder / "requirements.txt"
        _BUNDLING_CACHE[key] = BundlingOptions(
            image=RUNTIME.bundling_image,
            local=PipLocalBundling(folders, requirements, architecture),
            # Only reached if local bundling returned False, which it never does.
            command=["false"],
        )
    # The hash is the fingerprint of the bundle itself: a custom hash would be mixed with
    # the JSON of the bundling options, whose jsii proxy for `local` is not stable
    # between runs. Pins are exact, so an unchanged bundle keeps its hash.
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR / handler_folder),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=_BUNDLING_CACHE[key],
    )
