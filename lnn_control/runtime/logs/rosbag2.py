"""A run log (MCAP, our JSON topics) -> a ROS 2 bag (rosbag2, MCAP storage, CDR messages).

``lnn-control export-log RUN.mcap --format rosbag2 --out BAG``. The bag is rosbag2 metadata
version 8 (what Jazzy's ``ros2 bag`` writes; :data:`~lnn_control.runtime.ros2.messages.DISTRO`
type definitions and RIHS01 hashes), one ``BAG/BAG.mcap`` file plus ``BAG/metadata.yaml``:

====================================  ===================================  ===========================================
topic                                 type                                 from the run log
====================================  ===================================  ===========================================
/camera/image_raw                     sensor_msgs/msg/Image (rgb8)         ``/camera/image`` decoded (``camera: raw``)
/camera/image_raw/compressed          sensor_msgs/msg/CompressedImage      ``/camera/image`` bytes as logged (``camera:
                                                                           compressed``; no re-encoding)
/cmd_vel                              geometry_msgs/msg/TwistStamped       ``/commands/sent`` through
                                                                           :mod:`lnn_control.runtime.ros2.twist`; a stop
                                                                           step is the zero twist
/lnn/action                           std_msgs/msg/Float32MultiArray       ``/commands/applied`` (else ``/commands/sent``)
                                                                           per step, action units, names in the label
/lnn/neurons                          std_msgs/msg/Float32MultiArray       ``/policy/neurons`` (when logged)
/lnn/source                           std_msgs/msg/String                  ``policy`` / ``human`` / ``stop`` of
                                                                           ``/commands/sent`` (logs from version 2)
/odom                                 nav_msgs/msg/Odometry                ``/loop/timing`` extras of the step: body twist
                                                                           ``linear.x`` = ``speed`` (car) or ``linear`` =
                                                                           (``vx``, ``vy``, ``vz``) (drone); stamp = the
                                                                           frame's capture time; pose unknown (zeros,
                                                                           covariance -1 on the diagonal)
====================================  ===================================  ===========================================

Times: header stamps are wall-clock ns (camera and ``/odom``: the frame's capture time; commands:
the time the loop wrote them), computed as ``round(monotonic · 1e9) + round(offset · 1e9)`` from
``/loop/timing`` so that every difference is exact to the nanosecond (the run log's own message
times are quantised to ≈ 0.24 µs; the two differ by less than that). The bag's record time of a
message is its header stamp (``/lnn/*``: the step's write time). A
non-finite logged value is NaN in a Float32MultiArray and leaves that step out of ``/cmd_vel``.
The run metadata record goes into the bag's ``custom_data`` (``lnn_control.run`` as JSON).

Atomic: the bag is written into a hidden sibling folder and renamed into place at the end; an
existing ``BAG`` is never touched (the export refuses to start).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.runtime.logs.runlog import LoggedMessage, RunLog
from lnn_control.runtime.ros2.twist import CarTwistConfig, Twist, twist_from_action, vehicle_of

TOPIC_IMAGE = "/camera/image_raw"
TOPIC_COMPRESSED = "/camera/image_raw/compressed"
TOPIC_CMD_VEL = "/cmd_vel"
TOPIC_ACTION = "/lnn/action"
TOPIC_NEURONS = "/lnn/neurons"
TOPIC_SOURCE = "/lnn/source"
TOPIC_ODOM = "/odom"
BAG_VERSION: Literal[8, 9] = 8
"""rosbag2 metadata version written (Jazzy's)."""


@dataclass(frozen=True)
class BagExportConfig:
    """camera: ``raw`` = decoded frames as ``sensor_msgs/Image`` rgb8 on ``/camera/image_raw``;
    ``compressed`` = the logged JPEG/PNG bytes unchanged as ``CompressedImage`` on
    ``/camera/image_raw/compressed``. car: the car kinematics of the ``/cmd_vel`` mapping.
    camera_frame_id / base_frame_id / odom_frame_id: header ``frame_id`` of frames / of commands
    (and the odometry's ``child_frame_id``) / of the odometry."""

    camera: Literal["raw", "compressed"] = "raw"
    car: CarTwistConfig = field(default_factory=CarTwistConfig)
    camera_frame_id: str = "camera"
    base_frame_id: str = "base_link"
    odom_frame_id: str = "odom"

    def __post_init__(self) -> None:
        if self.camera not in ("raw", "compressed"):
            raise ValueError(f"camera {self.camera!r} is not 'raw' or 'compressed'")


@dataclass
class BagExportReport:
    """What :func:`export_rosbag2` wrote: the bag folder, messages per topic, notes for the user."""

    bag: Path
    counts: dict[str, int]
    notes: list[str]
    log_complete: bool

    def to_dict(self) -> dict[str, Any]:
        return {"bag": str(self.bag), "counts": self.counts, "notes": self.notes, "log_complete": self.log_complete}


class _Clock:
    """Wall-clock ns of a step's capture / write time, every difference exact to the nanosecond:
    ``round(monotonic · 1e9) + round(offset · 1e9)`` from ``/loop/timing`` (the run log's own message
    times add the float offset first, which quantises each to 2^-22 s ≈ 0.24 µs); a message without
    its timing record falls back to its logged stamp."""

    def __init__(self, log: RunLog) -> None:
        self.offset_ns = round(float(log.metadata.get("monotonic_to_unix_offset_s", "0")) * 1e9)
        self.timing = {msg.sequence: msg.payload for msg in log.topic("/loop/timing")}

    def capture_ns(self, message: LoggedMessage) -> int:
        return self._ns(message, "frame_timestamp_s")

    def write_ns(self, message: LoggedMessage) -> int:
        return self._ns(message, "write_time_s")

    def _ns(self, message: LoggedMessage, key: str) -> int:
        timing = self.timing.get(message.sequence)
        if timing is not None and key in timing:
            return round(float(timing[key]) * 1e9) + self.offset_ns
        stamp = message.payload.get("timestamp")
        if not isinstance(stamp, dict):
            return message.log_time_ns
        return int(stamp["sec"]) * 1_000_000_000 + int(stamp["nsec"])


def _values(payload: dict[str, Any], names: tuple[str, ...]) -> np.ndarray:
    """A command payload's values in ``names`` order, float32; missing / null -> NaN."""
    values = payload.get("values") or {}
    return np.array([math.nan if values.get(n) is None else float(values[n]) for n in names], np.float32)


Build = Callable[[], Any]
"""Builds one message when it is written (frames are decoded lazily, one at a time)."""


class _Plan:
    """Per topic: message type and a time-ordered stream of (record time ns, builder)."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.streams: dict[str, tuple[str, list[tuple[int, Build]]]] = {}
        self.notes: list[str] = []

    def add(self, topic: str, msgtype: str, items: list[tuple[int, Build]]) -> None:
        if items:
            items.sort(key=lambda item: item[0])
            self.streams[topic] = (msgtype, items)


def _plan_camera(plan: _Plan, log: RunLog, config: BagExportConfig) -> None:
    from lnn_control.runtime.ros2 import messages as m

    frames = log.topic("/camera/image")
    if not frames:
        plan.notes.append(f"{log.path}: the run log holds no camera frames; the bag has no camera topic")
        return

    def build(message: LoggedMessage, stamp: int) -> Build:
        def make() -> Any:
            import base64

            from lnn_control.runtime.logs.runlog import decode_image

            data = base64.b64decode(message.payload["data"])
            if config.camera == "compressed":
                fmt = str(message.payload.get("format", "jpeg"))
                return m.typestore().types[m.COMPRESSED_IMAGE](
                    header=m.header(stamp, config.camera_frame_id), format=fmt, data=np.frombuffer(data, np.uint8))
            return m.image_message(decode_image(data), stamp, config.camera_frame_id)
        return make

    topic, msgtype = (TOPIC_IMAGE, m.IMAGE) if config.camera == "raw" else (TOPIC_COMPRESSED, m.COMPRESSED_IMAGE)
    stamps = [plan.clock.capture_ns(f) for f in frames]
    plan.add(topic, msgtype, [(stamp, build(f, stamp)) for f, stamp in zip(frames, stamps)])


def _plan_commands(plan: _Plan, log: RunLog, config: BagExportConfig) -> None:
    from lnn_control.runtime.ros2 import messages as m

    names = log.action_names
    sent = log.topic("/commands/sent")
    applied = {msg.sequence: msg for msg in log.topic("/commands/applied")}
    try:
        vehicle_of(names)
        mapped = True
    except ValueError as exc:
        mapped = False
        plan.notes.append(f"{log.path}: no {TOPIC_CMD_VEL}: {exc}")
    twists: list[tuple[int, Build]] = []
    skipped = 0
    for msg in sent:
        if not mapped:
            break
        source = msg.payload.get("source", "policy")
        values = _values(msg.payload, names)
        if source != "stop" and not np.all(np.isfinite(values)):
            skipped += 1
            continue
        twist = Twist() if source == "stop" else twist_from_action(values, names, config.car)
        stamp = plan.clock.write_ns(msg)
        twists.append((stamp, partial(m.twist_stamped_message, twist, stamp, config.base_frame_id)))
    if skipped:
        plan.notes.append(f"{log.path}: {skipped} sent commands were not finite and are not on {TOPIC_CMD_VEL}")
    plan.add(TOPIC_CMD_VEL, m.TWIST_STAMPED, twists)

    by_step = {msg.sequence: msg for msg in sent}
    by_step.update(applied)  # what the robot reported applying wins over what was sent
    actions: list[tuple[int, Build]] = [
        (plan.clock.write_ns(msg), partial(m.float32_array_message, _values(msg.payload, names), names))
        for msg in sorted(by_step.values(), key=lambda x: x.sequence)]
    plan.add(TOPIC_ACTION, m.FLOAT32_MULTI_ARRAY, actions)

    sources: list[tuple[int, Build]] = [
        (plan.clock.write_ns(msg), partial(m.string_message, str(msg.payload["source"])))
        for msg in sent if "source" in msg.payload]
    plan.add(TOPIC_SOURCE, m.STRING, sources)

    neurons: list[tuple[int, Build]] = [
        (plan.clock.write_ns(msg), partial(m.float32_array_message,
                                           [math.nan if v is None else float(v) for v in msg.payload.get("activity") or []]))
        for msg in log.topic("/policy/neurons")]
    plan.add(TOPIC_NEURONS, m.FLOAT32_MULTI_ARRAY, neurons)


def _odometry(extras: dict[str, Any], stamp_ns: int, config: BagExportConfig) -> Any:
    from lnn_control.runtime.ros2 import messages as m

    t = m.typestore().types
    v3 = t["geometry_msgs/msg/Vector3"]
    if "speed" in extras:
        linear = v3(float(extras["speed"]), 0.0, 0.0)
    else:
        linear = v3(*(float(extras[k]) for k in ("vx", "vy", "vz")))
    unknown = np.diag(np.full(6, -1.0)).reshape(-1)
    pose = t["geometry_msgs/msg/PoseWithCovariance"](
        pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](0.0, 0.0, 0.0),
                                         orientation=t["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0)),
        covariance=unknown)
    twist = t["geometry_msgs/msg/TwistWithCovariance"](
        twist=t["geometry_msgs/msg/Twist"](linear=linear, angular=v3(0.0, 0.0, 0.0)), covariance=np.zeros(36))
    return t[m.ODOMETRY](header=m.header(stamp_ns, config.odom_frame_id), child_frame_id=config.base_frame_id,
                         pose=pose, twist=twist)


def _plan_odometry(plan: _Plan, log: RunLog, config: BagExportConfig) -> None:
    """``/odom`` from the measured extras each step logged (``speed``, or ``vx``/``vy``/``vz``)."""
    from lnn_control.runtime.ros2 import messages as m

    items: list[tuple[int, Build]] = []
    for msg in log.topic("/loop/timing"):
        extras = msg.payload.get("extras") or {}
        if "speed" not in extras and not {"vx", "vy", "vz"} <= set(extras):
            continue
        stamp = plan.clock.capture_ns(msg)
        items.append((stamp, partial(_odometry, extras, stamp, config)))
    others = sorted({k for msg in log.topic("/loop/timing") for k in (msg.payload.get("extras") or {})}
                    - {"speed", "vx", "vy", "vz"})
    if others:
        plan.notes.append(f"{log.path}: extras {others} have no place in nav_msgs/Odometry and are not exported")
    plan.add(TOPIC_ODOM, m.ODOMETRY, items)


def _merged(plan: _Plan, connections: dict[str, Any]) -> Iterator[tuple[int, Any, Build]]:
    """All topics' messages in record-time order (ties: topic order, then message order)."""
    streams = [
        [(time_ns, rank, index, connections[topic], build) for index, (time_ns, build) in enumerate(items)]
        for rank, (topic, (_, items)) in enumerate(plan.streams.items())
    ]
    for time_ns, _, _, connection, build in heapq.merge(*streams, key=lambda item: item[:3]):
        yield time_ns, connection, build


def _check_out(out: Path) -> None:
    if out.exists():
        raise ValueError(f"{out} already exists; the export never overwrites a bag: pass a new --out folder")
    if not out.parent.is_dir():
        raise ValueError(f"the folder {out.parent} for the bag {out.name} does not exist; create it first")


def export_rosbag2(log_path: str | Path, out: str | Path, config: BagExportConfig | None = None) -> BagExportReport:
    """Convert the run log at ``log_path`` into a new ROS 2 bag folder ``out`` (see the module docstring).

    Raises FileNotFoundError for a missing log, ValueError for an existing ``out`` or a file that
    is not a run log; nothing is left behind on failure."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from lnn_control.runtime.logs.runlog import read_run_log
    from lnn_control.runtime.ros2 import messages as m

    config = config or BagExportConfig()
    out = Path(out)
    _check_out(out)
    log = read_run_log(log_path)
    if not log.action_names:
        raise ValueError(f"{log.path}: no action names in the run metadata; is this an lnn-control run log?")
    plan = _Plan(_Clock(log))
    if not log.complete:
        plan.notes.append(f"{log.path}: the file ends early (killed run); exported up to its last complete chunk")
    _plan_camera(plan, log, config)
    _plan_commands(plan, log, config)
    _plan_odometry(plan, log, config)
    if not plan.streams:
        raise ValueError(f"{log.path}: the run log holds no frames and no commands; nothing to export")

    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        bag = staging / out.name  # rosbags names the storage file after the folder: BAG/BAG.mcap
        writer = Writer(bag, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        writer.set_custom_data("lnn_control.run", json.dumps(log.metadata, sort_keys=True))
        writer.set_custom_data("lnn_control.source_log", str(Path(log_path).resolve()))
        with writer:
            connections = {topic: writer.add_connection(topic, msgtype, typestore=m.typestore())
                           for topic, (msgtype, _) in plan.streams.items()}
            for time_ns, connection, build in _merged(plan, connections):
                writer.write(connection, time_ns, m.to_cdr(build()))
        _check_out(out)
        bag.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {topic: len(items) for topic, (_, items) in plan.streams.items()}
    return BagExportReport(out, counts, plan.notes, log.complete)
