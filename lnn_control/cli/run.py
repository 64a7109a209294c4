"""``lnn-control run --launch FILE_OR_NAME``: drive a simulated or real robot with a policy."""

from __future__ import annotations

import argparse

from lnn_control.cli.loop_args import (
    add_launch_arguments,
    load_launch_arguments,
    report_run,
    robot_errors,
)


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
    add_launch_arguments(parser, "sim_lane_keeping")
    parser.add_argument("--policy", metavar="P", help="policy bundle dir, shipped name or .onnx file (overrides)")
    parser.add_argument("--engine", choices=["torch", "onnx"], help="policy engine (overrides the launch file)")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument("--takeover", choices=["gamepad", "keyboard"],
                        help="let a human take over from the policy with this input device")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from dataclasses import replace

    from lnn_control.runtime.core.arbiter import ControlMode
    from lnn_control.runtime.launch import Engine
    from lnn_control.runtime.session import run_launch

    config, log_path = load_launch_arguments(args)
    if args.policy:
        config = replace(config, policy=args.policy)
    if args.engine:
        config = replace(config, engine=Engine(args.engine))
    takeover = None
    if args.takeover:
        from lnn_control.runtime.teleop import make_human_input

        takeover = make_human_input(args.takeover, config, ControlMode.TAKEOVER)
    with robot_errors(f"--takeover {args.takeover}"):
        result = run_launch(
            config,
            source=str(args.launch),
            duration_s=args.duration,
            log_path=log_path,
            live_stream=None if args.quiet else sys.stderr,
            takeover=takeover,
        )
    report_run(result, args, "open in Foxglove, or: lnn-control replay {log}")
    return 0
