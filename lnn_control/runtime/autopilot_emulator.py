"""A PX4-like autopilot emulator on UDP, built on pymavlink's MAVLink codec.

What it does, like PX4's offboard handling (simplified, no flight physics beyond integrating the
velocity set-point):

- sends HEARTBEAT (quadrotor, PX4 custom modes, armed flag) at ``heartbeat_hz`` and
  LOCAL_POSITION_NED at ``position_hz`` to whoever last sent it a packet;
- records every SET_POSITION_TARGET_LOCAL_NED (time, type_mask, frame, velocities, yaw rate) and
  every HEARTBEAT it receives; set-points and commands addressed to another system or component
  are ignored (counted in ``ignored``), as PX4 does;
- MAV_CMD_DO_SET_MODE: OFFBOARD is accepted only while a set-point stream is present (at least
  ``offboard_min_rate_hz`` set-points in the last second and the newest younger than
  ``offboard_timeout_s``), else TEMPORARILY_REJECTED; HOLD (AUTO.LOITER), LAND, POSCTL accepted;
- MAV_CMD_COMPONENT_ARM_DISARM arms / disarms;
- offboard loss failsafe: in OFFBOARD with no set-point for ``offboard_timeout_s`` it switches to
  ``failsafe_mode`` (PX4's COM_OF_LOSS_T / COM_OBL_RC_ACT);
- :meth:`AutopilotEmulator.pilot_switch_mode` plays a pilot flipping the RC mode switch.

Use it in a thread (``with AutopilotEmulator() as ap: ap.address``) or as a process::

    python -m lnn_control.runtime.autopilot_emulator --port 14540
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

from pymavlink import mavutil

MAV = mavutil.mavlink


class Px4Mode(enum.Enum):
    """PX4 custom modes as (main_mode, sub_mode) in HEARTBEAT.custom_mode."""

    POSCTL = (3, 0)
    OFFBOARD = (6, 0)
    HOLD = (4, 3)  # AUTO.LOITER
    LAND = (4, 6)  # AUTO.LAND

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
    """Rates in Hz, times in seconds; failsafe_mode: what offboard loss switches to."""

    heartbeat_hz: float = 1.0
    position_hz: float = 10.0
    offboard_timeout_s: float = 0.5
    offboard_min_rate_hz: float = 2.0
    failsafe_mode: Px4Mode = Px4Mode.HOLD
    system_id: int = 1

    def __post_init__(self) -> None:
        if min(self.heartbeat_hz, self.position_hz, self.offboard_timeout_s, self.offboard_min_rate_hz) <= 0:
            raise ValueError(f"rates and timeouts must be > 0, got {self}")


@dataclass(frozen=True)
class SetpointRecord:
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
    setpoints: list[SetpointRecord] = field(default_factory=list)
    heartbeats_received: list[tuple[float, int]] = field(default_factory=list)  # (t, MAV_TYPE)
    mode_changes: list[ModeChange] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((self.host, self.port))
        self._socket.settimeout(0.005)
        self.address: tuple[str, int] = self._socket.getsockname()
        self._mav = MAV.MAVLink(None, srcSystem=self.config.system_id, srcComponent=1)
        self._peer: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = Px4Mode.POSCTL
        self.armed = False
        self.ignored = 0  # set-points / commands addressed to another system or component
        self.position = [0.0, 0.0, -2.0]  # NED, m (hovering 2 m up)
        self.velocity = [0.0, 0.0, 0.0]
        self.yaw = 0.0

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
        """The address it sends to: whoever sent it the last packet (None before any)."""
        return self._peer

    def pilot_switch_mode(self, mode: Px4Mode) -> None:
        """The pilot flips the RC mode switch (takes control away from offboard)."""
        with self._lock:
            self._set_mode(mode, "pilot", time.monotonic())

    # ------------------------------------------------------------ internals
    def _set_mode(self, mode: Px4Mode, cause: str, now: float) -> None:
        if mode != self.mode:
            self.mode = mode
            self.mode_changes.append(ModeChange(now, mode, cause))

    def _send(self, message: object) -> None:
        if self._peer is None:
            return
        try:
            self._socket.sendto(message.pack(self._mav), self._peer)
        except OSError:  # peer port closed: it will come back with its next packet
            pass

    def _stream_present(self, now: float) -> bool:
        recent = [s for s in self.setpoints[-200:] if now - s.t <= 1.0]
        return (
            len(recent) >= self.config.offboard_min_rate_hz
            and now - recent[-1].t < self.config.offboard_timeout_s
        )

    def _for_us(self, message: object) -> bool:
        """Like PX4: commands and set-points addressed to another system or component are ignored."""
        if message.target_system == self.config.system_id and message.target_component in (0, 1):
            return True
        self.ignored += 1
        return False

    def _handle(self, message: object, now: float) -> None:
        kind = message.get_type()
        if kind == "HEARTBEAT":
            self.heartbeats_received.append((now, message.type))
        elif kind in ("SET_POSITION_TARGET_LOCAL_NED", "COMMAND_LONG") and not self._for_us(message):
            return
        elif kind == "SET_POSITION_TARGET_LOCAL_NED":
            self.setpoints.append(
                SetpointRecord(
                    now, message.type_mask, message.coordinate_frame,
                    message.vx, message.vy, message.vz, message.yaw_rate, self.mode,
                )
            )
        elif kind == "COMMAND_LONG":
            self._command(message, now)

    def _command(self, message: object, now: float) -> None:
        params = (message.param1, message.param2, message.param3, message.param4)
        result = MAV.MAV_RESULT_UNSUPPORTED
        if message.command == MAV.MAV_CMD_DO_SET_MODE:
            custom = (int(params[1]) << 16) | (int(params[2]) << 24)
            mode = Px4Mode.from_custom_mode(custom)
            if mode is None or not int(params[0]) & MAV.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
                result = MAV.MAV_RESULT_DENIED
            elif mode == Px4Mode.OFFBOARD and not self._stream_present(now):
                result = MAV.MAV_RESULT_TEMPORARILY_REJECTED
            else:
                self._set_mode(mode, "command", now)
                result = MAV.MAV_RESULT_ACCEPTED
        elif message.command == MAV.MAV_CMD_COMPONENT_ARM_DISARM:
            self.armed = params[0] >= 0.5
            result = MAV.MAV_RESULT_ACCEPTED
        self.commands.append(CommandRecord(now, message.command, params, result))
        self._send(self._mav.command_ack_encode(message.command, result))

    def _tick(self, now: float, dt: float) -> None:
        if self.mode == Px4Mode.OFFBOARD:
            last = self.setpoints[-1].t if self.setpoints else -math.inf
            if now - last > self.config.offboard_timeout_s:
                self._set_mode(self.config.failsafe_mode, "failsafe", now)
        if self.mode == Px4Mode.OFFBOARD and self.armed and self.setpoints:
            s = self.setpoints[-1]
            c, si = math.cos(self.yaw), math.sin(self.yaw)
            body = s.frame in (MAV.MAV_FRAME_BODY_NED, MAV.MAV_FRAME_BODY_OFFSET_NED)
            self.velocity = [c * s.vx - si * s.vy, si * s.vx + c * s.vy, s.vz] if body else [s.vx, s.vy, s.vz]
            self.yaw += s.yaw_rate * dt
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
        start = last = time.monotonic()
        next_heartbeat = next_position = start
        while self._running.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                data, peer = b"", None
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                if peer is not None:
                    self._peer = peer
                    for message in self._mav.parse_buffer(data) or []:
                        self._handle(message, now)
                self._tick(now, now - last)
                last = now
                if now >= next_heartbeat:
                    self._send(self._heartbeat())
                    next_heartbeat = max(next_heartbeat + 1.0 / self.config.heartbeat_hz, now)
                if now >= next_position:
                    x, y, z = self.position
                    vx, vy, vz = self.velocity
                    boot_ms = int((now - start) * 1000)
                    self._send(self._mav.local_position_ned_encode(boot_ms, x, y, z, vx, vy, vz))
                    next_position = max(next_position + 1.0 / self.config.position_hz, now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnn_control.runtime.autopilot_emulator", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=14540, help="UDP port to listen on (0 = any free port)")
    parser.add_argument("--heartbeat-hz", type=float, default=1.0)
    parser.add_argument("--offboard-timeout-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    # a shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C / kill -INT must
    # still stop the emulator (KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = AutopilotConfig(heartbeat_hz=args.heartbeat_hz, offboard_timeout_s=args.offboard_timeout_s)
    emulator = AutopilotEmulator(config, args.host, args.port).start()
    print(f"READY udpout:{emulator.address[0]}:{emulator.address[1]}", flush=True)
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
        print(f"{len(emulator.setpoints)} set-points received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
