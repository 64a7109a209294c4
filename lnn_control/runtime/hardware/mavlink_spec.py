"""What the MAVLink drone speaks: PX4 constants, the frame conversions (the ONE place where the
policy's FLU axes meet MAVLink's NED ones), the drone's settings and a MAVLink 2 connection.

Frames: the policy acts in :attr:`~lnn_control.spec.ActionFrame.FLU` ``(vx, vy, vz, yaw_rate)`` —
m/s and rad/s in the level heading frame, x forward, y LEFT, z UP, yaw counter-clockwise-positive.
MAVLink's ``MAV_FRAME_BODY_NED`` set-points are x forward, y RIGHT, z DOWN, yaw clockwise-positive
(PX4 rotates them by the heading only). :func:`flu_to_body_ned` converts on the way out,
:func:`ned_velocity_to_flu` on the way in (the ``vx, vy, vz`` observation extras).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lnn_control.runtime.hardware.link import check_finite_positive, check_image_shape

TYPE_MASK_VELOCITY_YAW_RATE = 1 | 2 | 4 | 64 | 128 | 256 | 1024  # = 1479: only vx, vy, vz, yaw_rate used
MAV_FRAME_BODY_NED = 8
PX4_MAIN_MODE_AUTO, PX4_MAIN_MODE_OFFBOARD = 4, 6
PX4_AUTO_SUB_MODE_LOITER, PX4_AUTO_SUB_MODE_LAND = 3, 6
MAV_TYPE_GCS, MAV_TYPE_ONBOARD_CONTROLLER = 6, 18
MAV_AUTOPILOT_PX4, MAV_AUTOPILOT_INVALID = 12, 8
MAV_COMP_ID_AUTOPILOT1 = 1
MAV_CMD_DO_SET_MODE, MAV_CMD_COMPONENT_ARM_DISARM = 176, 400
MAV_CMD_SET_MESSAGE_INTERVAL, MAV_CMD_REQUEST_MESSAGE = 511, 512
MSG_ID_HEARTBEAT, MSG_ID_ATTITUDE, MSG_ID_LOCAL_POSITION_NED = 0, 30, 32
MAV_RESULT_ACCEPTED, MAV_RESULT_IN_PROGRESS = 0, 5
MAV_RESULT_NAMES = {0: "ACCEPTED", 1: "TEMPORARILY_REJECTED", 2: "DENIED", 3: "UNSUPPORTED", 4: "FAILED",
                    5: "IN_PROGRESS", 6: "CANCELLED"}
MAV_AUTOPILOT_NAMES = {0: "generic", 3: "ArduPilot", 12: "PX4"}
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


def px4_mode_name(mode: tuple[int, int] | None) -> str:
    return PX4_MODE_NAMES.get(mode, str(mode)) if mode is not None else "unknown"


class SetpointFrame(str, enum.Enum):
    """The MAVLink frame of the outgoing velocity set-points (heading-relative)."""

    BODY_NED = "body_ned"  # MAV_FRAME_BODY_NED = 8: PX4 rotates it by the heading only

    @property
    def mav_frame(self) -> int:
        return MAV_FRAME_BODY_NED


class StopAction(str, enum.Enum):
    """What ``stop()`` asks for after the zero-velocity set-point (only while we hold OFFBOARD)."""

    HOLD = "hold"  # PX4 AUTO.LOITER (LAND if PX4 refuses it)
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
    :class:`DroneExtra`; their messages are requested at ``estimate_rate_hz``. keepalive_rate_hz:
    the keep-alive's rate, used only to fill gaps (> 2 Hz, PX4's OFFBOARD minimum). link_timeout_s:
    no message from the autopilot for this long = link lost. estimate_timeout_s: extras older than
    this are unknown (``read()`` raises). command_ack_timeout_s: how long a mode request waits for
    its COMMAND_ACK and a requested heartbeat. reconnect_timeout_s: how long a re-connect waits for
    the autopilot (bounds link-loss handling). target_system: the PX4's MAVLink system id; 0 = the
    first PX4 heard (a reconnect insists on the same one). Times in s."""

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
    estimate_rate_hz: float = 30.0
    pre_stream_s: float = 1.0
    pre_stream_setpoints: int = 8
    command_timeout_s: float = 0.3
    link_timeout_s: float = 1.5
    estimate_timeout_s: float = 0.5
    command_ack_timeout_s: float = 0.5
    connect_timeout_s: float = 5.0
    reconnect_timeout_s: float = 1.5
    source_system: int = 1
    source_component: int = 191  # MAV_COMP_ID_ONBOARD_COMPUTER
    target_system: int = 0

    def __post_init__(self) -> None:
        if self.frame in ("local_ned", "body_offset_ned"):
            raise ValueError(
                f"frame {self.frame} is not supported: the policy's velocities are relative to the heading "
                "(forward = where the camera looks) and the modes are PX4's; use body_ned"
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
        check_finite_positive(self, ("heartbeat_rate_hz", "estimate_rate_hz"), "Hz")
        check_finite_positive(
            self,
            ("command_timeout_s", "link_timeout_s", "estimate_timeout_s", "command_ack_timeout_s",
             "connect_timeout_s", "reconnect_timeout_s"),
            "seconds",
        )
        if self.estimate_rate_hz * self.estimate_timeout_s < 2:
            raise ValueError(
                f"estimate_rate_hz {self.estimate_rate_hz} Hz gives fewer than 2 estimates per estimate_timeout_s "
                f"{self.estimate_timeout_s} s: raise the rate (a telemetry radio may not carry it) or the timeout"
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

    def check_loop_rate(self, rate_hz: float) -> None:
        """ValueError unless the keep-alive only fills gaps and a command outlives one loop period."""
        period = 1.0 / rate_hz
        if self.keepalive_period_s < 1.5 * period:
            raise ValueError(
                f"robot.settings.keepalive_rate_hz {self.keepalive_rate_hz:g} Hz would race the loop's own "
                f"set-points at rate_hz {rate_hz:g}: set it at most {rate_hz / 1.5:.3g} Hz (and above 2 Hz)"
            )
        if self.command_timeout_s < 1.5 * period:
            raise ValueError(
                f"robot.settings.command_timeout_s {self.command_timeout_s:g} s is shorter than 1.5 loop periods at "
                f"rate_hz {rate_hz:g}: the keep-alive would zero every command between two steps"
            )


def open_mavlink2(connection: str, baudrate: int, source_system: int, source_component: int) -> Any:
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
