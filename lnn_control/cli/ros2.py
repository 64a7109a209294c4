"""``lnn-control ros2 camera-pub|graph``: a ROS 2 camera of our own and a look at the ROS graph, over Zenoh.

- ``camera-pub``: play a video file (OpenCV) or the synthetic road as a ROS 2 camera
  (``sensor_msgs/msg/Image`` or ``CompressedImage``) in the rmw_zenoh wire format, optionally with
  ``nav_msgs/msg/Odometry``; for dry runs of ``robot.kind: ros2`` launch files and for the bench.
- ``graph``: the nodes, publishers and subscriptions on a ROS domain, read from the rmw_zenoh
  liveliness tokens (what ``ros2 node list`` / ``ros2 topic list -t`` show), no ROS install needed.

Both need the ``[ros2]`` extra. Endpoints default to rmw_zenoh's: connect to the router at
``tcp/localhost:7447``, listen on a free local port. ``--standalone`` needs no router: it listens on
``tcp/localhost:7447`` itself, where the default ``robot.ros2.zenoh.connect`` looks.
"""

from __future__ import annotations

import argparse
import signal
import sys

from lnn_control.cli import CommandError, print_report

STANDALONE_ENDPOINT = "tcp/localhost:7447"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ros2", help="ROS 2 over Zenoh (rmw_zenoh): a camera publisher, the ROS graph")
    actions = parser.add_subparsers(dest="ros2_action", metavar="ACTION", required=True)
    camera = actions.add_parser(
        "camera-pub", help="publish a video file or a synthetic road as a ROS 2 camera (rmw_zenoh wire format)",
        description="Publish frames at --rate on --topic, stamped with the wall clock, until --duration or Ctrl-C.",
    )
    camera.add_argument("video", nargs="?", metavar="VIDEO", help="video file (OpenCV); loops at its end")
    camera.add_argument("--synthetic", action="store_true", help="the synthetic road instead of a video")
    camera.add_argument("--topic", default="/camera/image_raw", help="camera topic (default /camera/image_raw)")
    camera.add_argument("--type", choices=["Image", "CompressedImage"], default="Image",
                        help="sensor_msgs type (default Image, rgb8; CompressedImage: JPEG)")
    camera.add_argument("--rate", type=float, default=30.0, metavar="HZ", help="frames per second (default 30)")
    camera.add_argument("--size", default="64x128", metavar="HxW",
                        help="frame size, height x width (default 64x128, the policies' input)")
    camera.add_argument("--frame-id", default="camera", help="header.frame_id (default camera)")
    camera.add_argument("--odometry", metavar="TOPIC", help="also publish nav_msgs/Odometry here with each frame")
    camera.add_argument("--speed", type=float, default=1.5, metavar="M_S",
                        help="forward speed in that odometry (m/s, default 1.5: the lane car's cruise speed)")
    camera.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    add_zenoh_arguments(camera, node_default="lnn_camera")
    camera.set_defaults(func=run_camera_pub)
    graph = actions.add_parser("graph", help="list the nodes and topics on a ROS domain (rmw_zenoh liveliness)")
    graph.add_argument("--wait", type=float, default=1.0, metavar="S", help="seconds to collect tokens (default 1)")
    add_zenoh_arguments(graph, node_default="lnn_graph")
    graph.set_defaults(func=run_graph)


def add_zenoh_arguments(parser: argparse.ArgumentParser, node_default: str) -> None:
    parser.add_argument("--domain", type=int, default=0, help="ROS_DOMAIN_ID (default 0)")
    parser.add_argument("--node", default=node_default, help=f"our node's name (default {node_default})")
    parser.add_argument("--connect", action="append", metavar="ENDPOINT",
                        help="Zenoh endpoint to connect to, repeatable (default tcp/localhost:7447, the router; "
                             "'none': connect nowhere, others connect to our --listen)")
    parser.add_argument("--listen", action="append", metavar="ENDPOINT",
                        help="Zenoh endpoint to listen on, repeatable (default tcp/localhost:0)")
    parser.add_argument("--standalone", action="store_true",
                        help=f"no router: listen on {STANDALONE_ENDPOINT} and connect nowhere")


def zenoh_settings(args: argparse.Namespace):  # noqa: ANN201 - ZenohConfig, imported lazily
    from lnn_control.runtime.ros2.config import ZenohConfig

    if args.standalone and (args.connect or args.listen):
        raise CommandError("--standalone sets the endpoints itself; drop --connect / --listen")
    if args.standalone:
        return ZenohConfig(connect=(), listen=(STANDALONE_ENDPOINT,))
    defaults = ZenohConfig()
    connect = () if args.connect == ["none"] else tuple(args.connect or defaults.connect)
    try:
        return ZenohConfig(connect=connect, listen=tuple(args.listen or defaults.listen))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise CommandError(f"--size must be HEIGHTxWIDTH in pixels, e.g. 64x128, got {text!r}")
    return int(parts[0]), int(parts[1])


def run_camera_pub(args: argparse.Namespace) -> int:
    from lnn_control.extras import require

    require("zenoh", "lnn-control ros2")
    require("rosbags", "lnn-control ros2")
    from lnn_control.runtime.ros2.camera_publisher import (
        CameraPublisher,
        CameraPublisherConfig,
        VideoFrames,
        synthetic_frame,
    )
    from lnn_control.runtime.ros2.node import Ros2LinkError, Ros2Node
    from lnn_control.runtime.ros2.zenoh_wire import resolve_topic

    if bool(args.video) == bool(args.synthetic):
        raise CommandError("give a VIDEO file or --synthetic (one of them)")
    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"--duration must be > 0 seconds, got {args.duration}")
    shape = _size(args.size)
    config = CameraPublisherConfig(
        topic=resolve_topic(args.topic), type=args.type, rate_hz=args.rate, frame_id=args.frame_id,
        odometry_topic=resolve_topic(args.odometry) if args.odometry else None,
        odometry_linear=(args.speed, 0.0, 0.0),
    )
    video = VideoFrames(args.video, shape) if args.video else None
    source = video if video is not None else (lambda index: synthetic_frame(index, shape))
    node = Ros2Node(zenoh_settings(args), args.domain, args.node)
    try:
        node.open()
    except Ros2LinkError as exc:
        raise CommandError(str(exc)) from exc
    try:
        publisher = CameraPublisher(node, config, source)
        print(f"publishing {config.msgtype} {shape[0]}x{shape[1]} (HxW) at {config.rate_hz:g} Hz on {config.topic} "
              f"(key {publisher.key_expr}), node {node.name}, zid {node.zid}", file=sys.stderr, flush=True)
        # SIGINT (Ctrl-C) and SIGTERM end the stream after the current frame; set explicitly, because a
        # process started in the background by a non-interactive shell inherits SIGINT ignored
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, lambda _signum, _frame: publisher.stop())
        stats = publisher.run(duration_s=args.duration)
    finally:
        node.close()
        if video is not None:
            video.close()
    print(f"published {stats.frames} frames ({stats.late} late)", file=sys.stderr)
    return 0


def run_graph(args: argparse.Namespace) -> int:
    from lnn_control.extras import require

    require("zenoh", "lnn-control ros2")
    require("rosbags", "lnn-control ros2")
    from lnn_control.runtime.ros2.node import Ros2LinkError, Ros2Node

    node = Ros2Node(zenoh_settings(args), args.domain, args.node)
    try:
        node.open()
        entities = [e for e in node.graph(args.wait) if e.node.zid != node.zid]
    except Ros2LinkError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        node.close()
    nodes = sorted({(e.node.namespace.rstrip("/") + "/" + e.node.name) for e in entities})
    print(f"domain {args.domain}: {len(nodes)} node(s)")
    for name in nodes:
        print(f"  {name}")
    topics: dict[str, set[str]] = {}
    for entity in entities:
        if entity.topic is not None:
            role = "pub" if entity.kind.value == "MP" else "sub" if entity.kind.value == "MS" else entity.kind.value
            topics.setdefault(f"{entity.topic.name} [{entity.ros_type}]", set()).add(role)
    print(f"{len(topics)} topic(s)")
    for topic, roles in sorted(topics.items()):
        print(f"  {topic}  ({', '.join(sorted(roles))})")
    return 0


def add_ros2_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    """Register ``ros2`` under the ``bench`` command group."""
    parser = bench_subparsers.add_parser(
        "ros2", help="camera -> policy -> TwistStamped over Zenoh (loopback) vs the same loop in simulation",
    )
    parser.add_argument("--duration", type=float, default=30.0, metavar="S", help="each timed loop (default 30)")
    parser.add_argument("--rate", type=float, default=50.0, metavar="HZ", help="camera and loop rate (default 50)")
    parser.add_argument("--policy", metavar="P", help="policy bundle (default: the shipped lane policy)")
    parser.add_argument("--type", choices=["Image", "CompressedImage"], default="Image", help="camera message")
    parser.add_argument("--watchdog-trials", type=int, default=3, metavar="N",
                        help="camera stops measured (default 3; 0 = skip)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON (atomic)")
    parser.set_defaults(func=run_ros2_bench_command)


def run_ros2_bench_command(args: argparse.Namespace) -> int:
    from lnn_control.bench.ros2 import Ros2BenchSettings, format_ros2_report, run_ros2_bench
    from lnn_control.extras import require

    require("zenoh", "lnn-control bench ros2")
    require("rosbags", "lnn-control bench ros2")
    try:
        settings = Ros2BenchSettings(duration_s=args.duration, rate_hz=args.rate, policy=args.policy,
                                     image_type=args.type, watchdog_trials=args.watchdog_trials)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    report = run_ros2_bench(settings, progress=lambda message: print(f"... {message}", file=sys.stderr))
    print_report(format_ros2_report(report), report, args.json)
    return 0
