"""``Px4Link``: the MAVLink 2 link to one PX4 autopilot, as a companion computer sees it.

What the autopilot tells us (its heartbeat: mode and armed state; command ACKs; the estimate from
LOCAL_POSITION_NED and ATTITUDE) and how we talk to it (commands, requested heartbeats, estimate
stream rates), with one I/O thread that reads the link, sends our heartbeat and calls the flying
side's hooks. It binds to the first PX4 autopilot it hears (``HEARTBEAT.autopilot`` PX4,
component 1, ``target_system`` if set; a reconnect insists on the same system id) and listens to
nothing else; any other autopilot is refused before a command is sent.
:class:`~.mavlink_drone.MavlinkDrone` is the flying side: set-points, authority, stops.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from lnn_control.runtime.core.robot import LinkLostError, RobotError
from lnn_control.runtime.hardware.link import link_alive, require_link
from lnn_control.runtime.hardware.mavlink_spec import (
    MAV_AUTOPILOT_INVALID,
    MAV_AUTOPILOT_NAMES,
    MAV_AUTOPILOT_PX4,
    MAV_CMD_DO_SET_MODE,
    MAV_CMD_REQUEST_MESSAGE,
    MAV_CMD_SET_MESSAGE_INTERVAL,
    MAV_COMP_ID_AUTOPILOT1,
    MAV_RESULT_ACCEPTED,
    MAV_RESULT_IN_PROGRESS,
    MAV_RESULT_NAMES,
    MAV_TYPE_GCS,
    MAV_TYPE_ONBOARD_CONTROLLER,
    MSG_ID_ATTITUDE,
    MSG_ID_HEARTBEAT,
    MSG_ID_LOCAL_POSITION_NED,
    PX4_MAIN_MODE_OFFBOARD,
    MavlinkDroneConfig,
    open_mavlink2,
)

PX4_HEARTBEAT_PERIOD_S = 1.0  # PX4 beats at 1 Hz on every link: a requested one may come no sooner


class Px4Link:
    """The link's state and I/O; see the module docstring. Hooks for the flying side:
    :meth:`_on_heartbeat` (under ``_state``, with each heartbeat of our autopilot), :meth:`_on_tick`
    (in the I/O thread after each receive) and :meth:`_io_wait_s` (how long a receive may block)."""

    def __init__(self, config: MavlinkDroneConfig) -> None:
        self.config = config
        self._conn: Any = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._send_lock = threading.RLock()  # the link's writes (and the set-point they carry)
        self._state = threading.Condition()  # everything the autopilot told us
        self._connected = False
        self._io_error: str | None = None
        self._bound: tuple[int, int] | None = None  # (system, component) of our PX4
        self._bound_system: int | None = None  # kept across reconnects
        self._refusal: str | None = None
        self._last_rx = -math.inf
        self._last_heartbeat_rx = -math.inf
        self._last_heartbeat_tx = -math.inf
        self._custom_mode: int | None = None
        self._armed = False
        self._acks: dict[int, int] = {}
        self._position: tuple[float, ...] | None = None  # x, y, z, vx, vy, vz (NED)
        self._position_time = -math.inf
        self._yaw: float | None = None  # NED yaw, rad
        self._attitude_time = -math.inf

    # ---------------------------------------------------------------- hooks
    def _on_heartbeat(self, was_armed: bool) -> None:
        """Called under ``_state`` with each heartbeat of our autopilot."""

    def _on_tick(self) -> None:
        """Called in the I/O thread after each receive (may send; a LinkLostError ends the thread)."""

    def _io_wait_s(self) -> float:
        """How long the I/O thread may block on a receive (s)."""
        return 0.005

    # ----------------------------------------------------------- open/close
    def _open_link(self, timeout_s: float, reconnecting: bool) -> None:
        """Open the connection, start the I/O thread and wait for our PX4's heartbeat; RobotError
        (with the link closed again) if none comes or another autopilot answers."""
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
        self._io_error = self._refusal = None
        self._bound = None
        self._last_rx = self._last_heartbeat_rx = self._position_time = self._attitude_time = -math.inf
        self._custom_mode = None
        self._acks = {}
        self._running.set()
        try:
            self._send_heartbeat()  # lets a udpout peer learn where we are
            self._thread = threading.Thread(target=self._io_loop, name="mavlink-px4-io", daemon=True)
            self._thread.start()
            self._wait(lambda: self._custom_mode is not None or self._refusal is not None, timeout_s)
            if self._refusal is not None:
                raise RobotError(self._refusal)
            if self._custom_mode is None:
                raise RobotError(
                    f"no PX4 autopilot HEARTBEAT on {self.config.connection} within {timeout_s} s"
                    f"{' (' + self._io_error + ')' if self._io_error else ''}; check the connection string "
                    "(PX4 SITL: udpin:127.0.0.1:14540), that the autopilot is powered and that its MAVLink "
                    "stream targets this port" + (f" (system {self._bound_system}, as before)" if reconnecting else "")
                )
        except BaseException:
            self._close_link()
            raise

    def _transmit(self, send: Callable[[Any], None]) -> None:
        with self._send_lock:
            if self._conn is None:
                raise LinkLostError(f"MAVLink link {self.config.connection} is closed")
            try:
                send(self._conn.mav)
            except OSError as exc:  # a serial link (UDP sends never raise in pymavlink)
                self._io_error = f"send failed: {exc}"
                raise LinkLostError(f"MAVLink link {self.config.connection} lost while sending ({exc})") from exc

    def _target(self) -> tuple[int, int]:
        return self._bound or (max(self.config.target_system, 1), MAV_COMP_ID_AUTOPILOT1)

    def _send_command(self, command: int, *params: float) -> None:
        p = list(params) + [0.0] * (7 - len(params))
        with self._state:
            self._acks.pop(command, None)
        system, component = self._target()
        self._transmit(lambda mav: mav.command_long_send(system, component, command, 0, *p))

    def _send_heartbeat(self) -> None:
        self._transmit(lambda mav: mav.heartbeat_send(MAV_TYPE_ONBOARD_CONTROLLER, MAV_AUTOPILOT_INVALID, 0, 0, 4))
        self._last_heartbeat_tx = time.monotonic()

    def _handle(self, message: Any) -> None:
        kind = message.get_type()
        source = (message.get_srcSystem(), message.get_srcComponent())
        now = time.monotonic()
        with self._state:
            if self._bound is None:
                if kind != "HEARTBEAT" or not self._bind(message, source):
                    return
            elif source != self._bound:
                return  # another component (camera, gimbal, GCS) or another vehicle
            self._last_rx = now
            if kind == "HEARTBEAT":
                self._custom_mode = int(message.custom_mode)
                was_armed, self._armed = self._armed, bool(message.base_mode & 128)  # SAFETY_ARMED
                self._last_heartbeat_rx = now
                self._on_heartbeat(was_armed)
            elif kind == "COMMAND_ACK":
                ours = (self.config.source_system, self.config.source_component)
                if getattr(message, "target_system", 0) in (0, ours[0]) and getattr(message, "target_component", 0) in (0, ours[1]):
                    self._acks[int(message.command)] = int(message.result)
            elif kind == "LOCAL_POSITION_NED":
                self._position = (message.x, message.y, message.z, message.vx, message.vy, message.vz)
                self._position_time = now
            elif kind == "ATTITUDE":
                self._yaw = float(message.yaw)
                self._attitude_time = now
            self._state.notify_all()

    def _bind(self, heartbeat: Any, source: tuple[int, int]) -> bool:
        """Bind to this heartbeat's sender if it is the PX4 we want (under ``_state``)."""
        if heartbeat.type in (MAV_TYPE_GCS, MAV_TYPE_ONBOARD_CONTROLLER) or heartbeat.autopilot == MAV_AUTOPILOT_INVALID:
            return False  # a ground station, companion, gimbal or camera
        if source[1] != MAV_COMP_ID_AUTOPILOT1:
            return False
        wanted = self._bound_system or self.config.target_system
        if wanted not in (0, source[0]):
            return False
        if heartbeat.autopilot != MAV_AUTOPILOT_PX4:
            name = MAV_AUTOPILOT_NAMES.get(heartbeat.autopilot, f"autopilot type {heartbeat.autopilot}")
            self._refusal = (
                f"the autopilot of system {source[0]} is {name}, not PX4: MavlinkDrone flies PX4's OFFBOARD "
                "mode only (other autopilots number their modes differently); nothing but heartbeats was sent"
            )
            self._state.notify_all()
            return False
        self._bound, self._bound_system = source, source[0]
        return True

    def _io_loop(self) -> None:
        try:
            self._serve_link()
        except Exception as exc:  # a fault in this thread must show as a lost link at once, not pass silently
            self._io_error = f"I/O thread failed: {type(exc).__name__}: {exc}"

    def _serve_link(self) -> None:
        conn = self._conn
        heartbeat_period = 1.0 / self.config.heartbeat_rate_hz
        while self._running.is_set():
            try:
                message = conn.recv_match(blocking=True, timeout=min(0.005, max(0.0005, self._io_wait_s())))
            except (OSError, ValueError) as exc:
                self._io_error = f"receive failed: {exc}"
                return
            if message is not None:
                self._handle(message)
            try:
                if time.monotonic() - self._last_heartbeat_tx >= heartbeat_period:
                    self._send_heartbeat()
                self._on_tick()
            except LinkLostError:  # _io_error says why; link_ok() turns False at once
                return

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
        return link_alive(self._connected, self._io_error, self._last_rx, self.config.link_timeout_s)

    def _check_link(self) -> None:
        require_link(
            self._connected, self._io_error, self._last_rx, self.config.link_timeout_s, robot="MavlinkDrone",
            link=f"MAVLink link {self.config.connection}", silence="no message from the autopilot", hint="check the telemetry link",
        )

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._state:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._io_error is not None:
                    return False
                self._state.wait(min(remaining, 0.05))
        return True

    def _command_result(self, command: int, timeout_s: float, done: Callable[[], bool] = lambda: False) -> int | None:
        """Wait for ``done()`` (-> ACCEPTED) or a final COMMAND_ACK of ``command``; None if neither came."""
        def finished() -> bool:
            return done() or self._acks.get(command, MAV_RESULT_IN_PROGRESS) != MAV_RESULT_IN_PROGRESS

        if not self._wait(finished, timeout_s):
            return None
        return MAV_RESULT_ACCEPTED if done() else self._acks[command]

    def _fresh_heartbeat(self) -> bool:
        """A heartbeat that left the autopilot after we asked: MAV_CMD_REQUEST_MESSAGE, repeated every
        ``command_ack_timeout_s`` (a lost request, firmware that ignores it), until one arrives or a
        whole PX4 heartbeat period plus that timeout passed. True once it came. (A heartbeat already in
        flight on a slow radio when we ask still counts: the residual race of any MAVLink companion.)"""
        deadline = time.monotonic() + PX4_HEARTBEAT_PERIOD_S + self.config.command_ack_timeout_s
        self._send_command(MAV_CMD_REQUEST_MESSAGE, MSG_ID_HEARTBEAT)
        asked = time.monotonic()
        while True:
            wait = min(self.config.command_ack_timeout_s, deadline - time.monotonic())
            if self._wait(lambda: self._last_heartbeat_rx > asked, max(0.0, wait)):
                return True
            if time.monotonic() >= deadline or not self.link_ok():
                return False
            self._send_command(MAV_CMD_REQUEST_MESSAGE, MSG_ID_HEARTBEAT)

    def _estimates_missing(self, now: float) -> list[str]:
        """The estimate messages the configured extras need that are absent or stale."""
        missing = []
        if self.config.extras and now - self._position_time > self.config.estimate_timeout_s:
            missing.append("LOCAL_POSITION_NED")
        if any(e.needs_heading for e in self.config.extras) and now - self._attitude_time > self.config.estimate_timeout_s:
            missing.append("ATTITUDE")
        return missing

    def _request_estimates(self) -> None:
        """Ask for the estimate streams the extras need at ``estimate_rate_hz``; a refusal is an error."""
        if not self.config.extras:
            return
        messages = [MSG_ID_LOCAL_POSITION_NED]
        if any(e.needs_heading for e in self.config.extras):
            messages.append(MSG_ID_ATTITUDE)
        for message in messages:
            self._send_command(MAV_CMD_SET_MESSAGE_INTERVAL, message, 1e6 / self.config.estimate_rate_hz)
            result = self._command_result(MAV_CMD_SET_MESSAGE_INTERVAL, self.config.command_ack_timeout_s)
            if result not in (None, MAV_RESULT_ACCEPTED):  # no answer: older firmware; the wait below decides
                raise RobotError(
                    f"the autopilot refused to stream message {message} at {self.config.estimate_rate_hz:g} Hz "
                    f"({MAV_RESULT_NAMES.get(result, result)}); nothing was engaged"
                )

    def _wait_for_estimates(self, timeout_s: float) -> None:
        if not self.config.extras:
            return
        if not self._wait(lambda: not self._estimates_missing(time.monotonic()), timeout_s):
            missing = self._estimates_missing(time.monotonic())
            raise RobotError(
                f"the policy needs extras {[e.value for e in self.config.extras]} but no {' / '.join(missing)} "
                f"came from the autopilot within {timeout_s} s: check the estimator has a velocity estimate "
                "and the link carries these messages; nothing was engaged"
            )

    def _set_mode(self, main_mode: int, sub_mode: int = 0) -> None:
        self._send_command(MAV_CMD_DO_SET_MODE, 1, main_mode, sub_mode)  # CUSTOM_MODE_ENABLED

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
