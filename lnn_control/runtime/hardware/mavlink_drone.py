"""MavlinkDrone: a camera plus a PX4 autopilot over MAVLink 2 (pymavlink), flown in OFFBOARD mode.

Frames, constants and settings: :mod:`.mavlink_spec` (the policy's FLU actions become
``MAV_FRAME_BODY_NED`` set-points ``(vx, -vy, -vz, -yaw_rate)`` there and nowhere else; the robot's
action spec says ``frame: flu`` and ``lnn-control run`` checks it against the bundle before a
single byte reaches the vehicle).

**Whose vehicle.** The link (:class:`~.mavlink_link.Px4Link`, this class's base) binds to the
first PX4 autopilot it hears and listens to nothing else; other autopilots are refused.

**Authority.** The pilot and the autopilot's failsafe always win:

- we request a mode only to enter OFFBOARD (``engage_offboard``) and, in :meth:`stop`, to hand a
  vehicle we put in OFFBOARD to HOLD / LAND — and only while the link is up and a heartbeat we
  asked for *after* deciding (MAV_CMD_REQUEST_MESSAGE; PX4's own heartbeats come at 1 Hz) still
  shows OFFBOARD. A refused HOLD falls back to LAND; if both are refused :meth:`stop` raises, and
  the vehicle hovers on the zero-velocity stream until the pilot takes it;
- when the vehicle leaves OFFBOARD (or disarms) without our asking — a pilot's switch, a failsafe —
  we stop streaming set-points at the next heartbeat and never request a mode again on this
  object; :meth:`estop_requested` turns True, and ``stop()`` sends nothing;
- after a hand-over we asked for, the zero stream goes on until the heartbeat shows the vehicle out
  of OFFBOARD (so a lost request still leaves it hovering, not in failsafe);
- a link that comes back never resumes motion: after a reconnect ``write()`` sends only zero
  velocity and ``estop_requested()`` stays True for the rest of this object's life.

**One writer, one rate.** ``write()`` sends the loop's set-point. A background keep-alive sends a
set-point only when none went out for a whole keep-alive period (the loop stalled, or before the
loop starts), and zero velocity once the last command is older than ``command_timeout_s``: it
never keeps flying a stale command. Both go through one lock, so a stop's zero is never followed
by an older command. :meth:`preflight` checks the periods against the loop rate.

**Unknown is unknown.** Extras (altitude, speed, vx, vy, vz) come from LOCAL_POSITION_NED (and
ATTITUDE for the heading), requested at ``estimate_rate_hz`` (MAV_CMD_SET_MESSAGE_INTERVAL: a
telemetry radio's default rates are too low). ``connect()`` waits for them before engaging and
fails naming the missing message; ``read()`` raises :class:`RobotError` when they are older than
``estimate_timeout_s`` (the loop then stops and ends the run: with extras, a silent link ends the
run this way, before ``link_timeout_s``). Nothing is ever reported as 0.0 for lack of data. PX4
streams LOCAL_POSITION_NED whether or not its estimate is valid; gating on ESTIMATOR_STATUS is
not done yet.

Offboard sequence: PX4 heartbeat → estimate streams requested and present → camera open →
keep-alive stream of zero set-points for ``pre_stream_s`` → MAV_CMD_DO_SET_MODE OFFBOARD (a
rejecting COMMAND_ACK fails at once) → a requested heartbeat confirms → arm only if ``arm: true``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from lnn_control.runtime.core.robot import Observation, Robot, RobotError
from lnn_control.runtime.hardware.cameras import Camera, CameraError
from lnn_control.runtime.hardware.link import fit_image, reconnect
from lnn_control.runtime.hardware.mavlink_link import PX4_HEARTBEAT_PERIOD_S, Px4Link
from lnn_control.runtime.hardware.mavlink_spec import (
    MAV_CMD_COMPONENT_ARM_DISARM,
    MAV_CMD_DO_SET_MODE,
    MAV_RESULT_ACCEPTED,
    MAV_RESULT_NAMES,
    PX4_AUTO_SUB_MODE_LAND,
    PX4_AUTO_SUB_MODE_LOITER,
    PX4_MAIN_MODE_AUTO,
    PX4_MAIN_MODE_OFFBOARD,
    TYPE_MASK_VELOCITY_YAW_RATE,
    DroneExtra,
    MavlinkDroneConfig,
    SetpointFrame,
    StopAction,
    flu_to_body_ned,
    ned_velocity_to_flu,
    px4_mode_name,
)
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

__all__ = [
    "TYPE_MASK_VELOCITY_YAW_RATE", "DroneExtra", "MavlinkDrone", "MavlinkDroneConfig", "SetpointFrame",
    "StopAction", "flu_to_body_ned", "ned_velocity_to_flu",
]


class MavlinkDrone(Px4Link, Robot):
    """Camera + PX4 over MAVLink 2; see the module docstring (the link itself: :class:`Px4Link`)."""

    def __init__(self, camera: Camera, config: MavlinkDroneConfig) -> None:
        super().__init__(config)
        self.camera = camera
        shape = getattr(camera, "output_shape", None) or config.image_shape
        extras = tuple(e.value for e in config.extras)
        units = tuple("m" if e == DroneExtra.ALTITUDE else "m/s" for e in config.extras)
        self.observation_spec = ObservationSpec((int(shape[0]), int(shape[1]), 3), extras, units)
        limits = tuple(float(v) for v in config.velocity_limits)
        self.action_spec = ActionSpec(
            ("vx", "vy", "vz", "yaw_rate"), tuple(-v for v in limits), limits, ("m/s", "m/s", "m/s", "rad/s"),
            ActionFrame.FLU,
        )
        self._ever_connected = False
        self._setpoint = np.zeros(4)  # FLU
        self._setpoint_time = -math.inf
        self._last_setpoint_tx = -math.inf
        self._streaming = False  # set-points may go out
        self._offboard_requested = False  # we asked for OFFBOARD
        self._engaged = False  # the vehicle is in OFFBOARD under our set-points
        self._stop_mode_requested = False  # we handed it to HOLD / LAND
        self._handover_attempted = False  # one hand-over per object: confirmed, refused or unconfirmed
        self._stop_modes: set[tuple[int, int]] = set()  # the (main, sub) modes our stop asked for
        self._authority_lost: str | None = None  # why the pilot / autopilot has it now
        self._motion_locked: str | None = None  # why write() sends only zero velocity
        self.setpoints_sent = 0
        self.keepalive_setpoints = 0
        self.watchdog_zeroes = 0

    # -------------------------------------------------------------- link io
    def _command_setpoint(self, action_flu: np.ndarray) -> bool:
        """Make ``action_flu`` the set-point and send it now, if we still stream (under the send lock,
        which a take-over also takes: no set-point follows it). Returns whether it went out."""
        with self._send_lock:
            if not self._streaming:
                return False
            self._setpoint = np.asarray(action_flu, np.float64)
            self._setpoint_time = time.monotonic()
            self._send_setpoint(self._setpoint)
            return True

    def _send_setpoint(self, action_flu: np.ndarray) -> None:
        vx, vy, vz, yaw_rate = flu_to_body_ned(action_flu)
        boot_ms = int(time.monotonic() * 1000) & 0xFFFFFFFF
        system, component = self._target()
        self._transmit(
            lambda mav: mav.set_position_target_local_ned_send(
                boot_ms, system, component, self.config.frame.mav_frame,
                TYPE_MASK_VELOCITY_YAW_RATE, 0, 0, 0, vx, vy, vz, 0, 0, 0, 0, yaw_rate,
            )
        )
        self._last_setpoint_tx = time.monotonic()
        self.setpoints_sent += 1

    def _on_heartbeat(self, was_armed: bool) -> None:
        self._track_authority(was_armed)

    def _on_tick(self) -> None:
        self._keep_alive(self.config.keepalive_period_s)

    def _io_wait_s(self) -> float:
        return self._last_setpoint_tx + self.config.keepalive_period_s - time.monotonic()

    def _track_authority(self, was_armed: bool) -> None:
        """Called with each heartbeat of our autopilot (under ``_state``)."""
        if self._authority_lost is not None:
            return
        offboard = self.in_offboard
        if self._stop_mode_requested:
            if offboard:
                return
            if self.px4_mode in self._stop_modes:
                self._streaming = False  # the vehicle took our HOLD / LAND: nothing more to send
            else:
                self._lose_authority(
                    f"the vehicle went to {px4_mode_name(self.px4_mode)}, not the HOLD / LAND our stop asked for "
                    "(pilot or autopilot failsafe)"
                )
            return
        if not self._engaged:
            if offboard and self._streaming and (self._offboard_requested or not self.config.engage_offboard):
                self._engaged = True  # our request, or the pilot switched to OFFBOARD on our stream
            return
        if not offboard:
            self._lose_authority(
                f"the vehicle left OFFBOARD for {px4_mode_name(self.px4_mode)} without our request "
                "(pilot or autopilot failsafe)"
            )
        elif was_armed and not self._armed:
            self._lose_authority("the vehicle disarmed while we flew it (kill switch, land detector or pilot)")

    def _lose_authority(self, why: str) -> None:
        self._authority_lost = why
        with self._send_lock:  # safe: no path holds the send lock and then takes _state
            self._streaming = False
        self._engaged = False

    def _keep_alive(self, period: float) -> None:
        """Fill a gap in the set-point stream: the current command while fresh, else zero velocity."""
        with self._send_lock:
            now = time.monotonic()
            if not self._streaming or now - self._last_setpoint_tx < period:
                return
            if now - self._setpoint_time > self.config.command_timeout_s and np.any(self._setpoint):
                self._setpoint = np.zeros(4)  # stale command: hover, never repeat it
                self.watchdog_zeroes += 1
            self._send_setpoint(self._setpoint)
            self.keepalive_setpoints += 1

    # -------------------------------------------------------------- status
    @property
    def streaming(self) -> bool:
        """Whether set-points may go out now (False before engaging, after a hand-over, and for good
        once the pilot or a failsafe took the vehicle)."""
        return self._streaming

    def estop_requested(self) -> bool:
        """The pilot or a failsafe took the vehicle, or the link came back after a loss."""
        return self._authority_lost is not None or self._motion_locked is not None

    def estop_detail(self) -> str:
        why = self._authority_lost or self._motion_locked
        return f"autopilot: {why}" if why else "no robot-side e-stop"

    def preflight(self, rate_hz: float) -> None:
        """The keep-alive must only fill gaps, and a command must outlive a loop period."""
        self.config.check_loop_rate(rate_hz)

    # ----------------------------------------------------------- lifecycle
    def connect(self) -> None:
        if self._connected:
            return
        reconnecting = self._ever_connected
        timeout = self.config.reconnect_timeout_s if reconnecting else self.config.connect_timeout_s
        with self._send_lock:
            self._setpoint = np.zeros(4)
            self._setpoint_time = time.monotonic()
            self._streaming = False
        self._open_link(timeout, reconnecting)
        try:
            self._connected = True
            if reconnecting:
                self._resume_after_reconnect()
                self.camera.open()
            else:
                self._request_estimates()
                self._wait_for_estimates(timeout)
                self.camera.open()  # before OFFBOARD: a camera failure must not leave it in offboard
                if self.config.engage_offboard:
                    self.engage()
                else:
                    self._streaming = True  # the pilot may switch to OFFBOARD on this stream
            self._ever_connected = True
        except BaseException as exc:  # never leave the I/O thread, socket or camera behind
            if self._streaming and self._offboard_requested:
                try:
                    self.stop()  # we asked for OFFBOARD: hand it to HOLD / LAND before leaving
                except RobotError:
                    pass
            self._connected = False
            self._close_link()
            self.camera.close()
            if isinstance(exc, CameraError):
                raise RobotError(f"MavlinkDrone camera: {exc}") from exc
            raise

    def _resume_after_reconnect(self) -> None:
        """After a link loss: motion stays locked; keep streaming zero only if the vehicle is still in
        the OFFBOARD we asked for (so our stop can hand it over)."""
        with self._state:
            if self._authority_lost is not None:
                return
            self._motion_locked = "the link came back after a loss: this run only stops; start a new run to fly again"
            if not (self._engaged or self._offboard_requested):
                return
            if self.in_offboard:
                self._streaming = True  # zero velocity, the loop's stop decides the rest
            elif not self._stop_mode_requested:
                self._lose_authority(
                    f"after the link loss the vehicle is in {px4_mode_name(self.px4_mode)}, not OFFBOARD "
                    "(its failsafe took over)"
                )

    def engage(self) -> None:
        """Stream zero set-points, switch to OFFBOARD, arm if configured. Raises RobotError."""
        if self._authority_lost is not None or self._motion_locked is not None:
            raise RobotError(f"will not re-engage: {self._authority_lost or self._motion_locked}; start a new run to fly again")
        self._command_zero_quietly()
        self._stop_mode_requested = False
        with self._send_lock:
            self._streaming = True
        start_count, start = self.setpoints_sent, time.monotonic()
        streamed = self._wait(
            lambda: self.setpoints_sent - start_count >= self.config.pre_stream_setpoints
            and time.monotonic() - start >= self.config.pre_stream_s,
            self.config.pre_stream_s + self.config.pre_stream_setpoints * self.config.keepalive_period_s + 2.0,
        )
        if not streamed:
            raise RobotError(f"could not stream set-points on {self.config.connection}: {self._io_error}")
        self._offboard_requested = True
        self._set_mode(PX4_MAIN_MODE_OFFBOARD)
        result = self._command_result(MAV_CMD_DO_SET_MODE, self.config.connect_timeout_s, lambda: self.in_offboard)
        if result not in (None, MAV_RESULT_ACCEPTED):
            self._streaming = self._offboard_requested = False
            raise RobotError(
                f"autopilot refused OFFBOARD ({MAV_RESULT_NAMES.get(result, result)}); check that no RC "
                "override or pre-flight check blocks it (PX4: a valid local position estimate, COM_RCL_EXCEPT)"
            )
        self._fresh_heartbeat()  # PX4 beats at 1 Hz: ask for the one that shows the switch
        if not self._wait(lambda: self._engaged, self.config.connect_timeout_s):
            raise RobotError(f"the autopilot did not enter OFFBOARD (it shows {px4_mode_name(self.px4_mode)})")
        if self.config.arm:
            self._send_command(MAV_CMD_COMPONENT_ARM_DISARM, 1)
            result = self._command_result(MAV_CMD_COMPONENT_ARM_DISARM, self.config.connect_timeout_s, lambda: self._armed)
            if result == MAV_RESULT_ACCEPTED and not self._armed:
                self._fresh_heartbeat()  # the ACK came first: wait for the heartbeat that shows it
                if not self._wait(lambda: self._armed, self.config.connect_timeout_s):
                    result = None
            if result != MAV_RESULT_ACCEPTED:
                raise RobotError(
                    f"autopilot refused to arm ({'no answer' if result is None else MAV_RESULT_NAMES.get(result, result)}); check pre-arm "
                    "checks in the ground station"
                )

    def _command_zero_quietly(self) -> None:
        with self._send_lock:
            self._setpoint = np.zeros(4)
            self._setpoint_time = time.monotonic()

    def _close_link(self) -> None:
        self._streaming = False
        super()._close_link()

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
        position = self._position
        if position is None:  # unreachable: _estimates_missing names LOCAL_POSITION_NED until one came
            raise RobotError("no LOCAL_POSITION_NED from the autopilot yet")
        x, y, z, v_north, v_east, v_down = position
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
        in the policy's frame. After a hand-over, a pilot / failsafe take-over or a reconnect nothing
        is sent and zero velocity is returned."""
        self._check_link()
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != (4,):
            raise ValueError(f"action must have shape (4,) (vx, vy, vz, yaw_rate), got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action must be finite, got {values.tolist()}; nothing was sent")
        if self._stop_mode_requested or self._motion_locked is not None:
            return np.zeros(4, np.float32)
        values = np.clip(values, self.action_spec.low, self.action_spec.high)
        if not self._command_setpoint(values):
            return np.zeros(4, np.float32)
        return values.astype(np.float32)

    def stop(self) -> None:
        """Zero velocity now; then, once per object, hand a vehicle we put in OFFBOARD to HOLD (LAND if
        PX4 refuses HOLD) or LAND per ``stop_action``, only over a live link and after a heartbeat we
        asked for still shows OFFBOARD. A confirmed hand-over locks motion (``estop_requested()``: this
        run does not fly again). Sends nothing after a pilot / failsafe take-over. Raises RobotError
        when the hand-over was refused or could not be confirmed (the vehicle then hovers on the zero
        stream until the pilot or PX4's offboard-loss failsafe takes it); later calls send zero only.
        Blocks for up to ``command_ack_timeout_s`` plus one PX4 heartbeat period per mode asked for."""
        if not self._command_setpoint(np.zeros(4)) or self.config.stop_action == StopAction.NONE:
            return
        with self._state:
            eligible = (
                (self._engaged or self._offboard_requested)
                and self._authority_lost is None
                and not self._stop_mode_requested
                and not self._handover_attempted
            )
        if not eligible or not self.link_ok():
            return  # not ours to hand over, already done, or nothing can reach the vehicle now
        self._handover_attempted = True
        self._hand_over()

    def _hand_over(self) -> None:
        if not self._fresh_heartbeat():
            raise RobotError(
                f"stop not handed over: no heartbeat within {PX4_HEARTBEAT_PERIOD_S + self.config.command_ack_timeout_s:g} s "
                "to confirm the vehicle is still in our OFFBOARD, so no mode was requested; it hovers on "
                "zero velocity (PX4's offboard-loss failsafe takes it when this run ends)"
            )
        modes = [("HOLD", PX4_AUTO_SUB_MODE_LOITER)] if self.config.stop_action == StopAction.HOLD else []
        modes.append(("LAND", PX4_AUTO_SUB_MODE_LAND))
        refusals = []
        for name, sub_mode in modes:
            with self._state:
                if self._authority_lost is not None or not self.in_offboard:
                    return  # the pilot or a failsafe has it: not ours to hand over
                self._stop_modes.add((PX4_MAIN_MODE_AUTO, sub_mode))
                self._stop_mode_requested = True  # the switch we ask for is not a take-over
            self._set_mode(PX4_MAIN_MODE_AUTO, sub_mode)
            result = self._command_result(MAV_CMD_DO_SET_MODE, self.config.command_ack_timeout_s)
            if result is None and self._fresh_heartbeat() and self.px4_mode == (PX4_MAIN_MODE_AUTO, sub_mode):
                result = MAV_RESULT_ACCEPTED  # the ACK was lost, the switch was not
            if result == MAV_RESULT_ACCEPTED:
                self._motion_locked = f"the stop handed the vehicle to {name}: this run does not fly again"
                return
            refusals.append(f"{name} ({'no answer' if result is None else MAV_RESULT_NAMES.get(result, result)})")
        with self._state:
            self._stop_mode_requested = False
        raise RobotError(
            f"the autopilot refused {' and '.join(refusals)}: the vehicle hovers in OFFBOARD on zero velocity "
            "(PX4's offboard-loss failsafe takes it when this run ends); take over with the RC"
        )
