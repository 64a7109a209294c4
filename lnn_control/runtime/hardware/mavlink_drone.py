"""MavlinkDrone: a camera plus a PX4 autopilot over MAVLink 2 (pymavlink), flown in OFFBOARD mode.

**Frames, in one place.** The policy acts in :attr:`~lnn_control.spec.ActionFrame.FLU`
``(vx, vy, vz, yaw_rate)``: m/s and rad/s in the level heading frame, x forward, y LEFT, z UP,
yaw counter-clockwise-positive (what both simulators fly). MAVLink's BODY_NED set-points are x
forward, y RIGHT, z DOWN, yaw clockwise-positive. :func:`flu_to_body_ned` is the only conversion
on the way out, :func:`ned_velocity_to_flu` the only one on the way in (the ``vx, vy, vz``
observation extras from LOCAL_POSITION_NED rotated by ATTITUDE's yaw). The robot's action spec
says ``frame: flu``; ``lnn-control run`` refuses a bundle whose spec names another (or no) frame
before a single byte reaches the vehicle.

Set-points are SET_POSITION_TARGET_LOCAL_NED with ``type_mask = 1479`` (ignore position 1|2|4,
acceleration 64|128|256 and yaw 1024: only vx, vy, vz and yaw_rate are used) in
``MAV_FRAME_BODY_NED`` (8; PX4 rotates them by the heading only, so "forward" is where the camera
looks, level with the ground) or ``BODY_OFFSET_NED`` (9, ArduPilot's spelling of the same).

**Authority.** The pilot and the autopilot's failsafe always win:

- we request a mode only to enter OFFBOARD (``engage_offboard``) and, in :meth:`stop`, to hand a
  vehicle that is in OFFBOARD under our control to HOLD / LAND (``stop_action``);
- when the vehicle leaves OFFBOARD (or disarms) without our asking — a pilot's switch, a failsafe —
  we stop streaming set-points at once and never request a mode again on this object;
  :meth:`estop_requested` turns True so the loop latches its e-stop, and ``stop()`` sends nothing;
- after a stop we requested, the zero-velocity stream goes on only until the heartbeat shows the
  vehicle out of OFFBOARD (so a lost mode request still leaves it hovering, not in failsafe).

**One writer, one rate.** ``write()`` sends the loop's set-point. A background keep-alive sends a
set-point only when none went out for a whole keep-alive period (the loop stalled, or before the
loop starts), and zero velocity once the last command is older than ``command_timeout_s``: it
never keeps flying a stale command. Its period must be ≥ 1.5 loop periods (:meth:`preflight`).

**Unknown is unknown.** Extras (altitude, speed, vx, vy, vz) come from LOCAL_POSITION_NED (and
ATTITUDE for the heading). ``connect()`` waits for them before engaging and fails naming the
missing message; ``read()`` raises :class:`RobotError` when they are older than
``estimate_timeout_s`` (the loop then stops and ends the run: with extras, a silent link ends
the run this way, before ``link_timeout_s``). Nothing is ever reported as 0.0 for lack of data.

Offboard sequence: HEARTBEAT from the autopilot → estimates present → camera open → keep-alive
stream of zero set-points for ``pre_stream_s`` → MAV_CMD_DO_SET_MODE OFFBOARD (a rejecting
COMMAND_ACK fails at once) → arm only if ``arm: true``.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot, RobotError
from lnn_control.runtime.hardware.cameras import Camera, CameraError
from lnn_control.runtime.hardware.link import (
    check_finite_positive,
    check_image_shape,
    fit_image,
    reconnect,
)
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

TYPE_MASK_VELOCITY_YAW_RATE = 1 | 2 | 4 | 64 | 128 | 256 | 1024  # = 1479
PX4_MAIN_MODE_AUTO, PX4_MAIN_MODE_OFFBOARD = 4, 6
PX4_AUTO_SUB_MODE_LOITER, PX4_AUTO_SUB_MODE_LAND = 3, 6
MAV_TYPE_GCS, MAV_TYPE_ONBOARD_CONTROLLER = 6, 18
MAV_AUTOPILOT_INVALID = 8  # what gimbals, cameras, OSDs and companions put in HEARTBEAT.autopilot
MAV_CMD_DO_SET_MODE, MAV_CMD_COMPONENT_ARM_DISARM = 176, 400
MAV_RESULT_NAMES = {0: "ACCEPTED", 1: "TEMPORARILY_REJECTED", 2: "DENIED", 3: "UNSUPPORTED", 4: "FAILED",
                    5: "IN_PROGRESS", 6: "CANCELLED"}
PX4_MODE_NAMES = {(1, 0): "MANUAL", (2, 0): "ALTCTL", (3, 0): "POSCTL", (4, 2): "TAKEOFF", (4, 3): "HOLD",
                  (4, 4): "MISSION", (4, 5): "RTL", (4, 6): "LAND", (5, 0): "ACRO", (6, 0): "OFFBOARD",
                  (7, 0): "STABILIZED"}


def flu_to_body_ned(action_flu: np.ndarray) -> tuple[float, float, float, float]:
    """Policy ``(vx, vy, vz, yaw_rate)`` forward-left-up, yaw CCW+ → MAVLink body forward-right-down,
    yaw CW+ (m/s, rad/s). The only place the drone's outgoing axes change."""
    vx, vy, vz, yaw_rate = (float(v) for v in action_flu)
    return vx, -vy, -vz, -yaw_rate


def ned_velocity_to_flu(v_north: float, v_east: float, v_down: float, yaw_ned: float) -> tuple[float, float, float]:
    """Earth NED velocity (m/s) and NED yaw (rad, 0 = north, + clockwise seen from above) → velocity
    in the level heading frame, forward-left-up (m/s): the env's ``vx, vy, vz`` observation extras."""
    c, s = math.cos(yaw_ned), math.sin(yaw_ned)
    forward = c * v_north + s * v_east
    right = -s * v_north + c * v_east
    return forward, -right, -v_down


class SetpointFrame(str, enum.Enum):
    """The MAVLink frame of the outgoing velocity set-points (both heading-relative)."""

    BODY_NED = "body_ned"  # MAV_FRAME_BODY_NED = 8 (PX4)
    BODY_OFFSET_NED = "body_offset_ned"  # MAV_FRAME_BODY_OFFSET_NED = 9 (ArduPilot)

    @property
    def mav_frame(self) -> int:
        return {"body_ned": 8, "body_offset_ned": 9}[self.value]


class StopAction(str, enum.Enum):
    """What ``stop()`` asks for after the zero-velocity set-point (only while we hold OFFBOARD)."""

    HOLD = "hold"  # PX4 AUTO.LOITER
    LAND = "land"  # PX4 AUTO.LAND
    NONE = "none"  # stay in OFFBOARD, hovering on zero velocity


class DroneExtra(str, enum.Enum):
    """Observation extras from the autopilot's estimate, in the env's units and frame."""

    ALTITUDE = "altitude"  # m above the EKF origin (-z of LOCAL_POSITION_NED)
    SPEED = "speed"  # m/s, norm of the local velocity
    VX = "vx"  # m/s forward, level heading frame (FLU)
    VY = "vy"  # m/s left
    VZ = "vz"  # m/s up

    @property
    def needs_heading(self) -> bool:
        return self in (DroneExtra.VX, DroneExtra.VY)


@dataclass(frozen=True)
class MavlinkDroneConfig:
    """connection: pymavlink connection string. PX4 SITL's offboard link sends to UDP 14540 and
    listens on 14580: ``udpin:127.0.0.1:14540`` (the shipped default; ``udpin:0.0.0.0:14540`` when
    SITL runs in another container or host). A companion UART: ``/dev/ttyAMA0`` + ``baudrate``; a
    telemetry radio: ``/dev/ttyUSB0`` at 57600; behind mavlink-router: the UDP endpoint it serves.
    arm: send the arm command after OFFBOARD. engage_offboard: request OFFBOARD in ``connect()``
    (False: stream zero set-points and let the pilot switch to OFFBOARD). velocity_limits:
    symmetric bounds of (vx, vy, vz, yaw_rate) in m/s, m/s, m/s, rad/s. extras: see
    :class:`DroneExtra`. keepalive_rate_hz: the keep-alive's rate, used only to fill gaps (> 2 Hz,
    PX4's OFFBOARD minimum). link_timeout_s: no message from the autopilot for this long = link
    lost. estimate_timeout_s: extras older than this are unknown (``read()`` raises).
    reconnect_timeout_s: how long a re-connect waits for the autopilot (bounds link-loss handling).
    target_system: the autopilot's MAVLink system id; 0 = the first autopilot heard. Times in s."""

    connection: str
    baudrate: int = 57600
    arm: bool = False
    engage_offboard: bool = True
    stop_action: StopAction = StopAction.HOLD
    frame: SetpointFrame = SetpointFrame.BODY_NED
    velocity_limits: tuple[float, float, float, float] = (2.0, 1.0, 1.0, 1.0)
    extras: tuple[DroneExtra, ...] = ()
    image_shape: tuple[int, int] = (64, 128)
    keepalive_rate_hz: float = 10.0
    heartbeat_rate_hz: float = 1.0
    pre_stream_s: float = 1.0
    pre_stream_setpoints: int = 8
    command_timeout_s: float = 0.3
    link_timeout_s: float = 1.5
    estimate_timeout_s: float = 0.5
    connect_timeout_s: float = 5.0
    reconnect_timeout_s: float = 1.0
    source_system: int = 1
    source_component: int = 191  # MAV_COMP_ID_ONBOARD_COMPUTER
    target_system: int = 0

    def __post_init__(self) -> None:
        if self.frame == "local_ned":
            raise ValueError(
                "frame local_ned is not supported: the policy's velocities are relative to the heading "
                "(forward = where the camera looks); use body_ned (PX4) or body_offset_ned (ArduPilot)"
            )
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
            raise ValueError("connection must be a pymavlink connection string, e.g. udpin:127.0.0.1:14540")
        if not 2.0 < self.keepalive_rate_hz <= 100.0:
            raise ValueError(
                f"keepalive_rate_hz must be in (2, 100] Hz (PX4 drops OFFBOARD below 2 Hz), got {self.keepalive_rate_hz}"
            )
        if len(self.velocity_limits) != 4 or any(not 0 < v < math.inf for v in self.velocity_limits):
            raise ValueError(
                f"velocity_limits must be 4 finite values > 0 (vx, vy, vz in m/s, yaw_rate in rad/s), "
                f"got {self.velocity_limits}"
            )
        check_image_shape(self.image_shape)
        check_finite_positive(self, ("heartbeat_rate_hz",), "Hz")
        check_finite_positive(
            self,
            ("command_timeout_s", "link_timeout_s", "estimate_timeout_s", "connect_timeout_s", "reconnect_timeout_s"),
            "seconds",
        )
        if not 0 <= self.target_system <= 255:
            raise ValueError(f"target_system must be a MAVLink system id 1..255, or 0 for the first heard, got {self.target_system}")
        if self.pre_stream_s < 0.5 or self.pre_stream_setpoints < 1:
            raise ValueError(
                "pre_stream_s must be >= 0.5 s and pre_stream_setpoints >= 1: PX4 needs a live stream "
                f"before OFFBOARD (got {self.pre_stream_s} s, {self.pre_stream_setpoints})"
            )

    @property
    def keepalive_period_s(self) -> float:
        return 1.0 / self.keepalive_rate_hz


def open_mavlink2(connection: str, baudrate: int, source_system: int, source_component: int) -> object:
    """A pymavlink connection that speaks MAVLink 2 (PX4's protocol) and parses 1 and 2, without
    touching pymavlink's process-wide dialect (its auto-switch sets an environment variable)."""
    from pymavlink import mavutil
    from pymavlink.dialects.v20 import common as mavlink2

    conn = mavutil.mavlink_connection(
        connection, baud=baudrate, source_system=source_system, source_component=source_component
    )
    conn.mav = mavlink2.MAVLink(conn, srcSystem=source_system, srcComponent=source_component)
    conn.mav.robust_parsing = True
    conn.WIRE_PROTOCOL_VERSION = "2.0"
    conn.first_byte = False  # the protocol is chosen: no auto-switch
    return conn


class MavlinkDrone(Robot):
    """Camera + PX4 over MAVLink 2; see the module docstring."""

    def __init__(self, camera: Camera, config: MavlinkDroneConfig) -> None:
        self.camera = camera
        self.config = config
        shape = getattr(camera, "output_shape", None) or config.image_shape
        extras = tuple(e.value for e in config.extras)
        units = tuple("m" if e == DroneExtra.ALTITUDE else "m/s" for e in config.extras)
        self.observation_spec = ObservationSpec((int(shape[0]), int(shape[1]), 3), extras, units)
        limits = tuple(float(v) for v in config.velocity_limits)
        self.action_spec = ActionSpec(
            ("vx", "vy", "vz", "yaw_rate"), tuple(-v for v in limits), limits, ("m/s", "m/s", "m/s", "rad/s"),
            ActionFrame.FLU,
        )
        self._conn = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._io_error: str | None = None
        self._target = (1, 1)
        self._last_rx = -math.inf
        self._custom_mode: int | None = None
        self._armed = False
        self._acks: dict[int, int] = {}
        self._position: tuple[float, ...] | None = None  # x, y, z, vx, vy, vz (NED)
        self._position_time = -math.inf
        self._yaw: float | None = None  # NED yaw, rad
        self._attitude_time = -math.inf
        self._setpoint = np.zeros(4)  # FLU
        self._setpoint_time = -math.inf
        self._last_setpoint_tx = -math.inf
        self._last_heartbeat_tx = -math.inf
        self._streaming = False  # the keep-alive may send set-points
        self._engaged = False  # the vehicle is in OFFBOARD under our set-points
        self._stop_mode_requested = False  # we handed it to HOLD / LAND
        self._authority_lost: str | None = None  # why the pilot / autopilot has it now
        self.setpoints_sent = 0
        self.keepalive_setpoints = 0
        self.watchdog_zeroes = 0

    # -------------------------------------------------------------- link io
    def _transmit(self, send: Callable[[object], None]) -> None:
        with self._send_lock:
            if self._conn is None:
                raise LinkLostError(f"MAVLink link {self.config.connection} is closed")
            try:
                send(self._conn.mav)
            except OSError as exc:  # a serial link (UDP sends never raise in pymavlink)
                self._io_error = f"send failed: {exc}"
                raise LinkLostError(f"MAVLink link {self.config.connection} lost while sending ({exc})") from exc

    def _send_setpoint(self, action_flu: np.ndarray) -> None:
        vx, vy, vz, yaw_rate = flu_to_body_ned(action_flu)
        boot_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        self._transmit(
            lambda mav: mav.set_position_target_local_ned_send(
                boot_ms, self._target[0], self._target[1], self.config.frame.mav_frame,
                TYPE_MASK_VELOCITY_YAW_RATE, 0, 0, 0, vx, vy, vz, 0, 0, 0, 0, yaw_rate,
            )
        )
        self._last_setpoint_tx = time.monotonic()
        self.setpoints_sent += 1

    def _send_command(self, command: int, *params: float) -> None:
        p = list(params) + [0.0] * (7 - len(params))
        with self._state:
            self._acks.pop(command, None)
        self._transmit(lambda mav: mav.command_long_send(self._target[0], self._target[1], command, 0, *p))

    def _send_heartbeat(self) -> None:
        self._transmit(lambda mav: mav.heartbeat_send(MAV_TYPE_ONBOARD_CONTROLLER, MAV_AUTOPILOT_INVALID, 0, 0, 4))
        self._last_heartbeat_tx = time.monotonic()

    def _handle(self, message: object) -> None:
        kind = message.get_type()
        system = message.get_srcSystem()
        now = time.monotonic()
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
                self._custom_mode = int(message.custom_mode)
                was_armed, self._armed = self._armed, bool(message.base_mode & 128)  # SAFETY_ARMED
                self._track_authority(was_armed)
            elif self._custom_mode is None or system != self._target[0]:
                return  # not (yet) from our autopilot
            elif kind == "COMMAND_ACK":
                self._acks[int(message.command)] = int(message.result)
            elif kind == "LOCAL_POSITION_NED":
                self._position = (message.x, message.y, message.z, message.vx, message.vy, message.vz)
                self._position_time = now
            elif kind == "ATTITUDE":
                self._yaw = float(message.yaw)
                self._attitude_time = now
            self._last_rx = now
            self._state.notify_all()

    def _track_authority(self, was_armed: bool) -> None:
        """Called with each heartbeat of our autopilot (under ``_state``)."""
        offboard = self.in_offboard
        if self._authority_lost is not None:
            return
        if self._stop_mode_requested:
            if not offboard:
                self._streaming = False  # the vehicle took our HOLD / LAND: nothing more to send
            return
        if not self._engaged:
            if offboard and self._streaming and not self.config.engage_offboard:
                self._engaged = True  # the pilot switched to OFFBOARD on our stream
            return
        if not offboard:
            name = PX4_MODE_NAMES.get(self.px4_mode, str(self.px4_mode))
            self._lose_authority(f"the vehicle left OFFBOARD for {name} without our request (pilot or autopilot failsafe)")
        elif was_armed and not self._armed:
            self._lose_authority("the vehicle disarmed while we flew it (kill switch, land detector or pilot)")

    def _lose_authority(self, why: str) -> None:
        self._authority_lost = why
        self._streaming = False
        self._engaged = False

    def _io_loop(self) -> None:
        try:
            self._serve_link()
        except Exception as exc:  # a fault in this thread must show as a lost link at once, not pass silently
            self._io_error = f"I/O thread failed: {type(exc).__name__}: {exc}"

    def _serve_link(self) -> None:
        conn = self._conn
        keepalive = self.config.keepalive_period_s
        heartbeat_period = 1.0 / self.config.heartbeat_rate_hz
        while self._running.is_set():
            until_due = self._last_setpoint_tx + keepalive - time.monotonic()
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
                if self._streaming and now - self._last_setpoint_tx >= keepalive:
                    if now - self._setpoint_time > self.config.command_timeout_s and np.any(self._setpoint):
                        self._setpoint = np.zeros(4)  # stale command: hover, never repeat it
                        self.watchdog_zeroes += 1
                    self._send_setpoint(self._setpoint)
                    self.keepalive_setpoints += 1
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

    @property
    def streaming(self) -> bool:
        """Whether set-points may go out now (False before engaging, after a hand-over, and for good
        once the pilot or a failsafe took the vehicle)."""
        return self._streaming

    def link_ok(self) -> bool:
        return (
            self._connected
            and self._io_error is None
            and time.monotonic() - self._last_rx < self.config.link_timeout_s
        )

    def estop_requested(self) -> bool:
        """The vehicle left OFFBOARD (or disarmed) while we flew it, without our asking."""
        return self._authority_lost is not None

    def estop_detail(self) -> str:
        return f"autopilot: {self._authority_lost}" if self._authority_lost else "no robot-side e-stop"

    def preflight(self, rate_hz: float) -> None:
        """The keep-alive must only fill gaps: its period must be at least 1.5 loop periods."""
        if self.config.keepalive_period_s < 1.5 / rate_hz:
            raise ValueError(
                f"robot.settings.keepalive_rate_hz {self.config.keepalive_rate_hz:g} Hz would race the "
                f"loop's own set-points at rate_hz {rate_hz:g}: set it at most {rate_hz / 1.5:.3g} Hz "
                "(and above 2 Hz)"
            )

    def _check_link(self) -> None:
        if not self._connected:
            raise RobotError("MavlinkDrone is not connected: call connect() (or use it in a with block)")
        if not self.link_ok():
            why = self._io_error or f"no message from the autopilot for more than {self.config.link_timeout_s} s"
            raise LinkLostError(f"MAVLink link {self.config.connection} lost: {why}; check the telemetry link")

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._state:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._io_error is not None:
                    return False
                self._state.wait(min(remaining, 0.05))
        return True

    def _estimates_missing(self, now: float) -> list[str]:
        """The estimate messages the configured extras need that are absent or stale."""
        missing = []
        if self.config.extras and now - self._position_time > self.config.estimate_timeout_s:
            missing.append("LOCAL_POSITION_NED")
        if any(e.needs_heading for e in self.config.extras) and now - self._attitude_time > self.config.estimate_timeout_s:
            missing.append("ATTITUDE")
        return missing

    # ----------------------------------------------------------- lifecycle
    def connect(self) -> None:
        if self._connected:
            return
        reconnecting = self._ever_connected
        timeout = self.config.reconnect_timeout_s if reconnecting else self.config.connect_timeout_s
        try:
            self._conn = open_mavlink2(
                self.config.connection, self.config.baudrate, self.config.source_system, self.config.source_component
            )
        except Exception as exc:  # pymavlink raises OSError / SerialException / ValueError by transport
            self._conn = None
            raise RobotError(
                f"cannot open MAVLink connection {self.config.connection!r} ({exc}); check the connection "
                "string (udpin:HOST:PORT, udpout:HOST:PORT or a serial device) and the device"
            ) from exc
        self._io_error = None
        self._last_rx = self._position_time = self._attitude_time = -math.inf
        self._custom_mode = None
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._streaming = False
        self._running.set()
        try:
            self._send_heartbeat()  # lets a udpout peer learn where we are
            self._thread = threading.Thread(target=self._io_loop, name="mavlink-drone-io", daemon=True)
            self._thread.start()
            if not self._wait(lambda: self._custom_mode is not None, timeout):
                raise RobotError(
                    f"no autopilot HEARTBEAT on {self.config.connection} within {timeout} s"
                    f"{' (' + self._io_error + ')' if self._io_error else ''}; check the connection string "
                    "(PX4 SITL: udpin:127.0.0.1:14540), that the autopilot is powered and that its MAVLink "
                    "stream targets this port"
                )
            self._connected = True
            if reconnecting:
                self._resume_after_reconnect()
                self.camera.open()
            else:
                self._wait_for_estimates(timeout)
                self.camera.open()  # before OFFBOARD: a camera failure must not leave it in offboard
                if self.config.engage_offboard:
                    self.engage()
                else:
                    self._streaming = True  # the pilot may switch to OFFBOARD on this stream
            self._ever_connected = True
        except BaseException as exc:  # never leave the I/O thread, socket or camera behind
            if self._engaged:
                try:
                    self.stop()  # we put it in OFFBOARD: hand it to HOLD / LAND before leaving
                except RobotError:
                    pass
            self._connected = False
            self._close_link()
            self.camera.close()
            if isinstance(exc, CameraError):
                raise RobotError(f"MavlinkDrone camera: {exc}") from exc
            raise

    def _wait_for_estimates(self, timeout_s: float) -> None:
        if not self.config.extras:
            return
        if not self._wait(lambda: not self._estimates_missing(time.monotonic()), timeout_s):
            missing = self._estimates_missing(time.monotonic())
            raise RobotError(
                f"the policy needs extras {[e.value for e in self.config.extras]} but no {' / '.join(missing)} "
                f"came from the autopilot within {timeout_s} s: check the estimator has a velocity estimate "
                "and the link streams these messages (PX4: the onboard MAVLink mode sends both; or "
                "'mavlink stream -d <dev> -s LOCAL_POSITION_NED -r 30'); nothing was engaged"
            )

    def _resume_after_reconnect(self) -> None:
        """After a link loss: keep control only if the vehicle is still in OFFBOARD on our stream."""
        with self._state:
            if self._authority_lost is not None or self._stop_mode_requested:
                return
            if self._engaged and self.in_offboard:
                self._streaming = True  # zero velocity until the loop decides
            elif self._engaged:
                name = PX4_MODE_NAMES.get(self.px4_mode, str(self.px4_mode))
                self._lose_authority(f"after the link loss the vehicle is in {name}, not OFFBOARD (its failsafe took over)")

    def _await_ack(self, command: int, done: Callable[[], bool], timeout_s: float) -> int | None:
        """Wait until ``done()`` or a COMMAND_ACK of ``command`` that is not ACCEPTED / IN_PROGRESS;
        returns that rejecting result, or None when ``done()`` came true. RobotError on timeout."""
        def finished() -> bool:
            return done() or self._acks.get(command, 0) not in (0, 5)

        if not self._wait(finished, timeout_s):
            raise RobotError(f"no answer to MAVLink command {command} within {timeout_s} s ({self._io_error or 'silent'})")
        return None if done() else self._acks[command]

    def _set_mode(self, main_mode: int, sub_mode: int = 0) -> None:
        self._send_command(MAV_CMD_DO_SET_MODE, 1, main_mode, sub_mode)  # CUSTOM_MODE_ENABLED

    def engage(self) -> None:
        """Stream zero set-points, switch to OFFBOARD, arm if configured. Raises RobotError."""
        if self._authority_lost is not None:
            raise RobotError(f"will not re-engage: {self._authority_lost}; start a new run to fly again")
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._stop_mode_requested = False
        self._streaming = True
        start_count, start = self.setpoints_sent, time.monotonic()
        streamed = self._wait(
            lambda: self.setpoints_sent - start_count >= self.config.pre_stream_setpoints
            and time.monotonic() - start >= self.config.pre_stream_s,
            self.config.pre_stream_s + self.config.pre_stream_setpoints * self.config.keepalive_period_s + 2.0,
        )
        if not streamed:
            raise RobotError(f"could not stream set-points on {self.config.connection}: {self._io_error}")
        self._set_mode(PX4_MAIN_MODE_OFFBOARD)
        rejected = self._await_ack(MAV_CMD_DO_SET_MODE, lambda: self.in_offboard, self.config.connect_timeout_s)
        if rejected is not None:
            self._streaming = False
            raise RobotError(
                f"autopilot refused OFFBOARD ({MAV_RESULT_NAMES.get(rejected, rejected)}); check that no RC "
                "override or pre-flight check blocks it (PX4: a valid local position estimate, COM_RCL_EXCEPT)"
            )
        self._engaged = True
        if self.config.arm:
            self._send_command(MAV_CMD_COMPONENT_ARM_DISARM, 1)
            rejected = self._await_ack(MAV_CMD_COMPONENT_ARM_DISARM, lambda: self._armed, self.config.connect_timeout_s)
            if rejected is not None:
                raise RobotError(
                    f"autopilot refused to arm ({MAV_RESULT_NAMES.get(rejected, rejected)}); check pre-arm "
                    "checks in the ground station"
                )

    def _close_link(self) -> None:
        self._running.clear()
        self._streaming = False
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
        return Observation(image, frame.timestamp, self._extras())

    def _extras(self) -> dict[str, float]:
        if not self.config.extras:
            return {}
        now = time.monotonic()
        missing = self._estimates_missing(now)
        if missing:
            ages = {"LOCAL_POSITION_NED": now - self._position_time, "ATTITUDE": now - self._attitude_time}
            raise RobotError(
                "the autopilot's estimate is unknown: "
                + ", ".join(f"{name} {ages[name]:.2f} s old" for name in missing)
                + f" (limit estimate_timeout_s {self.config.estimate_timeout_s} s); the policy needs "
                f"{[e.value for e in self.config.extras]} and gets no made-up values"
            )
        x, y, z, v_north, v_east, v_down = self._position
        flu = ned_velocity_to_flu(v_north, v_east, v_down, self._yaw or 0.0)
        values = {
            DroneExtra.ALTITUDE: -float(z),
            DroneExtra.SPEED: float(math.sqrt(v_north**2 + v_east**2 + v_down**2)),
            DroneExtra.VX: flu[0],
            DroneExtra.VY: flu[1],
            DroneExtra.VZ: flu[2],
        }
        return {extra.value: values[extra] for extra in self.config.extras}

    def write(self, action: np.ndarray) -> np.ndarray:
        """Clamp the FLU action to the velocity limits and send it now (the keep-alive repeats it only
        to fill a gap, and only while younger than ``command_timeout_s``). Returns the set-point sent,
        in the policy's frame. After a hand-over to HOLD / LAND or a pilot / failsafe take-over
        nothing is sent and zero velocity is returned."""
        self._check_link()
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != (4,):
            raise ValueError(f"action must have shape (4,) (vx, vy, vz, yaw_rate), got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action must be finite, got {values.tolist()}; nothing was sent")
        if self._stop_mode_requested or not self._streaming:
            return np.zeros(4, np.float32)
        values = np.clip(values, self.action_spec.low, self.action_spec.high)
        self._setpoint = values
        self._setpoint_time = time.monotonic()
        self._send_setpoint(values)
        return values.astype(np.float32)

    def stop(self) -> None:
        """Zero velocity now, then (once) HOLD or LAND per ``stop_action`` — only while we fly the
        vehicle in OFFBOARD. After a pilot / failsafe take-over it sends nothing at all."""
        if not self._streaming:
            return
        self._setpoint = np.zeros(4)
        self._setpoint_time = time.monotonic()
        self._send_setpoint(self._setpoint)
        if self.config.stop_action == StopAction.NONE or self._stop_mode_requested:
            return
        if not (self._engaged and self.in_offboard):
            return  # not ours to hand over: the pilot has not given us OFFBOARD
        self._stop_mode_requested = True
        if self.config.stop_action == StopAction.HOLD:
            self._set_mode(PX4_MAIN_MODE_AUTO, PX4_AUTO_SUB_MODE_LOITER)
        else:
            self._set_mode(PX4_MAIN_MODE_AUTO, PX4_AUTO_SUB_MODE_LAND)
