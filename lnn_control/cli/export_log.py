"""``lnn-control export-log RUN.mcap --format rosbag2 --out BAG``: a run log as a ROS 2 bag."""

from __future__ import annotations

import argparse
from typing import Any


def add_car_arguments(parser: argparse.ArgumentParser) -> None:
    """The car kinematics flags of the action <-> Twist mapping (defaults: the 1/10 simulator car)."""
    group = parser.add_argument_group("car kinematics (action <-> Twist, REP-103)")
    group.add_argument("--wheelbase", type=float, default=0.30, metavar="M", help="axle distance in m (default 0.30)")
    group.add_argument("--max-steering", type=float, default=0.4, metavar="RAD",
                       help="front-wheel angle at steering ±1, rad (default 0.4)")
    group.add_argument("--max-speed", type=float, default=3.0, metavar="M/S",
                       help="speed at target_speed / throttle +1, m/s (default 3.0)")
    group.add_argument("--cruise-speed", type=float, default=1.5, metavar="M/S",
                       help="speed of a steering-only car, m/s (default 1.5)")


def car_config(args: argparse.Namespace) -> Any:
    """:class:`~lnn_control.runtime.ros2.twist.CarTwistConfig` from :func:`add_car_arguments`' flags."""
    from lnn_control.runtime.ros2.twist import CarTwistConfig

    return CarTwistConfig(wheelbase=args.wheelbase, max_steering=args.max_steering, max_speed=args.max_speed,
                          cruise_speed=args.cruise_speed)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-log",
        help="export a run log (MCAP) as a ROS 2 bag (rosbag2, MCAP storage)",
        description=(
            "Write a run log's camera frames (/camera/image_raw), commands (/cmd_vel TwistStamped, /lnn/action), "
            "neuron states (/lnn/neurons) and command sources (/lnn/source) as standard ROS 2 messages into a new "
            "bag folder that 'ros2 bag play' reads (needs the [ros2] extra)."
        ),
    )
    parser.add_argument("log", metavar="RUN.mcap", help="run log written by 'lnn-control run' / teleop")
    parser.add_argument("--format", choices=["rosbag2"], default="rosbag2", help="export format (default: rosbag2)")
    parser.add_argument("--out", required=True, metavar="BAG", help="new bag folder (must not exist)")
    parser.add_argument("--camera", choices=["raw", "compressed"], default="raw",
                        help="raw: decoded frames as sensor_msgs/Image rgb8 on /camera/image_raw (default); "
                             "compressed: the logged JPEG/PNG bytes as CompressedImage on /camera/image_raw/compressed")
    add_car_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.cli import CommandError
    from lnn_control.runtime.logs.rosbag2 import BagExportConfig, export_rosbag2

    config = BagExportConfig(camera=args.camera, car=car_config(args))
    try:
        report = export_rosbag2(args.log, args.out, config)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    for note in report.notes:
        print(f"note: {note}")
    counts = ", ".join(f"{topic} {count}" for topic, count in report.counts.items())
    print(f"wrote {report.bag} (rosbag2, MCAP): {counts}")
    return 0
