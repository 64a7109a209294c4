"""Settings of a ROS 2 robot over Zenoh: the ``robot.ros2`` section of a launch file.

Imports nothing heavy (no zenoh, no rosbags): :mod:`lnn_control.runtime.launch` loads it for every
launch file. Example (every key optional; these are the defaults unless noted)::

    robot:
      kind: ros2
      ros2:
        domain_id: 0                    # ROS_DOMAIN_ID
        node_name: lnn_control          # as `ros2 node list` shows it
        namespace: /
        zenoh:                          # like rmw_zenoh's session config
          mode: peer
          connect: [tcp/localhost:7447] # the zenoh router (zenohd / ros2 run rmw_zenoh_cpp rmw_zenohd)
          listen: [tcp/localhost:0]
          multicast_scouting: false
        camera:
          topic: /camera/image_raw
          type: Image                   # Image | CompressedImage
          rate_hz: 30                   # what the camera publishes at (staleness + waiting)
        odometry: null                  # or {topic: /odom}: needed for extras
        command:
          topic: /cmd_vel               # geometry_msgs/msg/TwistStamped, REP-103 base_link
          frame_id: base_link
        actions: [steering]             # the policy's actions; see lnn_control.runtime.ros2.twist
        extras: []                      # from odometry: speed | vx | vy | vz | yaw_rate
        car: {wheelbase: 0.30, max_steering: 0.4, max_speed: 3.0, cruise_speed: 1.5}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from lnn_control.runtime.ros2.twist import CarTwistConfig, vehicle_of
from lnn_control.runtime.ros2.zenoh_wire import (
    QosProfile,
    Reliability,
    check_domain_id,
    check_namespace,
    check_node_name,
    resolve_topic,
)

EXTRA_UNITS: dict[str, str] = {"speed": "m/s", "vx": "m/s", "vy": "m/s", "vz": "m/s", "yaw_rate": "rad/s"}
"""Observation extras a ROS 2 robot reads from ``nav_msgs/msg/Odometry`` (body twist, REP-103)."""
ACTION_UNITS: dict[str, str] = {"steering": "normalized", "target_speed": "normalized", "throttle": "normalized",
                                "vx": "m/s", "vy": "m/s", "vz": "m/s", "yaw_rate": "rad/s"}
"""Units of the action layouts :mod:`lnn_control.runtime.ros2.twist` maps."""
STALE_MARGIN_S = 0.002
"""Default camera staleness: one camera period + this (s)."""


@dataclass(frozen=True)
class ZenohConfig:
    """How our Zenoh session finds the ROS graph (rmw_zenoh's defaults: a peer that connects to the
    router on this computer and listens on a free local port, multicast scouting off).

    mode: ``peer`` (like every rmw_zenoh node) or ``client`` (only through the router).
    connect: endpoints to connect to, e.g. ``tcp/192.168.1.20:7447`` (the robot's router).
    listen: endpoints other peers may connect to (``tcp/0.0.0.0:0`` to be reachable from the LAN).
    multicast_scouting: find peers by UDP multicast (off in rmw_zenoh; leave off with a router)."""

    mode: Literal["peer", "client"] = "peer"
    connect: tuple[str, ...] = ("tcp/localhost:7447",)
    listen: tuple[str, ...] = ("tcp/localhost:0",)
    multicast_scouting: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("peer", "client"):
            raise ValueError(f"zenoh.mode must be 'peer' or 'client', got {self.mode!r}")
        for label, endpoints in (("connect", self.connect), ("listen", self.listen)):
            for endpoint in endpoints:
                if not isinstance(endpoint, str) or "/" not in endpoint:
                    raise ValueError(f"zenoh.{label} endpoint {endpoint!r} must look like 'tcp/HOST:PORT'")
        if self.mode == "client" and not self.connect:
            raise ValueError("zenoh.mode client needs zenoh.connect (the router's endpoint, e.g. tcp/localhost:7447)")
        if not self.connect and not self.listen and not self.multicast_scouting:
            raise ValueError("zenoh: with no connect, no listen and no multicast scouting nothing can reach this node")


@dataclass(frozen=True)
class CameraTopicConfig:
    """The camera the policy sees.

    topic: ``sensor_msgs/msg/{type}`` topic. type: ``Image`` (rgb8 / bgr8 / mono8) or
    ``CompressedImage`` (JPEG / PNG). rate_hz: the rate the camera publishes at (Hz).
    reliability / depth: our subscription's QoS as the graph shows it (camera drivers publish
    best effort, depth 5: rclcpp's SensorDataQoS).
    capture_time: ``header`` = the message's ``header.stamp`` (wall clock of the camera's computer,
    converted to this computer's ``time.monotonic()``; the clocks must agree, e.g. chrony/NTP, or
    the same computer), ``arrival`` = when the message arrived here (for cameras that stamp 0 or
    with sim time; latency before arrival is then not seen).
    max_clock_skew_s: a header stamp further than this in the future, or a first frame older than
    this, is refused with an error naming the clock problem.
    stale_after_s: no new frame for this long after the last one => the robot itself sends the zero
    twist and keeps sending it until a new frame arrives (None: one period + 2 ms, so the zero twist
    arrives within one period + 5 ms; frames that arrive later than that cause brief zero twists,
    counted in ``Ros2Robot.stale_stops``: raise it for a jittery link such as WiFi).
    frame_wait_s: how long ``read()`` waits for a frame newer than the one it returned last (None:
    0.75 of the shorter of the camera and loop periods; 0: never wait).
    first_frame_timeout_s: how long ``connect()`` waits for the first frame."""

    topic: str = "/camera/image_raw"
    type: Literal["Image", "CompressedImage"] = "Image"
    rate_hz: float = 30.0
    reliability: Reliability = Reliability.BEST_EFFORT
    depth: int = 5
    capture_time: Literal["header", "arrival"] = "header"
    max_clock_skew_s: float = 0.5
    stale_after_s: float | None = None
    frame_wait_s: float | None = None
    first_frame_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        _check_topic(self.topic)
        if self.type not in ("Image", "CompressedImage"):
            raise ValueError(f"camera.type must be 'Image' or 'CompressedImage', got {self.type!r}")
        if self.capture_time not in ("header", "arrival"):
            raise ValueError(f"camera.capture_time must be 'header' or 'arrival', got {self.capture_time!r}")
        _positive(self, ("rate_hz", "max_clock_skew_s", "first_frame_timeout_s"), "camera")
        if self.stale_after_s is not None and not 1.0 / self.rate_hz < self.stale_after_s < math.inf:
            raise ValueError(f"camera.stale_after_s must be longer than one camera period ({1e3 / self.rate_hz:.1f} ms at "
                             f"rate_hz {self.rate_hz:g}), got {self.stale_after_s!r}")
        if self.frame_wait_s is not None and not 0 <= self.frame_wait_s <= 1.0 / self.rate_hz:
            raise ValueError(f"camera.frame_wait_s must be in [0, one camera period = {1.0 / self.rate_hz:.4f} s], "
                             f"got {self.frame_wait_s!r}")
        QosProfile(self.reliability, depth=self.depth)  # validates

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def stale_s(self) -> float:
        """Seconds without a new frame after which the robot sends the zero twist itself."""
        return self.stale_after_s if self.stale_after_s is not None else self.period_s + STALE_MARGIN_S

    @property
    def msgtype(self) -> str:
        return f"sensor_msgs/msg/{self.type}"

    @property
    def qos(self) -> QosProfile:
        return QosProfile(self.reliability, depth=self.depth)


@dataclass(frozen=True)
class OdometryTopicConfig:
    """topic: ``nav_msgs/msg/Odometry`` topic whose body twist gives the extras. timeout_s: extras
    older than this make ``read()`` fail (never a made-up 0.0). reliability / depth: QoS shown."""

    topic: str = "/odom"
    timeout_s: float = 0.5
    reliability: Reliability = Reliability.BEST_EFFORT
    depth: int = 5

    def __post_init__(self) -> None:
        _check_topic(self.topic)
        _positive(self, ("timeout_s",), "odometry")
        QosProfile(self.reliability, depth=self.depth)

    @property
    def qos(self) -> QosProfile:
        return QosProfile(self.reliability, depth=self.depth)


@dataclass(frozen=True)
class CommandTopicConfig:
    """topic: ``geometry_msgs/msg/TwistStamped`` commands (REP-103). frame_id: their header frame.
    reliability / depth: the publisher's QoS (rclcpp default: reliable, 10).
    command_timeout_s: ``write()`` not called for this long while moving => zero twist (a hung loop
    never keeps the robot driving)."""

    topic: str = "/cmd_vel"
    frame_id: str = "base_link"
    reliability: Reliability = Reliability.RELIABLE
    depth: int = 10
    command_timeout_s: float = 0.25

    def __post_init__(self) -> None:
        _check_topic(self.topic)
        _positive(self, ("command_timeout_s",), "command")
        QosProfile(self.reliability, depth=self.depth)

    @property
    def qos(self) -> QosProfile:
        return QosProfile(self.reliability, depth=self.depth)


@dataclass(frozen=True)
class Ros2RobotConfig:
    """A robot driven over ROS 2 (rmw_zenoh wire format); see the module docstring.

    actions: the policy's action names (a layout of :mod:`lnn_control.runtime.ros2.twist`: car
    ``steering`` [+ ``target_speed`` | ``throttle``], drone ``vx, vy, vz, yaw_rate``).
    velocity_limits: drone only, |vx|, |vy|, |vz| (m/s), |yaw_rate| (rad/s): the action bounds.
    extras: observation extras from odometry (:data:`EXTRA_UNITS`). car: the car's kinematics for
    the steering -> yaw-rate mapping. image_shape: (height, width) frames are resized to (None:
    the policy's)."""

    domain_id: int = 0
    node_name: str = "lnn_control"
    namespace: str = "/"
    zenoh: ZenohConfig = field(default_factory=ZenohConfig)
    camera: CameraTopicConfig = field(default_factory=CameraTopicConfig)
    odometry: OdometryTopicConfig | None = None
    command: CommandTopicConfig = field(default_factory=CommandTopicConfig)
    actions: tuple[str, ...] = ("steering",)
    velocity_limits: tuple[float, float, float, float] = (2.0, 1.0, 1.0, 1.0)
    extras: tuple[str, ...] = ()
    car: CarTwistConfig = field(default_factory=CarTwistConfig)
    image_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_domain_id(self.domain_id)
        check_node_name(self.node_name)
        check_namespace(self.namespace)
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "extras", tuple(self.extras))
        vehicle_of(self.actions)  # ValueError listing the mapped layouts
        if len(self.velocity_limits) != 4 or not all(0 < v < math.inf for v in self.velocity_limits):
            raise ValueError(f"velocity_limits must be 4 finite values > 0 (|vx|, |vy|, |vz| m/s, |yaw_rate| rad/s), "
                             f"got {self.velocity_limits!r}")
        unknown = [e for e in self.extras if e not in EXTRA_UNITS]
        if unknown or len(set(self.extras)) != len(self.extras):
            raise ValueError(f"extras {list(self.extras)}: each once, from {sorted(EXTRA_UNITS)} (odometry body twist)")
        if self.extras and self.odometry is None:
            raise ValueError(f"extras {list(self.extras)} come from odometry: add an odometry section "
                             "(e.g. odometry: {topic: /odom})")
        if self.image_shape is not None and (
            len(self.image_shape) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
                                              for v in self.image_shape)):
            raise ValueError(f"image_shape must be (height, width) in pixels, both ints > 0, got {self.image_shape!r}")
        for name in (self.camera.topic, self.command.topic, *((self.odometry.topic,) if self.odometry else ())):
            resolve_topic(name, self.namespace, self.node_name)  # relative names must resolve too

    def topic(self, name: str) -> str:
        """A configured topic name resolved against this node's namespace."""
        return resolve_topic(name, self.namespace, self.node_name)


def _positive(config: object, names: tuple[str, ...], section: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise ValueError(f"{section}.{name} must be a finite number > 0, got {value!r}")


def _check_topic(name: str) -> None:
    """ValueError unless ``name`` is a ROS 2 topic name (relative and private names resolve later,
    against the node's namespace and name)."""
    resolve_topic(name, "/", "node")
