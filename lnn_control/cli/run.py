"""``lnn-control run --launch FILE_OR_NAME``: drive a simulated or real robot with a policy."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a policy on a robot (sim or hardware) in the real-time loop, with an MCAP log",
        description=(
            "Run the fixed-rate control loop a launch file describes. Ctrl-C / SIGTERM stop the robot "
            "and end the run; 'e' or space (on a terminal) or SIGUSR1 latch the e-stop. With --takeover a "
            "human takes over while holding the takeover control (gamepad: RB; keyboard: any drive key, "
            "held = a key within teleop.keyboard.hold_s) and hands back on release; the policy keeps "
            "running and its command is logged in human segments too (human-gated DAgger)."
        ),
    )
    parser.add_argument(
        "--launch", required=True, metavar="FILE_OR_NAME",
        help="launch YAML file, or a shipped one by name (e.g. sim_lane_keeping)",
    )
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: launch file)")
    parser.add_argument("--policy", metavar="P", help="policy bundle dir, shipped name or .onnx file (overrides)")
    parser.add_argument("--engine", choices=["torch", "onnx"], help="policy engine (overrides the launch file)")
    parser.add_argument("--log", metavar="FILE", help="MCAP run log path (default: <log.dir>/run-<time>.mcap)")
    parser.add_argument("--no-log", action="store_true", help="write no run log")
    parser.add_argument("--stats-json", metavar="FILE", help="write the final loop statistics as JSON")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("--takeover", choices=["gamepad", "keyboard"],
                        help="let a human take over from the policy with this input device")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace
    from pathlib import Path

    from lnn_control.atomic import atomic_write_json
    from lnn_control.cli import CommandError
    from lnn_control.runtime.core.arbiter import ControlMode, InputDeviceError
    from lnn_control.runtime.core.loop import print_summary
    from lnn_control.runtime.core.robot import RobotError
    from lnn_control.runtime.launch import Engine, load_launch
    from lnn_control.runtime.session import RobotConnectError, run_launch

    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration must be > 0 seconds, got {args.duration}")
    config = load_launch(args.launch)
    if args.policy:
        config = replace(config, policy=args.policy)
    if args.engine:
        config = replace(config, engine=Engine(args.engine))
    if args.no_log:
        config = replace(config, log=replace(config.log, dir=None))
    log_path = Path(args.log) if args.log and not args.no_log else None
    takeover = None
    if args.takeover:
        from lnn_control.runtime.teleop import make_human_input

        takeover = make_human_input(args.takeover, config, ControlMode.TAKEOVER)
    try:
        result = run_launch(
            config,
            source=str(args.launch),
            duration_s=args.duration,
            log_path=log_path,
            live_stream=None if args.quiet else sys.stderr,
            takeover=takeover,
        )
    except InputDeviceError as exc:
        raise CommandError(f"--takeover {args.takeover}: {exc}") from exc
    except RobotConnectError as exc:
        raise CommandError(f"{exc}; the control loop never started") from exc
    except RobotError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        raise CommandError(f"robot failed: {exc}; {notes} (see /safety/events in the run log)") from exc
    print_summary(result.stats)
    if result.log_path is not None:
        print(f"run log: {result.log_path}  (open in Foxglove, or: lnn-control replay {result.log_path})")
    if args.stats_json:
        atomic_write_json(args.stats_json, result.stats.summary())
    return 0
