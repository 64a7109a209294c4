"""The ``lnn-control`` command line.

Each subcommand lives in its own module under ``lnn_control.cli`` and exposes
``register(subparsers)``; the module is imported only to build the parser, and heavy
imports (torch, simulators) happen inside the command's handler.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lnn_control import __version__

# Subcommand modules, in the order they are listed by ``lnn-control --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "lnn_control.cli.info",
    "lnn_control.cli.collect",
    "lnn_control.cli.train",
    "lnn_control.cli.eval",
    "lnn_control.cli.study",
    "lnn_control.cli.demo",
    "lnn_control.cli.explain",
    "lnn_control.cli.conditions",
    "lnn_control.cli.export",
    "lnn_control.cli.export_log",
    "lnn_control.cli.run",
    "lnn_control.cli.teleop",
    "lnn_control.cli.replay",
    "lnn_control.cli.dataset",
    "lnn_control.cli.camera",
    "lnn_control.cli.ros2",
    "lnn_control.cli.bench",
)


class CommandError(Exception):
    """A user-facing failure: printed as ``error: <message>`` with exit status 2, no traceback."""


def print_report(table: str, report: dict, json_path: str | None) -> None:
    """Print a benchmark's table and, when asked, write its full report as JSON (atomically)."""
    print(table)
    if json_path:
        from lnn_control.atomic import atomic_write_json

        atomic_write_json(json_path, report)
        print(f"wrote {json_path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lnn-control",
        description="Liquid neural network control: simulate, train, evaluate, drive robots.",
    )
    parser.add_argument("--version", action="version", version=f"lnn-control {__version__}")
    parser.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                        default=logging.INFO, help="debug messages too")
    parser.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                        help="warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def configure_logging(level: int) -> None:
    """The library logs through ``logging`` (module loggers under ``lnn_control``); the CLI shows
    them on stderr: plain messages at INFO, with the level named from WARNING up."""

    class _Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            message = record.getMessage()
            return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    package = logging.getLogger("lnn_control")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        result = args.func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Validation errors from the library already say what was wrong and what is allowed.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        from lnn_control.extras import missing_extra_message

        message = missing_extra_message(exc)
        if message is None:
            raise
        print(f"error: lnn-control {args.command}: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
