"""What ``run`` and ``teleop`` share: the launch-file arguments, the log switches, the robot errors
turned into one-line command errors, and the end-of-run summary."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any


def add_launch_arguments(parser: argparse.ArgumentParser, examples: str) -> None:
    """``--launch`` (``examples``: shipped names to show), ``--duration``, ``--log``, ``--no-log``,
    ``--stats-json``."""
    parser.add_argument(
        "--launch", required=True, metavar="FILE_OR_NAME",
        help=f"launch YAML file, or a shipped one by name (e.g. {examples})",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: launch file)")
    parser.add_argument("--log", metavar="FILE", help="MCAP run log path (default: <log.dir>/run-<time>.mcap)")
    parser.add_argument("--no-log", action="store_true", help="write no run log")
    parser.add_argument("--stats-json", metavar="FILE", help="write the final loop statistics as JSON")


def load_launch_arguments(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The launch file (``LaunchConfig``, logging switched off by ``--no-log``) and the ``--log`` path."""
    from lnn_control.cli import CommandError
    from lnn_control.runtime.launch import load_launch

    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration must be > 0 seconds, got {args.duration}")
    config = load_launch(args.launch)
    if args.no_log:
        config = replace(config, log=replace(config.log, dir=None))
    return config, Path(args.log) if args.log and not args.no_log else None


@contextlib.contextmanager
def robot_errors(input_label: str) -> Iterator[None]:
    """Turn input-device, connection and robot failures into one-line ``CommandError``s
    (``input_label`` names the human input option in the message)."""
    from lnn_control.cli import CommandError
    from lnn_control.runtime.core.arbiter import InputDeviceError
    from lnn_control.runtime.core.robot import RobotError
    from lnn_control.runtime.session import RobotConnectError

    try:
        yield
    except InputDeviceError as exc:
        raise CommandError(f"{input_label}: {exc}") from exc
    except RobotConnectError as exc:
        raise CommandError(f"{exc}; the control loop never started") from exc
    except RobotError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        raise CommandError(f"robot failed: {exc}; {notes} (see /safety/events in the run log)") from exc


def report_run(result: Any, args: argparse.Namespace, next_step: str) -> None:
    """Print the loop summary and the log path (with ``next_step``: a command using ``{log}``), and
    write ``--stats-json``."""
    from lnn_control.atomic import atomic_write_json
    from lnn_control.runtime.core.stats import print_summary

    print_summary(result.stats)
    if result.log_path is not None:
        print(f"run log: {result.log_path}  ({next_step.format(log=result.log_path)})")
    if args.stats_json:
        atomic_write_json(args.stats_json, result.stats.summary())
