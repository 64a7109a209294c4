"""``lnn-control teleop --launch FILE_OR_NAME``: drive a launch file's robot by hand (keyboard or gamepad)."""

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
    add_launch_arguments(parser, "sim_lane_keeping, car_serial")
    parser.add_argument("--input", choices=["keyboard", "gamepad", "expert"], default="keyboard",
                        help="the human input device (default: keyboard, on this terminal); expert: the task's "
                             "privileged expert at a virtual gamepad (sim robots with pacing: lockstep; for "
                             "benchmarks of the data loop)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.runtime.core.arbiter import ControlMode
    from lnn_control.runtime.teleop import expert_teleop_launch, make_human_input, teleop_launch

    config, log_path = load_launch_arguments(args)
    if args.input == "expert":
        with robot_errors("gamepad"):
            result = expert_teleop_launch(config, str(args.launch), duration_s=args.duration, log_path=log_path)
    else:
        human = make_human_input(args.input, config, ControlMode.TELEOP)
        with robot_errors(args.input):
            result = teleop_launch(config, str(args.launch), human, duration_s=args.duration, log_path=log_path)
    report_run(result, args, "lnn-control dataset from-log {log} --out DATA")
    return 0
