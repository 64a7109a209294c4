"""A ROS 2 bag -> episode dataset (``lnn-control dataset from-bag``).

Reads a rosbag2 bag (a folder with ``metadata.yaml``, or one ``.mcap`` / ``.db3`` file; MCAP or
sqlite3 storage) with ``rosbags`` and writes the project's episode format through the same writer
and staging path as ``dataset from-log`` (:mod:`lnn_control.data.from_log`):

- **frames**: the camera topic, ``sensor_msgs/Image`` (rgb8, bgr8, mono8) or ``CompressedImage``
  (JPEG/PNG), resized with area interpolation when its size differs from the dataset's;
- **timestamp** of a frame: its header stamp (a zero stamp: the bag's record time) in seconds since
  ``stamp_origin_ns`` (episode metadata), the whole second of the bag's first frame stamp: epoch
  seconds as float64 would round every dt by up to 0.2 µs, these keep nanoseconds;
- **label** (= ``action``): the command topic, ``geometry_msgs/TwistStamped`` or ``Twist`` through
  :func:`lnn_control.runtime.ros2.twist.action_from_twist`, or ``std_msgs/Float32MultiArray``
  (components matched by the names in its label, else in order). Command times: the header stamp,
  for messages without a header (``Twist``, ``Float32MultiArray``) the bag's record time.
  **Rule**: a frame at time t is labelled with the first command stamped in ``[t, t + tolerance]``,
  the command the robot sent in response to that frame (in our loop: the next write after the
  capture). A frame with no command in that window, or whose command has no finite label (the car's
  steering at |v| < ``min_speed`` is not observable, e.g. a stop's zero twist), is left out;
  such an unusable command between two kept frames (a stop while the frame was held) splits the
  episode as well. In a bag written by ``export-log``, a command recorded at the time of a
  ``stop`` on ``/lnn/source`` is unusable too (a stop step's neutral command is no demonstration);
- **extras** (``--odom``): from ``nav_msgs/Odometry`` (:func:`~lnn_control.runtime.ros2.messages.odometry_extras`),
  the newest odometry stamped in ``[t - tolerance, t]``; a frame without one is left out.

Left-out frames split episodes, and so do gaps longer than ``max_gap_s`` and stamps that go
backwards; a frame with the same stamp as the previous one is a repeated frame and is skipped
without a split (our exporter re-logs a held frame every step).

Specs: with ``spec`` (a policy) its observation/action specs; without, the action layout is
``actions`` (the car's, all normalized to [-1, 1]; the drone's velocity limits need a policy), by
default the names in a Float32MultiArray's label or ``("steering",)`` for Twist commands, and the
image size is ``image_size`` or the first frame's.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_json
from lnn_control.data.episodes import MANIFEST, DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.data.from_log import (
    CONVERSION_RECORD,
    ConversionReport,
    prepare_output,
    specs_of_policy,
)
from lnn_control.runtime.ros2.twist import (
    CAR_ACTIONS,
    CarTwistConfig,
    action_from_twist,
    vehicle_of,
)
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

_CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_COMMAND_TYPES = ("geometry_msgs/msg/TwistStamped", "geometry_msgs/msg/Twist", "std_msgs/msg/Float32MultiArray")
_ODOM_TYPE = "nav_msgs/msg/Odometry"
SOURCE_TOPIC = "/lnn/source"
"""Who commanded each step (``policy`` / ``human`` / ``stop``) in bags written by ``export-log``."""
_CAR_EXTRAS = ("speed",)
_DRONE_EXTRAS = ("vx", "vy", "vz")


@dataclass(frozen=True)
class FromBagConfig:
    """camera_topic / command_topic / odom_topic: bag topics (odometry optional, for extras).
    image_size: (height, width) of the dataset's frames (px); None = the spec policy's, else the
    first frame's. spec: policy giving the specs; None = built from ``actions``. actions: action
    layout without a spec (None = inferred, see the module docstring). tolerance_s: label /
    odometry matching window (s). max_gap_s: a longer gap between kept frames starts a new episode
    (s). car: the car kinematics of the Twist inverse."""

    camera_topic: str
    command_topic: str
    odom_topic: str | None = None
    image_size: tuple[int, int] | None = None
    spec: str | None = None
    actions: tuple[str, ...] | None = None
    tolerance_s: float = 0.1
    max_gap_s: float = 0.5
    car: CarTwistConfig = field(default_factory=CarTwistConfig)

    def __post_init__(self) -> None:
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be (height, width) >= 1 pixel, got {self.image_size}")
        if not self.tolerance_s > 0:
            raise ValueError(f"tolerance must be > 0 s, got {self.tolerance_s}")
        if not self.max_gap_s > 0:
            raise ValueError(f"max gap must be > 0 s, got {self.max_gap_s}")


@dataclass
class _Series:
    """Time-sorted stamps (ns) and values [N, K] of one topic."""

    stamps: np.ndarray
    values: np.ndarray


def _open_reader(path: Path) -> Any:
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist; pass a rosbag2 folder (with metadata.yaml) "
                                "or its .mcap / .db3 file")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises ReaderError / YAML / storage errors
        raise ValueError(f"{path} is not a readable rosbag2 bag ({exc})") from None
    return reader


def _connections(reader: Any, path: Path, topic: str, allowed: tuple[str, ...], what: str) -> list[Any]:
    found = [c for c in reader.connections if c.topic == topic]
    if not found:
        listing = ", ".join(f"{c.topic} ({c.msgtype}, {c.msgcount})" for c in sorted(reader.connections, key=lambda c: c.topic))
        raise ValueError(f"{path}: no {what} topic {topic!r}; the bag's topics: {listing or 'none'}")
    for connection in found:
        if connection.msgtype not in allowed:
            raise ValueError(f"{path}: {what} topic {topic} has type {connection.msgtype}; supported: {list(allowed)}")
    return found


def _stamp(message: Any, record_ns: int) -> int:
    from lnn_control.runtime.ros2.messages import header_ns

    if not hasattr(message, "header"):
        return record_ns
    stamp = header_ns(message)
    return stamp if stamp != 0 else record_ns


def _read_series(reader: Any, connections: list[Any], convert: Any) -> _Series:
    from lnn_control.runtime.ros2.messages import from_cdr

    rows = []
    for connection, record_ns, raw in reader.messages(connections=connections):
        message = from_cdr(raw, connection.msgtype)
        rows.append((_stamp(message, record_ns), convert(message)))
    rows.sort(key=lambda row: row[0])
    if not rows:
        return _Series(np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    return _Series(np.array([r[0] for r in rows], np.int64), np.stack([r[1] for r in rows]).astype(np.float32))


def _command_converter(msgtype: str, names: tuple[str, ...], car: CarTwistConfig, path: Path, topic: str) -> Any:
    from lnn_control.runtime.ros2.messages import float32_array_values, twist_from_message

    if msgtype != "std_msgs/msg/Float32MultiArray":
        return lambda message: action_from_twist(twist_from_message(message), names, car)

    def convert(message: Any) -> np.ndarray:
        values, labelled = float32_array_values(message)
        if labelled:
            if sorted(labelled) != sorted(names):
                raise ValueError(f"{path}: {topic} carries {list(labelled)}, the dataset's actions are {list(names)}; "
                                 "pass --actions or --spec for the layout the bag holds")
            return values[[labelled.index(n) for n in names]]
        if values.size != len(names):
            raise ValueError(f"{path}: {topic} has {values.size} values, the dataset's actions {list(names)} need {len(names)}")
        return values
    return convert


def _first_array_names(reader: Any, connections: list[Any]) -> tuple[str, ...]:
    from lnn_control.runtime.ros2.messages import float32_array_values, from_cdr

    for connection, _, raw in reader.messages(connections=connections):
        return float32_array_values(from_cdr(raw, connection.msgtype))[1]
    return ()


def _first_frame_shape(reader: Any, connections: list[Any]) -> tuple[int, int] | None:
    from lnn_control.runtime.ros2.messages import frame_from_message, from_cdr

    for connection, _, raw in reader.messages(connections=connections):
        frame = frame_from_message(from_cdr(raw, connection.msgtype))
        return int(frame.shape[0]), int(frame.shape[1])
    return None


def _specs(config: FromBagConfig, reader: Any, path: Path, command: list[Any], camera: list[Any]) -> tuple[ObservationSpec, ActionSpec, str]:
    """The dataset's specs: the policy's (``config.spec``) or built from the layout (module docstring)."""
    if config.spec is not None:
        obs, act, spec_from = specs_of_policy(config.spec)
        if config.image_size is not None:
            obs = ObservationSpec((*config.image_size, 3), obs.extras, obs.extra_units)
        return obs, act, spec_from
    names = config.actions
    if names is None:
        if command[0].msgtype == "std_msgs/msg/Float32MultiArray":
            names = _first_array_names(reader, command)
            if not names:
                raise ValueError(f"{path}: {config.command_topic} names no components in its label; "
                                 f"pass --actions (one of {[','.join(a) for a in CAR_ACTIONS]}) or --spec POLICY")
        else:
            names = ("steering",)
    if vehicle_of(names) != "car":
        raise ValueError(f"actions {list(names)}: the drone's velocity limits come from its policy; pass --spec POLICY")
    act = ActionSpec(names, (-1.0,) * len(names), (1.0,) * len(names), ("normalized",) * len(names), ActionFrame.FLU)
    size = config.image_size or _first_frame_shape(reader, camera)
    if size is None:
        raise ValueError(f"{path}: the camera topic {config.camera_topic} holds no messages")
    extras = _CAR_EXTRAS if config.odom_topic is not None else ()
    return ObservationSpec((*size, 3), extras, ("m/s",) * len(extras)), act, "actions " + ",".join(names)


def _stop_times(reader: Any) -> np.ndarray:
    """Record times (ns) of ``stop`` on ``/lnn/source`` (bags written by ``export-log``), else empty."""
    from lnn_control.runtime.ros2.messages import STRING, from_cdr

    source = [c for c in reader.connections if c.topic == SOURCE_TOPIC and c.msgtype == STRING]
    if not source:
        return np.zeros(0, np.int64)
    return np.array([ns for c, ns, raw in reader.messages(connections=source)
                     if from_cdr(raw, c.msgtype).data == "stop"], np.int64)


def _match_after(series: _Series, t: int, window: int) -> int | None:
    """Index of the first entry stamped in [t, t + window], or None."""
    index = int(np.searchsorted(series.stamps, t, side="left"))
    if index < series.stamps.size and series.stamps[index] - t <= window:
        return index
    return None


def _match_before(series: _Series, t: int, window: int) -> int | None:
    """Index of the last entry stamped in [t - window, t], or None."""
    index = int(np.searchsorted(series.stamps, t, side="right")) - 1
    if index >= 0 and t - series.stamps[index] <= window:
        return index
    return None


class _EpisodeCutter:
    """Feeds steps into an :class:`EpisodeWriter`, ending an episode at a left-out frame or a gap."""

    def __init__(self, writer: EpisodeWriter, bag_record: dict[str, Any], max_gap_ns: int) -> None:
        self.origin_ns: int | None = None
        self.writer = writer
        self.record = bag_record
        self.max_gap_ns = max_gap_ns
        self.first: int | None = None
        self.last: int | None = None
        self.episode_steps = 0
        self.steps = 0
        self.episodes = 0
        self.resized_from: tuple[int, int] | None = None

    def add(self, stamp: int, observation: dict[str, np.ndarray], label: np.ndarray) -> None:
        if self.last is not None and stamp - self.last > self.max_gap_ns:
            self.cut()
        if self.first is None:
            self.writer.begin_episode()
            self.first = stamp
        if self.origin_ns is None:
            self.origin_ns = stamp - stamp % 1_000_000_000
        self.writer.add_step(observation, label, label, (stamp - self.origin_ns) / 1e9)
        self.last = stamp
        self.episode_steps += 1
        self.steps += 1

    def cut(self) -> None:
        """End the episode in progress (if any)."""
        if self.first is None or self.last is None:
            return
        self.writer.end_episode({
            **self.record, "source": "bag", "stamp_origin_ns": self.origin_ns,
            "first_stamp_ns": self.first, "last_stamp_ns": self.last,
            "steps": self.episode_steps,
            "resized_from": None if self.resized_from is None else list(self.resized_from),
        })
        self.episodes += 1
        self.first = self.last = None
        self.episode_steps = 0


def convert_bag(bag: str | Path, out: str | Path, config: FromBagConfig, command: str = "") -> ConversionReport:
    """Convert the bag at ``bag`` into a new episode dataset at ``out`` (see the module docstring).

    Raises FileNotFoundError for a missing bag; ValueError naming the bag for an unreadable bag, a
    missing topic (listing the bag's topics), an unsupported message type, nothing labelled, or an
    ``out`` that already holds files."""
    path = Path(bag)
    reader = _open_reader(path)
    out = Path(out)
    try:
        staging = prepare_output(out)
        try:
            report = _convert_into(staging, out, path, reader, config, command)
            if out.exists():
                out.rmdir()
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        reader.close()
    return report


def _bag_files(path: Path) -> list[dict[str, Any]]:
    """Provenance of the bag's storage files: name, sha256, size."""
    from lnn_control.data.log_steps import file_sha256

    names = sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3", ".yaml")) if path.is_dir() else [path]
    return [{"file": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in names]


def _convert_into(root: Path, out: Path, path: Path, reader: Any, config: FromBagConfig, command: str) -> ConversionReport:
    import cv2

    from lnn_control.runtime.ros2.messages import frame_from_message, from_cdr, odometry_extras

    camera = _connections(reader, path, config.camera_topic, _CAMERA_TYPES, "camera")
    commands = _connections(reader, path, config.command_topic, _COMMAND_TYPES, "command")
    odom = None if config.odom_topic is None else _connections(reader, path, config.odom_topic, (_ODOM_TYPE,), "odometry")
    obs, act, spec_from = _specs(config, reader, path, commands, camera)
    if obs.extras and odom is None:
        raise ValueError(f"{spec_from} needs the extras {list(obs.extras)}: pass --odom TOPIC (nav_msgs/msg/Odometry)")
    if any(name not in (*_CAR_EXTRAS, *_DRONE_EXTRAS) for name in obs.extras):
        raise ValueError(f"{spec_from} needs the extras {list(obs.extras)}; odometry gives {[*_CAR_EXTRAS, *_DRONE_EXTRAS]}")
    convert = _command_converter(commands[0].msgtype, act.names, config.car, path, config.command_topic)
    labels = _read_series(reader, commands, convert)
    stopped = np.isin(labels.stamps, _stop_times(reader))
    labels.values[stopped] = np.nan  # a stop step's neutral command is not a demonstration
    extras = None if odom is None else _read_series(
        reader, odom, lambda m: np.array([odometry_extras(m)[name] for name in obs.extras], np.float32))
    window, height, width = round(config.tolerance_s * 1e9), obs.image_shape[0], obs.image_shape[1]
    manifest = DatasetManifest(obs, act, created_by=command or "lnn-control dataset from-bag")
    writer = EpisodeWriter(root, manifest)
    record = {"bag": str(path.resolve()), "camera_topic": config.camera_topic, "command_topic": config.command_topic,
              "odom_topic": config.odom_topic}
    cutter = _EpisodeCutter(writer, record, round(config.max_gap_s * 1e9))
    excluded: Counter[str] = Counter()
    frames, previous, last_index = 0, None, None
    unusable = ~np.isfinite(labels.values).all(axis=1) if labels.values.size else np.zeros(0, bool)
    for connection, record_ns, raw in reader.messages(connections=camera):
        message = from_cdr(raw, connection.msgtype)
        stamp = _stamp(message, record_ns)
        frames += 1
        if previous is not None and stamp <= previous:
            excluded["repeated_frame" if stamp == previous else "stamp_backwards"] += 1
            if stamp < previous:
                cutter.cut()
            continue
        previous = stamp
        index = _match_after(labels, stamp, window)
        odom_index = None if extras is None else _match_before(extras, stamp, window)
        reason = ("no_command" if index is None else "no_label" if not np.all(np.isfinite(labels.values[index]))
                  else "no_odometry" if extras is not None and odom_index is None else None)
        if reason is not None:
            excluded[reason] += 1
            cutter.cut()
            continue
        assert index is not None
        if last_index is not None and unusable[last_index + 1:index].any():
            cutter.cut()  # a stop (or an unobservable command) between two kept frames ends the episode
        last_index = index
        image = frame_from_message(message)
        if image.shape[:2] != (height, width):
            cutter.resized_from = cutter.resized_from or (int(image.shape[0]), int(image.shape[1]))
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        observation: dict[str, np.ndarray] = {"image": image}
        if extras is not None and odom_index is not None:
            observation.update({name: extras.values[odom_index, k:k + 1] for k, name in enumerate(obs.extras)})
        cutter.add(stamp, observation, labels.values[index])
    cutter.cut()
    entry = {"path": str(path), "frames": frames, "commands": int(labels.stamps.size), "kept_steps": cutter.steps,
             "episodes": cutter.episodes, "excluded": dict(sorted(excluded.items()))}
    if cutter.steps == 0:
        raise ValueError(f"{path}: no frame of {config.camera_topic} has a command on {config.command_topic} within "
                         f"{config.tolerance_s} s after it (left out: {dict(excluded) or 'no frames'}); check the topics, "
                         "or raise --tolerance")
    atomic_write_json(root / MANIFEST, {
        **manifest.to_dict(),
        "from_bag": {"bag": str(path.resolve()), "files": _bag_files(path), "spec_from": spec_from,
                     "camera_topic": config.camera_topic, "command_topic": config.command_topic,
                     "odom_topic": config.odom_topic, "tolerance_s": config.tolerance_s, "max_gap_s": config.max_gap_s},
    })
    notes = [f"{path}: {count} frames left out ({reason})" for reason, count in sorted(excluded.items())]
    dataset = EpisodeDataset(root)
    report = ConversionReport(out, dataset.content_hash(), len(dataset), cutter.steps, [entry], notes)
    atomic_write_json(root / CONVERSION_RECORD, {**report.to_dict(), "command": command})
    return report
