"""MavlinkDrone: a camera plus a PX4 autopilot over MAVLink (pymavlink), flown in OFFBOARD mode.

Actions are body-frame velocity + yaw-rate set-points ``(vx, vy, vz, yaw_rate)`` in m/s and rad/s
(x forward, y right, z down), sent as SET_POSITION_TARGET_LOCAL_NED with

- ``type_mask = 1479`` = ignore position (1|2|4) + ignore acceleration (64|128|256) + ignore yaw
  (1024): only vx, vy, vz and yaw_rate are used (bit 512, force, stays clear);
- ``coordinate_frame = MAV_FRAME_BODY_NED`` (8) by default: PX4 rotates these velocities by the
  vehicle's heading only (not roll/pitch), so "forward" is where the camera looks, level with the
  ground, whatever the tilt: what a camera-driven policy means. ``body_offset_ned`` (9) is the
  ArduPilot spelling of the same idea; ``local_ned`` (1) is earth-fixed.

The offboard sequence (PX4 refuses OFFBOARD without a live set-point stream, > 2 Hz):

1. wait for the autopilot's HEARTBEAT (``connect_timeout_s``);
2. stream zero-velocity set-points at ``setpoint_rate_hz`` for at least ``pre_stream_s`` and
   ``pre_stream_setpoints`` messages;
3. request OFFBOARD (MAV_CMD_DO_SET_MODE) and wait until the heartbeat shows it;
4. arm (MAV_CMD_COMPONENT_ARM_DISARM) only if ``arm: true``; otherwise the pilot arms.

A background thread sends our HEARTBEAT, keeps the stream alive between ``write()`` calls, and is
the host-side watchdog: a set-point older than ``command_timeout_s`` is replaced by zero velocity
(hover). It never keeps flying the last command for a stalled loop. ``stop()`` sends zero velocity
at once, then requests HOLD or LAND per ``stop_action``.

``estop_requested()`` turns True when the autopilot leaves OFFBOARD without us asking (pilot's
mode switch, autopilot failsafe) or disarms while we fly; ``link_ok()`` is False once its heartbeat
is older than ``link_timeout_s``.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from lnn_control.runtime.cameras import Camera, CameraError
from lnn_control.runtime.link_robot import (
    check_finite_positive,
    check_image_shape,
    fit_image,
    reconnect,
)
from lnn_control.runtime.robot import LinkLostError, Observation, Robot, RobotError
from lnn_control.spec import ActionSpec, ObservationSpec

TYPE_MASK_VELOCITY_YAW_RATE = 1 | 2 | 4 | 64 | 128 | 256 | 1024  # = 1479
PX4_MAIN_MODE_AUTO, PX4_MAIN_MODE_OFFBOARD = 4, 6
PX4_AUTO_SUB_MODE_LOITER, PX4_AUTO_SUB_MODE_LAND = 3, 6
MAV_TYPE_GCS, MAV_TYPE_ONBOARD_CONTROLLER = 6, 18
MAV_AUTOPILOT_INVALID = 8  # what gimbals, cameras, OSDs and companions put in HEARTBEAT.autopilot


class SetpointFrame(str, enum.Enum):
    BODY_NED = "body_ned"  # MAV_FRAME_BODY_NED = 8
    BODY_OFFSET_NED = "body_offset_ned"  # MAV_FRAME_BODY_OFFSET_NED = 9
    LOCAL_NED = "local_ned"  # MAV_FRAME_LOCAL_NED = 1

    @property
    def mav_frame(self) -> int:
        return {"body_ned": 8, "body_offset_ned": 9, "local_ned": 1}[self.value]


class StopAction(str, enum.Enum):
    """What ``stop()`` asks for after the zero-velocity set-point."""

    HOLD = "hold"  # PX4 AUTO.LOITER
    LAND = "land"  # PX4 AUTO.LAND
    NONE = "none"  # stay in OFFBOARD, hovering on zero velocity


class DroneExtra(str, enum.Enum):
    ALTITUDE = "altitude"  # m above the EKF origin (-z of LOCAL_POSITION_NED)
    SPEED = "speed"  # m/s, norm of the local velocity


@dataclass(frozen=True)
class MavlinkDroneConfig:
    """connection: pymavlink connection string (``udpout:127.0.0.1:14540``, ``udpin:0.0.0.0:14540``,
    ``/dev/ttyACM0``); baudrate: for serial links. arm: send the arm command after OFFBOARD.
    engage_offboard: request OFFBOARD in ``connect()`` (False: the pilot switches).
    reengage_after_reconnect: a reconnect (after link loss) requests OFFBOARD again; by default it
    does not: the autopilot's own failsafe has taken over, and ``estop_requested()`` reports the
    vehicle out of OFFBOARD so the loop latches its e-stop for a person to decide. velocity_limits:
    symmetric bounds of (vx, vy, vz, yaw_rate) in m/s, m/s, m/s, rad/s. target_system: the
    autopilot's MAVLink system id; 0 = the first autopilot heard after connect(); messages of other
    systems (another vehicle on the same network) are ignored. Rates in Hz, times in s."""

    connection: str
    baudrate: int = 57600
    arm: bool = False
    engage_offboard: bool = True
    reengage_after_reconnect: bool = False
    stop_action: StopAction = StopAction.HOLD
    frame: SetpointFrame = SetpointFrame.BODY_NED
    velocity_limits: tuple[float, float, float, float] = (2.0, 1.0, 1.0, 1.0)
    extras: tuple[DroneExtra, ...] = ()
    image_shape: tuple[int, int] = (64, 128)
    setpoint_rate_hz: float = 20.0
    heartbeat_rate_hz: float = 1.0
    pre_stream_s: float = 0.5
    pre_stream_setpoints: int = 10
    command_timeout_s: float = 0.3
    link_timeout_s: float = 3.0
    connect_timeout_s: float = 5.0
    source_system: int = 1
    source_component: int = 191  # MAV_COMP_ID_ONBOARD_COMPUTER
    target_system: int = 0

    def __post_init__(self) -> None:
        try:  # plain strings are accepted where enums are expected
            object.__setattr__(self, "extras", tuple(DroneExtra(e) for e in self.extras))
            object.__setattr__(self, "frame", SetpointFrame(self.frame))
            object.__setattr__(self, "stop_action", StopAction(self.stop_action))
        except ValueError as exc:
            raise ValueError(
                f"{exc}; allowed: extras {[e.value for e in DroneExtra]}, frame "
                f"{[f.value for f in SetpointFrame]}, stop_action {[a.value for a in StopAction]}"
            ) from exc
        if not self.connection:
            raise ValueError("connection must be a pymavlink connection string, e.g. udpout:127.0.0.1:14540")
        if not 2.0 < self.setpoint_rate_hz <= 100.0:
            raise ValueError(
                f"setpoint_rate_hz must be in (2, 100] Hz (PX4 drops OFFBOARD below 2 Hz), got {self.setpoint_rate_hz}"
            )
        if len(self.velocity_limits) != 4 or any(not 0 < v < math.inf for v in self.velocity_limits):
            raise ValueError(
                f"velocity_limits must be 4 finite values > 0 (vx, vy, vz in m/s, yaw_rate in rad/s), "
                f"got {self.velocity_limits}"
            )
        check_image_shape(self.image_shape)
        check_finite_positive(self, ("heartbeat_rate_hz",), "Hz")
        check_finite_positive(self, ("command_timeout_s", "link_timeout_s", "connect_timeout_s"), "seconds")
        if not 0 <= self.target_system <= 255:
            raise ValueError(f"target_system must be a MAVLink system id 1..255, or 0 for the first heard, got {self.target_system}")
        if self.pre_stream_s < 0.5 or self.pre_stream_setpoints < 1:
            raise ValueError(
                "pre_stream_s must be >= 0.5 s and pre_stream_setpoints >= 1: PX4 needs a live stream "
                f"before OFFBOARD (got {self.pre_stream_s} s, {self.pre_stream_setpoints})"
            )


class MavlinkDrone(Robot):
    """Camera + PX4 over MAVLink; see the module docstring."""

    def __init__(self, camera: Camera, config: MavlinkDroneConfig) -> None:
        self.camera = camera
        self.config = config
        shape = getattr(camera, "output_shape", None) or config.image_shape
        extras = tuple(e.value for e in config.extras)
        units = tuple("m" if e == DroneExtra.ALTITUDE else "m/s" for e in config.extras)
        self.observation_spec = ObservationSpec((int(shape[0]), int(shape[1]), 3), extras, units)
        limits = tuple(float(v) for v in config.velocity_limits)
        self.action_spec = ActionSpec(
            ("vx", "vy", "vz", "yaw_rate"), tuple(-v for v in limits), limits, ("m/s", "m/s", "m/s", "rad/s")
        )
        self._conn = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._connected = False
        self._io_error: str | None = None
        self._target = (1, 1)
        self._last_heartbeat = -math.inf
        self._custom_mode: int | None = None
        self._armed = False
        self._acks: dict[int, int] = {}
        self._position: tuple[float, ...] | None = None
        self._setpoint = np.zeros(4)
        self._setpoint_time = -math.inf
        self._last_setpoint_tx = -math.inf
        self._last_heartbeat_tx = -math.inf
        self._engaged = False  # we put it in OFFBOARD
        self._was_engaged = False  # some earlier connect() of this object did
        self._stop_mode_requested = False
        self.setpoints_sent = 0
        self.watchdog_zeroes = 0

    # -------------------------------------------------------------- link io
    def _send_setpoint(self, velocity: np.ndarray) -> None:
        vx, vy, vz, yaw_rate = (float(v) for v in velocity)
        boot_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        with self._send_lock:
            if self._conn is None:
                raise LinkLostError(f"MAVLink link {self.config.connection} is closed")
            try:
                self._conn.mav.set_position_target_local_ned_send(
                    boot_ms, self._target[0], self._target[1], self.config.frame.mav_frame,
                    TYPE_MASK_VELOCITY_YAW_RATE, 0, 0, 0, vx, vy, vz, 0, 0, 0, 0, yaw_rate,
                )
            except OSError as exc:
                self._io_error = f"send failed: {exc}"
                raise LinkLostError(f"MAVLink link {self.config.connection} lost while sending ({exc})") from exc
            self._last_setpoint_tx = time.monotonic()
            self.setpoints_sent += 1

    def _send_command(self, command: int, *params: float) -> None:
        p = list(params) + [0.0] * (7 - len(params))
        with self._state:
            self._acks.pop(command, None)
        with self._send_lock:
            if self._conn is None:
                raise LinkLostError(f"MAVLink link {self.config.connection} is closed")
            try:
                self._conn.mav.command_long_send(self._target[0], self._target[1], command, 0, *p)
            except OSError as exc:  # a serial link (UDP sends never raise in pymavlink)
                self._io_error = f"send failed: {exc}"
                raise LinkLostError(f"MAVLink link {self.config.connection} lost while sending ({exc})") from exc

    def _send_heartbeat(self) -> None:
        with self._send_lock:
            if self._conn is None:
                raise LinkLostError(f"MAVLink link {self.config.connection} is closed")
            try:
                self._conn.mav.heartbeat_send(MAV_TYPE_ONBOARD_CONTROLLER, MAV_AUTOPILOT_INVALID, 0, 0, 4)  # ACTIVE
            except OSError as exc:
                self._io_error = f"send failed: {exc}"
                raise LinkLostError(f"MAVLink link {self.config.connection} lost while sending ({exc})") from exc
        self._last_heartbeat_tx = time.monotonic()

    def _handle(self, message: object) -> None:
        kind = message.get_type()
        system = message.get_srcSystem()
        with self._state:
            if kind == "HEARTBEAT":
                if message.autopilot == MAV_AUTOPILOT_INVALID or message.type in (
                    MAV_TYPE_GCS, MAV_TYPE_ONBOARD_CONTROLLER
                ):
                    return  # a gimbal, camera, companion or ground station: not the autopilot
                if self._custom_mode is None:  # the first autopilot heartbeat since connect()
                    if self.config.target_system not in (0, system):
                        return
                elif system != self._target[0]:
                    return  # another vehicle's autopilot
                self._target = (system, message.get_srcComponent())
                self._last_heartbeat = time.monotonic()
                self._custom_mode = int(message.custom_mode)
                self._armed = bool(message.base_mode & 128)  # MAV_MODE_FLAG_SAFETY_ARMED
            elif self._custom_mode is None or system != self._target[0]:
                return  # not (yet) from our autopilot
            elif kind == "COMMAND_ACK":
                self._acks[int(message.command)] = int(message.result)
            elif kind == "LOCAL_POSITION_NED":
                self._position = (message.x, message.y, message.z, message.vx, message.vy, message.vz)
            else:
                return
            self._state.notify_all()

    def _io_loop(self) -> None:
        try:
            self._serve_link()
        except Exception as exc:  # a fault in this thread must show as a lost link at once, not pass silently
            self._io_error = f"I/O thread failed: {type(exc).__name__}: {exc}"

    def _serve_link(self) -> None:
        conn = self._conn
        setpoint_period = 1.0 / self.config.setpoint_rate_hz
        heartbeat_period = 1.0 / self.config.heartbeat_rate_hz
        while self._running.is_set():
            until_due = self._last_setpoint_tx + setpoint_period - time.monotonic()
            try:
                message = conn.recv_match(blocking=True, timeout=min(0.005, max(0.0005, until_due)))
            except (OSError, ValueError) as exc:
                self._io_error = f"receive failed: {exc}"
                return
            if message is not None:
                self._handle(message)
            now = time.monotonic()
            try:
                if now - self._last_heartbeat_tx >= heartbeat_period:
                    self._send_heartbeat()
                if now - self._last_setpoint_tx >= setpoint_period:
                    if now - self._setpoint_time > self.config.command_timeout_s and np.any(self._setpoint):
                        self._setpoint = np.zeros(4)  # stale command: hover, never repeat it
                        self.watchdog_zeroes += 1
                    self._send_setpoint(self._setpoint)
            except LinkLostError:  # _io_error says why; link_ok() turns False at once
                return

    # -------------------------------------------------------------- status
    @property
    def px4_mode(self) -> tuple[int, int] | None:
        """(main_mode, sub_mode) from the autopilot's last heartbeat."""
        if self._custom_mode is None:
            return None
        return (self._custom_mode >> 16) & 0xFF, (self._custom_mode >> 24) & 0xFF

    @property
    def in_offboard(self) -> bool:
        mode = self.px4_mode
        return mode is not None and mode[0] == PX4_MAIN_MODE_OFFBOARD

    @property
    def armed(self) -> bool:
        return self._armed

    def link_ok(self) -> bool:
        return (
            self._connected
            and self._io_error is None
            and time.monotonic() - self._last_heartbeat < self.config.link_timeout_s
        )

    def estop_requested(self) -> bool:
        """The autopilot left OFFBOARD (or disarmed) while we flew, without our asking."""
        if not self._engaged or self._stop_mode_requested or self._custom_mode is None:
            return False
        return not self.in_offboard or (self.config.arm and not self._armed)

    def _check_link(self) -> None:
        if not self._connected:
            raise RobotError("MavlinkDrone is not connected: call connect() (or use it in a with block)")
        if not self.link_ok():
            why = self._io_error or f"no autopilot heartbeat for more than {self.config.link_timeout_s} s"
            raise LinkLostError(f"MAVLink link {self.config.connection} lost: {why}; check the telemetry link")

    def _wait(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._state:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._io_error is not None:
                    return False
                self._state.wait(min(remaining, 0.05))
        return True

    # ----------------------------------------------------------- lifecycle
    def connect(self) -> None:
        if self._connected:
            return
        from pymavlink import mavutil

        try:
            self._conn = mavutil.mavlink_connection(
                self.config.connection,
                baud=self.config.baudrate,
                source_system=self.config.source_system,
                source_component=self.config.source_component,
            )
        except Exception as exc:  # pymavlink raises OSError / SerialException / ValueError by transport
            self._conn = None
            raise RobotError(
                f"cannot open MAVLink connection {self.config.connection!r} ({exc}); check the connection "
                "string (udpout:HOST:PORT, udpin:0.0.0.0:PORT or a serial device) and the device"
            ) from exc
        self._io_error = None
        self._last_heartbeat = -math.inf
        self._custom_mode = None
        self._engaged = self._stop_mode_requested = False
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._running.set()
        try:
            self._send_heartbeat()  # lets a UDP autopilot learn where we are
            self._thread = threading.Thread(target=self._io_loop, name="mavlink-drone-io", daemon=True)
            self._thread.start()
            if not self._wait(lambda: self._custom_mode is not None, self.config.connect_timeout_s):
                raise RobotError(
                    f"no autopilot HEARTBEAT on {self.config.connection} within {self.config.connect_timeout_s} s"
                    f"{' (' + self._io_error + ')' if self._io_error else ''}; check the connection string, "
                    "that the autopilot is powered and that its MAVLink stream targets this port"
                )
            self._connected = True
            self.camera.open()  # before OFFBOARD: a camera failure must not leave it in offboard
            if self.config.engage_offboard:
                if self._was_engaged and not self.config.reengage_after_reconnect:
                    self._engaged = True  # expect OFFBOARD; anything else is an e-stop
                else:
                    self.engage()
        except BaseException as exc:  # never leave the I/O thread, socket or camera behind
            self._connected = False
            self._close_link()
            self.camera.close()
            if isinstance(exc, CameraError):
                raise RobotError(f"MavlinkDrone camera: {exc}") from exc
            raise

    def _set_mode(self, main_mode: int, sub_mode: int = 0) -> None:
        self._send_command(176, 1, main_mode, sub_mode)  # MAV_CMD_DO_SET_MODE, CUSTOM_MODE_ENABLED

    def engage(self) -> None:
        """Stream zero set-points, switch to OFFBOARD, arm if configured. Raises RobotError."""
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._stop_mode_requested = False
        start_count, start = self.setpoints_sent, time.monotonic()
        streamed = self._wait(
            lambda: self.setpoints_sent - start_count >= self.config.pre_stream_setpoints
            and time.monotonic() - start >= self.config.pre_stream_s,
            self.config.pre_stream_s + self.config.pre_stream_setpoints / self.config.setpoint_rate_hz + 2.0,
        )
        if not streamed:
            raise RobotError(f"could not stream set-points on {self.config.connection}: {self._io_error}")
        self._set_mode(PX4_MAIN_MODE_OFFBOARD)
        if not self._wait(lambda: self.in_offboard, self.config.connect_timeout_s):
            result = self._acks.get(176)
            raise RobotError(
                f"autopilot did not enter OFFBOARD (command result {result}); check that no RC override "
                "or pre-flight check blocks it (PX4: COM_RCL_EXCEPT, estimator health)"
            )
        self._engaged = self._was_engaged = True
        if self.config.arm:
            self._send_command(400, 1)  # MAV_CMD_COMPONENT_ARM_DISARM
            if not self._wait(lambda: self._armed, self.config.connect_timeout_s):
                raise RobotError(
                    f"autopilot refused to arm (command result {self._acks.get(400)}); check pre-arm "
                    "checks in the ground station"
                )

    def _close_link(self) -> None:
        self._running.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None
        with self._send_lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except OSError:
                    pass
                self._conn = None

    def disconnect(self) -> None:
        self._connected = False
        self._close_link()
        self.camera.close()

    @property
    def is_connected(self) -> bool:
        return self._connected

    def reconnect(self, max_attempts: int, backoff_s: float = 0.5) -> int:
        """disconnect() + connect() up to ``max_attempts`` times; returns the attempt that worked,
        else raises RobotError listing every failure."""
        return reconnect(self, max_attempts, backoff_s, f"the autopilot on {self.config.connection}")

    # ------------------------------------------------------------ robot io
    def read(self) -> Observation:
        self._check_link()
        try:
            frame = self.camera.read()
        except CameraError as exc:
            raise RobotError(f"MavlinkDrone camera: {exc}") from exc
        image = fit_image(frame.image, self.observation_spec.image_shape)
        extras = {}
        position = self._position
        for extra in self.config.extras:
            if position is None:
                extras[extra.value] = 0.0
            elif extra == DroneExtra.ALTITUDE:
                extras[extra.value] = -float(position[2])
            else:
                extras[extra.value] = float(math.sqrt(sum(v * v for v in position[3:])))
        return Observation(image, frame.timestamp, extras)

    def write(self, action: np.ndarray) -> np.ndarray:
        """Clamp to the velocity limits and send now; the stream thread repeats it only while it
        is younger than ``command_timeout_s``. Returns the set-point sent.

        After a ``stop()`` that handed the vehicle to HOLD / LAND, nothing is sent and zero
        velocity is returned (what the vehicle does): only :meth:`engage` flies again — a loop
        whose watchdog clears never takes the vehicle back by itself."""
        self._check_link()
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != (4,):
            raise ValueError(f"action must have shape (4,) (vx, vy, vz, yaw_rate), got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action must be finite, got {values.tolist()}; nothing was sent")
        if self._stop_mode_requested:
            return np.zeros(4, np.float32)
        values = np.clip(values, self.action_spec.low, self.action_spec.high)
        self._setpoint = values
        self._setpoint_time = time.monotonic()
        self._send_setpoint(values)
        return values.astype(np.float32)

    def stop(self) -> None:
        """Zero velocity now, then (once per stop) HOLD or LAND per ``stop_action``."""
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._send_setpoint(self._setpoint)
        if self.config.stop_action == StopAction.NONE or self._stop_mode_requested:
            return
        self._stop_mode_requested = True
        if self.config.stop_action == StopAction.HOLD:
            self._set_mode(PX4_MAIN_MODE_AUTO, PX4_AUTO_SUB_MODE_LOITER)
        else:
            self._set_mode(PX4_MAIN_MODE_AUTO, PX4_AUTO_SUB_MODE_LAND)
