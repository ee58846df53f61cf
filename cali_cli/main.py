"""Entry point of the ``cali`` command.

Each subcommand lives in ``cali_cli/commands/<name>.py`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable taking
the parsed arguments and returning the exit code. Modules are imported only when their
subcommand runs would be nicer, but ``--help`` must list them all, so they keep their
heavy imports inside the function that runs the command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order shown by `cali --help`.
COMMANDS: tuple[str, ...] = (
    "demo",
    "loggen",
    "fingerprint",
    "parse",
    "redact",
    "dlq",
    "failures",
    "incident",
    "knowledge",
    "dashboards",
    "doctor",
    "archive",
    "quality",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cali",
        description="CALI operator tool: run the local pipeline, generate logs, parse raw lines, "
        "inspect fingerprints and redaction, manage the DLQ, the consumer's failed batches, "
        "incidents, the knowledge base and dashboards, and check a deployment with `cali doctor`.",
        epilog="Run `cali <command> --help` for the options of each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        importlib.import_module(f"cali_cli.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `cali fingerprint < big.log | head` must not print a traceback
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
