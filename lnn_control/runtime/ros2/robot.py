"""Ros2Robot: a ROS 2 robot driven over Zenoh in the rmw_zenoh wire format, no ROS install needed.

The robot runs ROS 2 with ``RMW_IMPLEMENTATION=rmw_zenoh_cpp`` (or any Zenoh bridge speaking the
same keys); we are one more node on its graph (:class:`~lnn_control.runtime.ros2.node.Ros2Node`):
``ros2 node list`` shows us, ``ros2 topic echo /cmd_vel`` our commands.

- **Camera in**: a ``sensor_msgs/msg/Image`` or ``CompressedImage`` subscription. Each frame is
  decoded and resized to the policy's image size in Zenoh's receive thread, as it arrives, so
  ``read()`` only hands over the newest one.
- **Capture time** (``camera.capture_time: header``, default): the message's ``header.stamp``
  (wall clock, ns) becomes ``time.monotonic()`` time through the two clocks read together on
  arrival: ``capture = arrival_monotonic - (arrival_wall - stamp)``. Exact on one computer; across
  computers it needs synchronised clocks (chrony / NTP / PTP). A stamp more than
  ``max_clock_skew_s`` in the future, a zero stamp, or a first frame older than
  ``max_clock_skew_s`` is refused with an error that says so (``capture_time: arrival`` is the
  way out for drivers that do not stamp); a stamp slightly in the future (skew below that) counts
  as captured on arrival.
- **read()** acts on the freshest frame it can get within ``frame_wait_s`` (default 0.75 of the
  shorter of the camera and loop periods, never more than one camera period): when the next frame
  is due within that time (last arrival + the measured frame interval) or no new frame has come
  since the last read, it waits for the next one; otherwise it returns the newest at once. When
  the wait ends without a frame it returns the newest it has, perhaps the same one again (the loop
  then holds its command, and its watchdog sees the frame's age). Waiting for a frame that is due
  keeps sense->act latency near the compute time whatever the camera's phase against the loop's
  slots (without it a free-running camera adds up to a whole period); the worst case adds the
  period minus ``frame_wait_s``. Extras come from ``nav_msgs/msg/Odometry`` (body twist,
  :func:`~lnn_control.runtime.ros2.messages.odometry_extras`); odometry older than
  ``odometry.timeout_s`` makes ``read()`` raise :class:`RobotError` (never a made-up value).
- **Commands out**: ``write(action)`` clips to the action bounds and publishes
  ``geometry_msgs/msg/TwistStamped`` (REP-103 ``base_link``, stamped with the wall clock) through
  :func:`~lnn_control.runtime.ros2.twist.twist_from_action` — the one place actions become a Twist.
  ``stop()`` publishes the zero twist.
- **Robot-side watchdog** (a thread, like :class:`~lnn_control.runtime.hardware.serial_car.SerialCar`'s):
  once no new frame has arrived for ``camera.stale_s`` (default one camera period + 2 ms) after the
  last one, or ``write()`` has not been called for ``command.command_timeout_s``, it publishes the
  zero twist itself; ``write()`` then sends the zero twist (and reports zeros) until a new frame
  arrives. So a camera that stops gives a zero ``TwistStamped`` about one period + 2 ms (+ delivery,
  ~0.5 ms on loopback) after its last frame's arrival, whatever the loop's phase and its own (looser)
  watchdog. Frames that merely come late trip it too (counted in :attr:`stale_stops`, reported at
  disconnect): on a jittery link raise ``camera.stale_after_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np

from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot, RobotError
from lnn_control.runtime.ros2.config import ACTION_UNITS, EXTRA_UNITS, Ros2RobotConfig
from lnn_control.runtime.ros2.twist import Twist, check_action_spec, twist_from_action
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

log = logging.getLogger(__name__)

_ODOMETRY = "nav_msgs/msg/Odometry"
_TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"


class Ros2Robot(Robot):
    """A ROS 2 robot over Zenoh; see the module docstring. ``image_shape`` (height, width): the
    policy's, used unless ``config.image_shape`` names one."""

    def __init__(self, config: Ros2RobotConfig, image_shape: tuple[int, int] | None = None) -> None:
        self.config = config
        shape = config.image_shape or image_shape or (64, 128)
        self.observation_spec = ObservationSpec((int(shape[0]), int(shape[1]), 3), config.extras,
                                                tuple(EXTRA_UNITS[e] for e in config.extras))
        names = config.actions
        if names[0] == "steering":
            low, high = (-1.0,) * len(names), (1.0,) * len(names)
        else:
            high = tuple(float(v) for v in config.velocity_limits)
            low = tuple(-v for v in high)
        self.action_spec = ActionSpec(names, low, high, tuple(ACTION_UNITS[n] for n in names), ActionFrame.FLU)
        check_action_spec(self.action_spec)  # the twist mapping takes exactly this layout
        self.camera_topic = config.topic(config.camera.topic)
        self.command_topic = config.topic(config.command.topic)
        self.odometry_topic = config.topic(config.odometry.topic) if config.odometry else None
        self.frame_wait_s = self._default_frame_wait(None)
        # counters (read them after a run)
        self.frames_received = 0
        self.frames_rejected = 0
        self.commands_sent = 0
        self.stale_stops = 0
        self.command_timeout_stops = 0
        self._node: Any = None
        self._publisher: Any = None
        self._cond = threading.Condition()
        self._guard: threading.Thread | None = None
        self._running = False
        self._connected = False
        self._frame: Observation | None = None
        self._frame_arrival = -math.inf
        self._interval = config.camera.period_s  # measured frame interval (EMA), s
        self._returned_index: int | None = None
        self._frame_error: str | None = None
        self._odometry: dict[str, float] | None = None
        self._odometry_arrival = -math.inf
        self._driving = False
        self._last_write = -math.inf
        self._hash_checked = False

    # ------------------------------------------------------------------ settings
    def _default_frame_wait(self, loop_period: float | None) -> float:
        camera = self.config.camera
        if camera.frame_wait_s is not None:
            return camera.frame_wait_s
        period = camera.period_s if loop_period is None else min(camera.period_s, loop_period)
        return 0.75 * period

    def preflight(self, rate_hz: float) -> None:
        """The wait for a new frame must leave the loop time to act: ``frame_wait_s`` < loop period."""
        loop_period = 1.0 / rate_hz
        wait = self._default_frame_wait(loop_period)
        if wait >= loop_period:
            raise ValueError(f"robot.ros2.camera.frame_wait_s {wait:g} s must be shorter than the loop period "
                             f"{loop_period:g} s (rate_hz {rate_hz:g}); lower it (0 = never wait)")
        self.frame_wait_s = wait

    # ------------------------------------------------------------------ callbacks (Zenoh threads)
    def _on_camera(self, received: Any) -> None:
        from lnn_control.runtime.hardware.link import fit_image
        from lnn_control.runtime.ros2.messages import frame_from_message, from_cdr, header_ns

        camera = self.config.camera
        self._check_hash(received)
        try:
            message = from_cdr(received.payload, camera.msgtype)
            capture = self._capture_time(header_ns(message), received.arrival_monotonic, received.arrival_wall_ns)
            image = fit_image(frame_from_message(message), self.observation_spec.image_shape)
        except ValueError as exc:
            with self._cond:
                self.frames_rejected += 1
                self._frame_error = f"camera {self.camera_topic}: {exc}"
                self._cond.notify_all()
            return
        with self._cond:
            index = self.frames_received
            self.frames_received += 1
            interval = received.arrival_monotonic - self._frame_arrival
            if 0 < interval < 3 * camera.period_s:  # a gap (dropped frames, a stall) is not the rate
                self._interval += 0.1 * (interval - self._interval)
            self._frame = Observation(image, capture, {}, index)
            self._frame_arrival = received.arrival_monotonic
            self._frame_error = None
            self._cond.notify_all()

    def _capture_time(self, stamp_ns: int, arrival_monotonic: float, arrival_wall_ns: int) -> float:
        """Header stamp (wall ns) -> capture time on ``time.monotonic()``'s clock (module docstring)."""
        camera = self.config.camera
        if camera.capture_time == "arrival":
            return arrival_monotonic
        if stamp_ns == 0:
            raise ValueError("header.stamp is 0: the camera driver does not stamp its frames; "
                             "set robot.ros2.camera.capture_time: arrival")
        age = (arrival_wall_ns - stamp_ns) / 1e9
        if age < -camera.max_clock_skew_s:
            raise ValueError(f"header.stamp is {-age:.3f} s in the future of this computer's clock: synchronise the "
                             "clocks (chrony / NTP) or set robot.ros2.camera.capture_time: arrival")
        return arrival_monotonic - max(age, 0.0)

    def _check_hash(self, received: Any) -> None:
        """Warn once when the first frame comes with another type hash than ours (another distro)."""
        if self._hash_checked:
            return
        from lnn_control.runtime.ros2.messages import type_hash

        self._hash_checked = True
        ours = type_hash(self.config.camera.msgtype)
        if received.type_hash != ours:
            log.warning("camera %s is published with type hash %s, ours (ROS 2 Jazzy) is %s: another ROS distro; "
                        "frames are decoded anyway (the CDR of %s did not change)", self.camera_topic,
                        received.type_hash, ours, self.config.camera.msgtype)

    def _on_odometry(self, received: Any) -> None:
        from lnn_control.runtime.ros2.messages import from_cdr, odometry_extras

        values = odometry_extras(from_cdr(received.payload, _ODOMETRY))
        with self._cond:
            self._odometry = {name: values[name] for name in self.config.extras}
            self._odometry_arrival = received.arrival_monotonic
            self._cond.notify_all()

    # ------------------------------------------------------------------ publishing (under self._cond)
    def _publish(self, twist: Twist) -> None:
        from lnn_control.runtime.ros2.messages import twist_stamped_message
        from lnn_control.runtime.ros2.node import Ros2LinkError

        if self._publisher is None:
            raise RobotError("Ros2Robot is not connected: call connect() (or use it in a with block)")
        message = twist_stamped_message(twist, time.time_ns(), self.config.command.frame_id)
        try:
            self._publisher.publish(message)
        except Ros2LinkError as exc:
            raise LinkLostError(f"{exc}; the Zenoh session is gone") from exc
        self.commands_sent += 1

    def _camera_stale(self, now: float) -> bool:
        return now - self._frame_arrival > self.config.camera.stale_s

    def _guard_loop(self) -> None:
        """Zero twist when the camera goes stale or write() stops coming while driving (module docstring)."""
        timeout = self.config.command.command_timeout_s
        with self._cond:
            while self._running:
                wait = 0.5
                if self._driving:
                    now = time.monotonic()
                    stale_at = self._frame_arrival + self.config.camera.stale_s
                    silent_at = self._last_write + timeout
                    if now >= stale_at or now >= silent_at:
                        try:
                            self._publish(Twist())
                        except RobotError as exc:
                            log.warning("robot-side watchdog could not send the zero twist: %s", exc)
                        self._driving = False
                        if now >= stale_at:
                            self.stale_stops += 1
                        else:
                            self.command_timeout_stops += 1
                        continue
                    wait = min(stale_at, silent_at) - now
                self._cond.wait(wait)

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        """Open the Zenoh session, declare node, publisher and subscriptions, start the watchdog and
        wait for the first frame (and odometry); RobotError says what to check."""
        from lnn_control.extras import require

        if self._connected:
            return
        require("zenoh", "robot.kind ros2")
        require("rosbags", "robot.kind ros2")
        from lnn_control.runtime.ros2.node import Ros2LinkError, Ros2Node
        from lnn_control.runtime.ros2.zenoh_wire import QosProfile

        config = self.config
        self._reset_state()
        node = Ros2Node(config.zenoh, config.domain_id, config.node_name, config.namespace)
        try:
            node.open()
            self._node = node
            self._publisher = node.publisher(self.command_topic, _TWIST_STAMPED,
                                             QosProfile(config.command.reliability, depth=config.command.depth),
                                             express=True)
            node.subscription(self.camera_topic, config.camera.msgtype, config.camera.qos, self._on_camera)
            if config.odometry is not None and self.odometry_topic is not None:
                node.subscription(self.odometry_topic, _ODOMETRY, config.odometry.qos, self._on_odometry)
            self._running = True
            self._guard = threading.Thread(target=self._guard_loop, name="ros2-robot-watchdog", daemon=True)
            self._guard.start()
            self._await_first_messages()
        except Ros2LinkError as exc:
            self._close()
            raise RobotError(str(exc)) from exc
        except BaseException:
            self._close()
            raise
        self._connected = True

    def _reset_state(self) -> None:
        with self._cond:
            self._frame = None
            self._frame_arrival = -math.inf
            self._interval = self.config.camera.period_s
            self._returned_index = None
            self._frame_error = None
            self._odometry = None
            self._odometry_arrival = -math.inf
            self._driving = False
            self._last_write = -math.inf
            self._hash_checked = False

    def _await_first_messages(self) -> None:
        camera = self.config.camera
        deadline = time.monotonic() + camera.first_frame_timeout_s
        with self._cond:
            while self._frame is None and self._frame_error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            frame, error = self._frame, self._frame_error
        if frame is None:
            raise RobotError(error or f"no frame on {self.camera_topic} within {camera.first_frame_timeout_s:g} s: "
                             + self._graph_hint())
        age = time.monotonic() - frame.timestamp
        if age > camera.max_clock_skew_s:
            raise RobotError(f"the first frame on {self.camera_topic} is {age:.3f} s old by its header stamp: the camera "
                             "computer's clock is behind this one's (synchronise them with chrony / NTP) or it stamps "
                             "sim time; or set robot.ros2.camera.capture_time: arrival")
        if self.config.odometry is not None and self.config.extras:
            with self._cond:
                self._cond.wait_for(lambda: self._odometry is not None, max(0.0, deadline - time.monotonic()))
                if self._odometry is None:
                    raise RobotError(f"no odometry on {self.odometry_topic} within {camera.first_frame_timeout_s:g} s "
                                     f"(needed for extras {list(self.config.extras)}): " + self._graph_hint())

    def _graph_hint(self) -> str:
        """What the ROS graph shows, for an error about a missing topic."""
        try:
            graph = self._node.graph(0.5) if self._node is not None else []
        except Exception as exc:  # noqa: BLE001 - a hint must not replace the error
            return f"(the ROS graph could not be read: {exc})"
        others = [e for e in graph if e.node.zid != self._node.zid]
        if not others:
            return (f"nothing else is visible on ROS domain {self.config.domain_id}: check that the robot runs "
                    "RMW_IMPLEMENTATION=rmw_zenoh_cpp, that a Zenoh router is reachable at "
                    f"{list(self.config.zenoh.connect)}, and ROS_DOMAIN_ID")
        publishers = sorted({f"{e.topic.name} [{e.ros_type}]" for e in others if e.kind.value == "MP" and e.topic})
        return (f"publishers on domain {self.config.domain_id}: {publishers or 'none'}; set robot.ros2.camera.topic / "
                "type to one of them")

    def _close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._guard is not None:
            self._guard.join(timeout=1.0)
            self._guard = None
        if self._node is not None:
            self._node.close()
        self._node = None
        self._publisher = None

    def disconnect(self) -> None:
        """Zero twist if still driving (best effort), then close the session; safe to call twice."""
        with self._cond:
            if self._driving and self._publisher is not None:
                try:
                    self._publish(Twist())
                except RobotError:
                    pass
                self._driving = False
        self._connected = False
        self._close()
        if self.stale_stops:
            log.warning("robot-side watchdog: %d zero twist(s) because no frame came on %s within %.1f ms of the "
                        "previous one; if the camera is only jittery (not stopping), raise "
                        "robot.ros2.camera.stale_after_s", self.stale_stops, self.camera_topic,
                        self.config.camera.stale_s * 1e3)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def link_ok(self) -> bool:
        return self._connected and self._node is not None and self._node.is_open

    # ------------------------------------------------------------------ robot io
    def read(self) -> Observation:
        """The newest frame, or the next one if it is due within ``frame_wait_s`` (module docstring)."""
        if not self._connected:
            raise RobotError("Ros2Robot is not connected: call connect() (or use it in a with block)")
        with self._cond:
            now = time.monotonic()
            newest = self._frame
            seen = None if newest is None else newest.frame_index
            next_due = self._frame_arrival + self._interval
            if seen is None or seen == self._returned_index or next_due - now <= self.frame_wait_s:
                deadline = now + self.frame_wait_s
                while self._frame is None or self._frame.frame_index == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            frame = self._frame
            now = time.monotonic()
            if self._frame_error is not None and self._camera_stale(now):
                raise RobotError(f"{self._frame_error} (no usable frame for {now - self._frame_arrival:.2f} s)")
            assert frame is not None  # connect() waited for the first one
            self._returned_index = frame.frame_index
            extras: dict[str, float] = {}
            if self.config.extras:
                age = now - self._odometry_arrival
                assert self.config.odometry is not None and self._odometry is not None  # checked in connect()
                if age > self.config.odometry.timeout_s:
                    raise RobotError(f"odometry on {self.odometry_topic} is {age:.2f} s old (> timeout_s "
                                     f"{self.config.odometry.timeout_s:g}); extras {list(self.config.extras)} unknown")
                extras = dict(self._odometry)
        return Observation(frame.image, frame.timestamp, extras, frame.frame_index)

    def write(self, action: np.ndarray) -> np.ndarray:
        """Clip to the action bounds and publish the TwistStamped; returns what was sent in the
        policy's frame. While the camera is stale (robot-side watchdog) the zero twist goes out and
        zeros are returned."""
        values = np.asarray(action, np.float64).reshape(-1)
        if values.shape != (self.action_spec.size,):
            raise ValueError(f"action must have shape ({self.action_spec.size},) {self.action_spec.names}, got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action must be finite, got {values.tolist()}; nothing was published")
        values = np.clip(values, self.action_spec.low, self.action_spec.high)
        twist = twist_from_action(values, self.action_spec.names, self.config.car)
        with self._cond:
            now = time.monotonic()
            self._last_write = now
            if self._camera_stale(now):
                self._publish(Twist())
                if self._driving:
                    self.stale_stops += 1
                self._driving = False
                return np.zeros(self.action_spec.size, np.float32)
            self._publish(twist)
            self._driving = twist != Twist()
            self._cond.notify_all()
        return values.astype(np.float32)

    def stop(self) -> None:
        """Publish the zero twist (all velocities 0); LinkLostError if the session is gone."""
        with self._cond:
            self._publish(Twist())
            self._driving = False
            self._cond.notify_all()

    # ------------------------------------------------------------------ status
    @property
    def node_token(self) -> str | None:
        """Our node's liveliness token while connected."""
        return None if self._node is None else self._node.node_token

    @property
    def command_key_expr(self) -> str | None:
        return None if self._publisher is None else self._publisher.key_expr
