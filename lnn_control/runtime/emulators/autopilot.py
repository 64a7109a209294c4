"""A PX4-like autopilot emulator on UDP, written from the MAVLink common set and PX4's offboard rules,
as strict as the real peer where the companion could get something wrong:

- **Ports like PX4 SITL's offboard link**: it listens on ``port`` (PX4: 14580) and sends to
  ``remote`` (PX4: 127.0.0.1:14540) from the start, switching to whoever last sent it a packet —
  so the companion must *listen* (``udpin:...:14540``); a ``udpout:...:14540`` companion never
  hears it. Without ``remote`` it answers whoever sent last (a MAVLink router).
- **MAVLink 2 only**: it speaks MAVLink 2 and drops MAVLink 1 frames (counted in
  ``mavlink1_frames``), like PX4 with ``MAV_PROTO_VER 2``.
- HEARTBEAT (quadrotor, PX4 custom modes, armed flag) at ``heartbeat_hz`` (PX4: 1 Hz, the
  default here); LOCAL_POSITION_NED and ATTITUDE at their rates while ``estimates`` is True
  (:meth:`set_estimates` plays an estimator that has no fix, or loses it in flight).
  MAV_CMD_SET_MESSAGE_INTERVAL changes those rates; MAV_CMD_REQUEST_MESSAGE sends one at once.
  OFFBOARD and HOLD need a valid estimate (else DENIED; LAND does not); OFFBOARD also needs a live
  set-point stream (≥ ``offboard_min_rate_hz`` in the last second, the newest younger than
  ``offboard_timeout_s``; else TEMPORARILY_REJECTED). Set-points and commands for another
  system / component are ignored (``ignored``); set-points in another frame or with another
  type_mask than body-frame velocity + yaw rate are counted (``unsupported_setpoints``) and not
  flown. COMMAND_ACK names the sender as its target, as PX4's does.
- **The pilot and the failsafe win, and it notices when the companion does not**:
  :meth:`pilot_switch_mode` flips the RC mode switch, :meth:`trigger_failsafe` plays a battery /
  geofence failsafe, and offboard loss (no set-point for ``offboard_timeout_s``) switches to
  ``failsafe_mode``. A mode command that arrives after a pilot or failsafe change is obeyed, as PX4
  would, but recorded in ``overrides``: a companion that does that fights the pilot.
- A kinematic vehicle: in OFFBOARD and armed it flies the body set-point (yaw integrated, NED).

Use it in a thread (``with AutopilotEmulator(remote=("127.0.0.1", 14540)) as ap: ...``) or as a
process (prints the companion's connection string)::

    python -m lnn_control.runtime.emulators.autopilot            # PX4 SITL ports: READY udpin:127.0.0.1:14540
"""

from __future__ import annotations

import argparse
import enum
import math
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pymavlink.dialects.v20 import common as mavlink2

MAV = mavlink2

MAVLINK1_MAGIC = 0xFE
STREAM_OF_MESSAGE = {0: "heartbeat", 30: "attitude", 32: "position"}  # message id -> stream


class Px4Mode(enum.Enum):
    """PX4 custom modes as (main_mode, sub_mode) in HEARTBEAT.custom_mode."""

    POSCTL = (3, 0)
    OFFBOARD = (6, 0)
    HOLD = (4, 3)  # AUTO.LOITER
    LAND = (4, 6)  # AUTO.LAND
    RTL = (4, 5)  # AUTO.RTL

    @property
    def custom_mode(self) -> int:
        main, sub = self.value
        return (main << 16) | (sub << 24)

    @classmethod
    def from_custom_mode(cls, custom_mode: int) -> Px4Mode | None:
        pair = ((int(custom_mode) >> 16) & 0xFF, (int(custom_mode) >> 24) & 0xFF)
        for mode in cls:
            if mode.value == pair:
                return mode
        return None


@dataclass(frozen=True)
class AutopilotConfig:
    """Rates in Hz, times in seconds; failsafe_mode: what offboard loss switches to; initial_yaw:
    NED heading at start (rad, + clockwise from north); estimates: send position / attitude."""

    heartbeat_hz: float = 1.0
    position_hz: float = 30.0
    attitude_hz: float = 50.0
    offboard_timeout_s: float = 0.5
    offboard_min_rate_hz: float = 2.0
    failsafe_mode: Px4Mode = Px4Mode.HOLD
    system_id: int = 1
    initial_yaw: float = 0.0
    estimates: bool = True
    answer_requests: bool = True  # False: firmware without MAV_CMD_REQUEST_MESSAGE (UNSUPPORTED)

    def __post_init__(self) -> None:
        rates = (self.heartbeat_hz, self.position_hz, self.attitude_hz, self.offboard_timeout_s, self.offboard_min_rate_hz)
        if min(rates) <= 0:
            raise ValueError(f"rates and timeouts must be > 0, got {self}")


@dataclass(frozen=True)
class SetpointRecord:
    """One SET_POSITION_TARGET_LOCAL_NED as received (MAVLink frame and signs)."""

    t: float
    type_mask: int
    frame: int
    vx: float
    vy: float
    vz: float
    yaw_rate: float
    mode: Px4Mode


@dataclass(frozen=True)
class ModeChange:
    t: float
    mode: Px4Mode
    cause: str  # "command", "failsafe", "pilot"


@dataclass(frozen=True)
class CommandRecord:
    t: float
    command: int
    params: tuple[float, ...]
    result: int


@dataclass
class AutopilotEmulator:
    """See the module docstring. ``address`` is (host, port) once constructed."""

    config: AutopilotConfig = field(default_factory=AutopilotConfig)
    host: str = "127.0.0.1"
    port: int = 0
    remote: tuple[str, int] | None = None
    setpoints: list[SetpointRecord] = field(default_factory=list)
    heartbeats_received: list[tuple[float, int]] = field(default_factory=list)  # (t, MAV_TYPE)
    mode_changes: list[ModeChange] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    overrides: list[CommandRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((self.host, self.port))
        self._socket.settimeout(0.005)
        self.address: tuple[str, int] = self._socket.getsockname()
        self._mav = MAV.MAVLink(None, srcSystem=self.config.system_id, srcComponent=1)
        self._peer: tuple[str, int] | None = self.remote
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = Px4Mode.POSCTL
        self.armed = False
        self.estimates = self.config.estimates
        self.muted = False
        self.ignored = 0  # set-points / commands addressed to another system or component
        self.mavlink1_frames = 0  # dropped: PX4 here speaks MAVLink 2 only
        self.packets_received = 0
        self.unsupported_setpoints = 0
        self._periods = {
            "heartbeat": 1.0 / self.config.heartbeat_hz,
            "position": 1.0 / self.config.position_hz,
            "attitude": 1.0 / self.config.attitude_hz,
        }
        self._start = time.monotonic()
        self.position = [0.0, 0.0, -2.0]  # NED, m (hovering 2 m up)
        self.velocity = [0.0, 0.0, 0.0]  # NED, m/s
        self.yaw = self.config.initial_yaw  # NED, rad

    # ------------------------------------------------------------ control
    def start(self) -> AutopilotEmulator:
        self._running.set()
        self._thread = threading.Thread(target=self._serve, name="autopilot-emulator", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the socket (the link goes silent)."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> AutopilotEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def peer(self) -> tuple[str, int] | None:
        """Where it sends: the last sender, else ``remote`` (None before either)."""
        return self._peer

    def pilot_switch_mode(self, mode: Px4Mode) -> None:
        """The pilot flips the RC mode switch (takes control away from offboard)."""
        with self._lock:
            self._set_mode(mode, "pilot", time.monotonic())

    def trigger_failsafe(self, mode: Px4Mode) -> None:
        """An autopilot failsafe (low battery, geofence, RC loss) switches to ``mode``."""
        with self._lock:
            self._set_mode(mode, "failsafe", time.monotonic())

    def set_muted(self, muted: bool) -> None:
        """A downlink that fails: while muted nothing is sent, but everything is still received."""
        with self._lock:
            self.muted = muted

    def set_estimates(self, valid: bool) -> None:
        """Whether the estimator has a fix: without one, no LOCAL_POSITION_NED / ATTITUDE is sent."""
        with self._lock:
            self.estimates = valid

    # ------------------------------------------------------------ internals
    def _set_mode(self, mode: Px4Mode, cause: str, now: float) -> None:
        if mode != self.mode:
            self.mode = mode
            self.mode_changes.append(ModeChange(now, mode, cause))

    def _send(self, message: Any) -> None:
        if self._peer is None or self.muted:
            return
        try:
            self._socket.sendto(message.pack(self._mav), self._peer)
        except OSError:  # nobody listens there (yet)
            pass

    def _stream_present(self, now: float) -> bool:
        recent = [s for s in self.setpoints[-200:] if now - s.t <= 1.0]
        return (
            len(recent) >= self.config.offboard_min_rate_hz
            and now - recent[-1].t < self.config.offboard_timeout_s
        )

    def _for_us(self, message: Any) -> bool:
        """Like PX4: commands and set-points addressed to another system or component are ignored."""
        if message.target_system == self.config.system_id and message.target_component in (0, 1):
            return True
        self.ignored += 1
        return False

    def _handle(self, message: Any, now: float) -> None:
        if message.get_msgbuf()[0] == MAVLINK1_MAGIC:
            self.mavlink1_frames += 1
            return
        kind = message.get_type()
        if kind == "HEARTBEAT":
            self.heartbeats_received.append((now, message.type))
        elif kind in ("SET_POSITION_TARGET_LOCAL_NED", "COMMAND_LONG") and not self._for_us(message):
            return
        elif kind == "SET_POSITION_TARGET_LOCAL_NED":
            if message.type_mask != 1479 or message.coordinate_frame != MAV.MAV_FRAME_BODY_NED:
                self.unsupported_setpoints += 1  # this emulator flies body-frame velocity + yaw rate only
                return
            self.setpoints.append(
                SetpointRecord(
                    now, message.type_mask, message.coordinate_frame,
                    message.vx, message.vy, message.vz, message.yaw_rate, self.mode,
                )
            )
        elif kind == "COMMAND_LONG":
            self._command(message, now)

    def _command(self, message: Any, now: float) -> None:
        params = (message.param1, message.param2, message.param3, message.param4)
        result = MAV.MAV_RESULT_UNSUPPORTED
        if message.command == MAV.MAV_CMD_DO_SET_MODE:
            custom = (int(params[1]) << 16) | (int(params[2]) << 24)
            mode = Px4Mode.from_custom_mode(custom)
            if mode is None or not int(params[0]) & MAV.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
                result = MAV.MAV_RESULT_DENIED
            elif mode in (Px4Mode.OFFBOARD, Px4Mode.HOLD) and not self.estimates:
                result = MAV.MAV_RESULT_DENIED  # no valid local position / velocity estimate
            elif mode == Px4Mode.OFFBOARD and not self._stream_present(now):
                result = MAV.MAV_RESULT_TEMPORARILY_REJECTED
            else:
                if self.mode_changes and self.mode_changes[-1].cause in ("pilot", "failsafe"):
                    self.overrides.append(CommandRecord(now, message.command, params, MAV.MAV_RESULT_ACCEPTED))
                self._set_mode(mode, "command", now)
                result = MAV.MAV_RESULT_ACCEPTED
        elif message.command == MAV.MAV_CMD_COMPONENT_ARM_DISARM:
            self.armed = params[0] >= 0.5
            result = MAV.MAV_RESULT_ACCEPTED
        elif message.command in (MAV.MAV_CMD_REQUEST_MESSAGE, MAV.MAV_CMD_SET_MESSAGE_INTERVAL):
            stream = STREAM_OF_MESSAGE.get(int(params[0]))
            result = MAV.MAV_RESULT_DENIED if stream is None else MAV.MAV_RESULT_ACCEPTED
            if message.command == MAV.MAV_CMD_REQUEST_MESSAGE and not self.config.answer_requests:
                result = MAV.MAV_RESULT_UNSUPPORTED
            elif stream is not None and message.command == MAV.MAV_CMD_REQUEST_MESSAGE:
                self._send_stream(stream, now)  # the message first, then its ACK (PX4's order)
            elif stream is not None and params[1] > 0:
                self._periods[stream] = params[1] / 1e6  # interval in microseconds
        self.commands.append(CommandRecord(now, message.command, params, result))
        self._send(self._mav.command_ack_encode(
            message.command, result, target_system=message.get_srcSystem(), target_component=message.get_srcComponent()
        ))

    def _tick(self, now: float, dt: float) -> None:
        if self.mode == Px4Mode.OFFBOARD:
            last = self.setpoints[-1].t if self.setpoints else -math.inf
            if now - last > self.config.offboard_timeout_s:
                self._set_mode(self.config.failsafe_mode, "failsafe", now)
        if self.mode == Px4Mode.OFFBOARD and self.armed and self.setpoints:
            s = self.setpoints[-1]  # body frame: forward, right, down; yaw rate clockwise +
            c, si = math.cos(self.yaw), math.sin(self.yaw)
            self.velocity = [c * s.vx - si * s.vy, si * s.vx + c * s.vy, s.vz]
            self.yaw = math.remainder(self.yaw + s.yaw_rate * dt, math.tau)
        else:
            self.velocity = [0.0, 0.0, 0.0]
        self.position = [p + v * dt for p, v in zip(self.position, self.velocity)]

    def _heartbeat(self) -> object:
        base = MAV.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (MAV.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
        return self._mav.heartbeat_encode(
            MAV.MAV_TYPE_QUADROTOR, MAV.MAV_AUTOPILOT_PX4, base, self.mode.custom_mode,
            MAV.MAV_STATE_ACTIVE if self.armed else MAV.MAV_STATE_STANDBY,
        )

    def _serve(self) -> None:
        start = last = self._start = time.monotonic()
        due = {"heartbeat": start, "position": start, "attitude": start}
        while self._running.is_set():
            try:
                data, sender = self._socket.recvfrom(4096)
            except TimeoutError:
                data, sender = b"", None
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                if sender is not None:
                    self._peer = sender
                    self.packets_received += 1
                    for message in self._mav.parse_buffer(data) or []:
                        self._handle(message, now)
                self._tick(now, now - last)
                last = now
                for stream, due_time in due.items():
                    if now < due_time:
                        continue
                    due[stream] = max(due_time + self._periods[stream], now)
                    self._send_stream(stream, now)

    def _send_stream(self, stream: str, now: float) -> None:
        """One message of ``stream`` (heartbeat, position, attitude) now; estimates only while valid."""
        boot_ms = int((now - self._start) * 1000)
        if stream == "heartbeat":
            self._send(self._heartbeat())
        elif self.estimates and stream == "position":
            x, y, z = self.position
            vx, vy, vz = self.velocity
            self._send(self._mav.local_position_ned_encode(boot_ms, x, y, z, vx, vy, vz))
        elif self.estimates:
            self._send(self._mav.attitude_encode(boot_ms, 0.0, 0.0, self.yaw, 0.0, 0.0, 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnn_control.runtime.emulators.autopilot", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=14580, help="UDP port it listens on (PX4 SITL: 14580; 0 = any)")
    parser.add_argument(
        "--remote-port", type=int, default=14540,
        help="port on --host it sends to until it hears from someone (PX4 SITL: 14540; 0 = answer senders only)",
    )
    parser.add_argument("--heartbeat-hz", type=float, default=1.0)
    parser.add_argument("--offboard-timeout-s", type=float, default=0.5)
    parser.add_argument("--no-estimates", action="store_true", help="an estimator without a fix: no position / attitude")
    args = parser.parse_args(argv)
    # a shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C / kill -INT must
    # still stop the emulator (KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = AutopilotConfig(
        heartbeat_hz=args.heartbeat_hz, offboard_timeout_s=args.offboard_timeout_s, estimates=not args.no_estimates
    )
    remote = (args.host, args.remote_port) if args.remote_port else None
    emulator = AutopilotEmulator(config, args.host, args.port, remote).start()
    connection = f"udpin:{args.host}:{args.remote_port}" if remote else f"udpout:{emulator.address[0]}:{emulator.address[1]}"
    print(f"READY {connection}", flush=True)
    seen = 0

    def report_mode_changes() -> None:
        nonlocal seen
        changes = emulator.mode_changes[seen:]
        for change in changes:
            print(f"mode {change.mode.name} ({change.cause}), armed={emulator.armed}", flush=True)
        seen += len(changes)

    try:
        while True:
            threading.Event().wait(0.5)
            report_mode_changes()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
        report_mode_changes()
        print(f"{len(emulator.overrides)} mode commands overrode the pilot or a failsafe", flush=True)
        print(f"{len(emulator.setpoints)} set-points received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
