"""Launch files: which policy drives which robot, at what rate, with which limits and log.

A launch file is YAML, validated strictly into :class:`LaunchConfig` (unknown keys and wrong types
raise :class:`~lnn_control.config.ConfigError` naming the key and the file). Shipped launch files
live in the ``lnn_control.launch`` package; ``lnn-control run --launch NAME`` finds them by name
(``sim_lane_keeping``), any other argument is a path. Relative paths inside a launch file
(policy, video files) are resolved against the current directory; a policy may also be the name
of a shipped bundle in ``lnn_control.policies/pretrained``.

Example::

    policy: lane_keeping_ncp19      # bundle dir, shipped bundle name, or exported .onnx file
    engine: torch                    # torch | onnx
    rate_hz: 50
    robot:
      kind: sim                      # sim | serial_car | mavlink_drone | ros2 (robot.ros2: topics, zenoh)
      sim: {env_id: lnn_control/LaneKeeping-v0, env_kwargs: {backend: pybullet}, seed: 0}
    limits: {max_rate_per_s: [4.0]}
    watchdog: {max_frame_age_s: 0.1}
    log: {dir: runs, image_rate_hz: null, image_format: jpeg}
    teleop: {keyboard: {hold_s: 0.5}, gamepad: {mapping: xbox}}   # lnn-control teleop / run --takeover

``teleop`` is :class:`~lnn_control.runtime.inputs.config.TeleopConfig` (keys, gamepad axes and buttons).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from lnn_control.config import ConfigError, load_dataclass, load_yaml_dataclass
from lnn_control.runtime.core.safety import LimitsConfig
from lnn_control.runtime.hardware.cameras import CameraConfig
from lnn_control.runtime.inputs.config import TeleopConfig
from lnn_control.runtime.logs.runlog import LogConfig
from lnn_control.runtime.ros2.config import Ros2RobotConfig


class Engine(str, enum.Enum):
    TORCH = "torch"  # policy bundle through PyTorch
    ONNX = "onnx"  # exported single-step ONNX through onnxruntime (no torch needed)


@dataclass(frozen=True)
class SimConfig:
    """env_id: registered Gymnasium id; env_kwargs: passed to gymnasium.make; seed: first episode.

    pacing: ``clocked`` runs the simulator in its own process, stepping just before each read like
    a camera that delivers frames on time (:class:`~lnn_control.runtime.sim.clocked.ClockedSimRobot`,
    the default: a slow simulator step cannot stretch a control period); ``lockstep`` steps it
    inside ``read()`` (:class:`~lnn_control.runtime.sim.lockstep.LockstepSimRobot`: deterministic, one process).
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    pacing: Literal["clocked", "lockstep"] = "clocked"

    def __post_init__(self) -> None:
        if self.pacing not in ("clocked", "lockstep"):
            raise ValueError(f"robot.sim.pacing must be 'clocked' or 'lockstep', got {self.pacing!r}")


@dataclass(frozen=True)
class RobotConfig:
    """kind: which robot. sim: the simulated robot's settings (kind sim). camera: the camera of a hardware
    robot. settings: the hardware robot's own settings (serial port, MAVLink URL, ...), validated
    by that robot's config class. ros2: a ROS 2 robot over Zenoh (kind ros2; its camera is a topic,
    :class:`~lnn_control.runtime.ros2.config.Ros2RobotConfig`)."""

    kind: Literal["sim", "serial_car", "mavlink_drone", "ros2"]
    sim: SimConfig | None = None
    camera: CameraConfig | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    ros2: Ros2RobotConfig | None = None

    def __post_init__(self) -> None:
        if self.kind == "sim" and self.sim is None:
            raise ValueError("robot.kind is sim: add a robot.sim section with env_id")
        if self.kind == "ros2":
            if self.ros2 is None:
                raise ValueError("robot.kind is ros2: add a robot.ros2 section (topics, zenoh endpoints; {} for defaults)")
            if self.camera is not None or self.settings:
                raise ValueError("robot.kind is ros2: its camera is a topic (robot.ros2.camera); drop robot.camera "
                                 "and robot.settings")
        elif self.ros2 is not None:
            raise ValueError(f"robot.ros2 is only for kind ros2, not {self.kind}")
        if self.kind not in ("sim", "ros2") and self.camera is None:
            raise ValueError(f"robot.kind is {self.kind}: add a robot.camera section")
        if self.kind != "sim" and self.sim is not None:
            raise ValueError(f"robot.sim is only for kind sim, not {self.kind}")


@dataclass(frozen=True)
class WatchdogConfig:
    """max_frame_age_s: a frame older than this (seconds) stops the robot."""

    max_frame_age_s: float

    def __post_init__(self) -> None:
        if not self.max_frame_age_s > 0:
            raise ValueError(f"watchdog.max_frame_age_s must be > 0, got {self.max_frame_age_s}")


@dataclass(frozen=True)
class LoopSettings:
    """busy_wait_s: spin before each slot; reconnect settings after link loss; live status period;
    policy_threads: intra-op threads of the policy engine (1 is fastest for NCP-sized networks:
    measured 0.9 ms vs 5 ms per step with 2 threads on a 2-core machine); warm_up_steps: policy
    steps on a blank frame before the loop starts (first calls are 10x slower), then reset()."""

    busy_wait_s: float = 0.0005
    max_reconnect_attempts: int = 3
    reconnect_backoff_s: float = 0.5
    live_stats_interval_s: float = 1.0
    policy_threads: int = 1
    warm_up_steps: int = 5

    def __post_init__(self) -> None:
        if self.policy_threads < 1:
            raise ValueError(f"loop.policy_threads must be >= 1, got {self.policy_threads}")
        if self.warm_up_steps < 0:
            raise ValueError(f"loop.warm_up_steps must be >= 0, got {self.warm_up_steps}")


@dataclass(frozen=True)
class RunLogSettings:
    """dir: where ``run-<time>.mcap`` files go (``null`` = no log unless --log); the rest is the
    MCAP writer's :class:`~lnn_control.runtime.logs.runlog.LogConfig`."""

    dir: str | None = "runs"
    image_rate_hz: float | None = None
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = 90
    chunk_size_bytes: int = 64 * 1024
    flush_interval_s: float = 0.5
    compression: Literal["zstd", "lz4", "none"] = "zstd"

    def writer_config(self) -> LogConfig:
        return LogConfig(
            image_rate_hz=self.image_rate_hz,
            image_format=self.image_format,
            jpeg_quality=self.jpeg_quality,
            chunk_size_bytes=self.chunk_size_bytes,
            flush_interval_s=self.flush_interval_s,
            compression=self.compression,
        )

    def __post_init__(self) -> None:
        self.writer_config()  # validates the values


@dataclass(frozen=True)
class LaunchConfig:
    """A whole run; see the module docstring for the YAML form."""

    policy: str
    rate_hz: float
    robot: RobotConfig
    watchdog: WatchdogConfig
    engine: Engine = Engine.TORCH
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    loop: LoopSettings = field(default_factory=LoopSettings)
    log: RunLogSettings = field(default_factory=RunLogSettings)
    duration_s: float | None = None
    teleop: TeleopConfig = field(default_factory=TeleopConfig)

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in (0, 1000] Hz, got {self.rate_hz}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0 seconds or null (until stopped), got {self.duration_s}")
        if not self.policy:
            raise ValueError("policy must name a bundle directory, a shipped bundle or an .onnx file")


def shipped_launch_files() -> dict[str, Any]:
    """Shipped *run* launch files by name (file stem) -> importlib.resources Traversable.

    ``lnn_control.launch`` also holds training launch files; run launch files are the ones with a
    top-level ``robot`` section."""
    import yaml

    root = resources.files("lnn_control.launch")
    found = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and "robot" in data:
            found[entry.name.removesuffix(".yaml")] = entry
    return found


def load_launch(name_or_path: str | Path) -> LaunchConfig:
    """Load a launch file by path, or a shipped one by name (with or without ``.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return load_yaml_dataclass(LaunchConfig, path)
    shipped = shipped_launch_files()
    key = path.name.removesuffix(".yaml")  # also finds launch/<name>.yaml from another directory
    if key not in shipped:
        raise ConfigError(
            f"launch file {name_or_path!r} not found: not a file, and not a shipped launch file "
            f"(shipped: {sorted(shipped)})"
        )
    import yaml

    entry = shipped[key]
    source = f"lnn_control.launch/{entry.name}"
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return load_dataclass(LaunchConfig, data, source)


def resolve_policy_path(policy: str) -> Path:
    """A bundle dir / .onnx path (relative to the current directory) or a shipped bundle name."""
    path = Path(policy).expanduser()
    if path.exists():
        return path
    shipped_root = resources.files("lnn_control.policies") / "pretrained"
    candidate = shipped_root / policy
    if candidate.is_dir():
        return Path(str(candidate))
    names = sorted(e.name for e in shipped_root.iterdir() if e.is_dir()) if shipped_root.is_dir() else []
    raise ConfigError(
        f"policy {policy!r} not found: no such file or directory, and no shipped bundle of that name "
        f"(shipped: {names or 'none'}). Train one with 'lnn-control train' or pass --policy DIR"
    )
