"""``lnn-control teleop --launch FILE_OR_NAME``: drive a launch file's robot by hand (keyboard or gamepad)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "teleop",
        help="drive a robot (sim or hardware) by hand, through the run loop's safety layer, with an MCAP log",
        description=(
            "Drive the robot of a run launch file by hand at its rate_hz, through the same safety layer as "
            "'run' (clamp, slew limit, watchdog, e-stop). The launch file's policy is not used. Keyboard: "
            "a/d (or left/right) and w/s (up/down) step the command, h holds it, space stops, e latches the "
            "e-stop, q quits; no key for teleop.keyboard.hold_s (0.5 s) = dead-man released = stop. Gamepad "
            "(Xbox-style by default): hold LB (dead-man) and steer with the sticks; B latches the e-stop, "
            "START quits. Ctrl-C / SIGTERM stop the robot and end the run."
        ),
    )
    parser.add_argument(
        "--launch", required=True, metavar="FILE_OR_NAME",
        help="launch YAML file, or a shipped one by name (e.g. sim_lane_keeping, car_serial)",
    )
    parser.add_argument("--input", choices=["keyboard", "gamepad"], default="keyboard",
                        help="the human input device (default: keyboard, on this terminal)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: launch file)")
    parser.add_argument("--log", metavar="FILE", help="MCAP run log path (default: <log.dir>/run-<time>.mcap)")
    parser.add_argument("--no-log", action="store_true", help="record nothing")
    parser.add_argument("--stats-json", metavar="FILE", help="write the final loop statistics as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from lnn_control.atomic import atomic_write_json
    from lnn_control.cli import CommandError
    from lnn_control.runtime.core.arbiter import ControlMode, InputDeviceError
    from lnn_control.runtime.core.robot import RobotError
    from lnn_control.runtime.core.stats import print_summary
    from lnn_control.runtime.launch import load_launch
    from lnn_control.runtime.session import RobotConnectError
    from lnn_control.runtime.teleop import make_human_input, teleop_launch

    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration must be > 0 seconds, got {args.duration}")
    config = load_launch(args.launch)
    if args.no_log:
        config = replace(config, log=replace(config.log, dir=None))
    log_path = Path(args.log) if args.log and not args.no_log else None
    human = make_human_input(args.input, config, ControlMode.TELEOP)
    try:
        result = teleop_launch(config, str(args.launch), human, duration_s=args.duration, log_path=log_path)
    except InputDeviceError as exc:
        raise CommandError(f"{args.input}: {exc}") from exc
    except RobotConnectError as exc:
        raise CommandError(f"{exc}; the control loop never started") from exc
    except RobotError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        raise CommandError(f"robot failed: {exc}; {notes} (see /safety/events in the run log)") from exc
    print_summary(result.stats)
    if result.log_path is not None:
        print(f"run log: {result.log_path}  (lnn-control dataset from-log {result.log_path} --out DATA)")
    if args.stats_json:
        atomic_write_json(args.stats_json, result.stats.summary())
    return 0
