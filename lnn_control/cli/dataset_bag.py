"""``lnn-control dataset from-bag BAG --camera TOPIC --command TOPIC --out DATA``: a ROS 2 bag as episodes."""

from __future__ import annotations

import argparse
import shlex

from lnn_control.cli.export_log import add_car_arguments, car_config


def register(actions: argparse._SubParsersAction) -> None:
    """Add ``from-bag`` to the ``dataset`` subcommand's actions."""
    parser = actions.add_parser(
        "from-bag",
        help="a ROS 2 bag (rosbag2, MCAP or sqlite3) -> a new episode dataset (needs the [ros2] extra)",
        description=(
            "Frames from an Image/CompressedImage topic; each frame is labelled with the first command "
            "(TwistStamped / Twist / Float32MultiArray) stamped within --tolerance after it; timestamps "
            "are the frames' header stamps. Frames without a usable command are left out and split episodes."
        ),
    )
    parser.add_argument("bag", metavar="BAG", help="rosbag2 folder (with metadata.yaml) or its .mcap / .db3 file")
    parser.add_argument("--camera", required=True, metavar="TOPIC", help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--command", required=True, metavar="TOPIC",
                        help="geometry_msgs/TwistStamped, Twist or std_msgs/Float32MultiArray topic")
    parser.add_argument("--odom", metavar="TOPIC", help="nav_msgs/Odometry topic for the extras (speed / vx, vy, vz)")
    parser.add_argument("--out", required=True, metavar="DATA", help="new dataset folder (must not hold files)")
    parser.add_argument("--image-size", metavar="HxW", help="frame size of the dataset (default: the spec policy's, else the bag's)")
    parser.add_argument("--spec", metavar="POLICY",
                        help="bundle dir / .zip / .onnx / shipped name giving the specs (needed for the drone)")
    parser.add_argument("--actions", metavar="NAMES",
                        help="action layout without --spec: steering | steering,throttle | steering,target_speed "
                             "(default: a Float32MultiArray's label, else steering)")
    parser.add_argument("--tolerance", type=float, default=0.1, metavar="S",
                        help="a frame's command must be stamped within S seconds after it (default 0.1)")
    parser.add_argument("--max-gap", type=float, default=0.5, metavar="S",
                        help="a longer gap between frames starts a new episode (default 0.5 s)")
    parser.add_argument("--json", metavar="FILE", help="also write the conversion report as JSON")
    add_car_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.cli import CommandError
    from lnn_control.data.from_bag import FromBagConfig, convert_bag
    from lnn_control.data.from_log import parse_image_size

    config = FromBagConfig(
        camera_topic=args.camera, command_topic=args.command, odom_topic=args.odom,
        image_size=None if args.image_size is None else parse_image_size(args.image_size),
        spec=args.spec, actions=None if args.actions is None else tuple(args.actions.split(",")),
        tolerance_s=args.tolerance, max_gap_s=args.max_gap, car=car_config(args),
    )
    try:
        report = convert_bag(args.bag, args.out, config, command=_command_line(args))
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    for note in report.notes:
        print(f"note: {note}")
    entry = report.logs[0]
    print(f"wrote {report.root}: {report.episodes} episodes, {report.steps} steps from {entry['frames']} frames "
          f"and {entry['commands']} commands; hash {report.dataset_hash}")
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The from-bag command as a shell line (recorded as the dataset's ``created_by``)."""
    words = ["lnn-control", "dataset", "from-bag", args.bag, "--camera", args.camera, "--command", args.command,
             "--out", args.out]
    for flag, value in (("--odom", args.odom), ("--image-size", args.image_size), ("--spec", args.spec),
                        ("--actions", args.actions)):
        if value is not None:
            words += [flag, str(value)]
    for flag, value, default in (("--tolerance", args.tolerance, 0.1), ("--max-gap", args.max_gap, 0.5),
                                 ("--wheelbase", args.wheelbase, 0.30), ("--max-steering", args.max_steering, 0.4),
                                 ("--max-speed", args.max_speed, 3.0), ("--cruise-speed", args.cruise_speed, 1.5)):
        if value != default:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)
