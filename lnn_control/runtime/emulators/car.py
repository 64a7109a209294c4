"""A microcontroller emulator for the RC car: speaks the LNC line protocol on a real serial port.

Run it as a process::

    python -m lnn_control.runtime.emulators.car --pty                 # creates a pseudo-terminal pair,
                                                                      # prints "READY /dev/pts/N"
    python -m lnn_control.runtime.emulators.car --port /dev/pts/7     # an existing port (pyserial),
                                                                      # e.g. one end of a socat pty pair

and point ``SerialCar(port=...)`` at the printed / other end. It behaves like the reference sketch
``firmware/rc_car.ino``: validates every line (CRC, version, sequence), acks accepted commands,
reports telemetry at ``--telemetry-hz``, applies its OWN failsafe (a drive command is applied for
at most ``--failsafe-ms``; heartbeats keep the link up but never renew a drive), and has a
mushroom e-stop button: pressing it (SIGUSR1) latches the e-stop and the button STAYS down until
it is twisted free (SIGUSR2); an ``R`` while it is down is refused with ``EST``, like the sketch.
Refused lines (``EST`` included) never count as accepted: ``last_good_seq`` stays where it was.

``--record FILE`` appends one JSON object per event (commands applied, rejected lines, failsafe and
e-stop transitions, final counters) and flushes each line, so tests and people can watch it.
SIGTERM / SIGINT end it cleanly.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from lnn_control.runtime.hardware.serial_protocol import (
    FLAG_ESTOP,
    FLAG_FAILSAFE,
    Ack,
    ChecksumError,
    Drive,
    Error,
    ErrorCode,
    EStopReset,
    Heartbeat,
    LineSplitter,
    ProtocolError,
    RangeError,
    Stop,
    Telemetry,
    VersionError,
    decode,
    encode,
    seq_is_newer,
)


@dataclass(frozen=True)
class EmulatorConfig:
    """failsafe_ms: a drive command is applied at most this long (ms) without a newer one;
    telemetry_hz: telemetry lines per second; max_speed_m_s: speed at throttle 1;
    speed_time_constant_s: first-order response of the wheel speed; battery_mv: start voltage."""

    failsafe_ms: int = 250
    telemetry_hz: float = 20.0
    max_speed_m_s: float = 3.0
    speed_time_constant_s: float = 0.3
    battery_mv: int = 7400

    def __post_init__(self) -> None:
        if self.failsafe_ms <= 0 or self.telemetry_hz <= 0:
            raise ValueError(f"failsafe_ms and telemetry_hz must be > 0, got {self}")


class Mode(str, enum.Enum):
    IDLE = "idle"  # booted, neutral, no drive yet
    DRIVING = "driving"
    STOPPED = "stopped"  # host sent S
    FAILSAFE = "failsafe"  # drive expired: neutral
    ESTOP = "estop"  # button latched: neutral until R


class PtyTransport:
    """The master side of a fresh pseudo-terminal pair; ``slave_path`` is what the host opens."""

    def __init__(self) -> None:
        import tty

        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        self.slave_path = os.ttyname(self._slave)

    def read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:  # EIO when nobody holds the slave open: nothing to read
            return b""

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialTransport:
    """An existing serial device opened with pyserial (USB adapter, socat pty end, ...)."""

    def __init__(self, port: str, baudrate: int) -> None:
        import serial

        self.port = serial.Serial(port, baudrate, timeout=0)
        self.slave_path = port

    def read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self.port.fileno()], [], [], timeout_s)
        return self.port.read(4096) if ready else b""

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def close(self) -> None:
        self.port.close()


@dataclass
class CarEmulator:
    """The MCU's state machine; ``run()`` serves ``transport`` until ``stop_event`` is set."""

    transport: PtyTransport | SerialTransport
    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    record: TextIO | None = None
    mode: Mode = Mode.IDLE
    steer_milli: int = 0
    throttle_milli: int = 0
    speed_m_s: float = 0.0
    last_good_seq: int | None = None
    last_valid_rx: float = 0.0
    last_drive: float = 0.0
    seq: int = 0
    estop_latched: bool = False
    button_down: bool = False
    counters: dict[str, int] = field(default_factory=dict)

    def press_estop_button(self) -> None:
        """Push the mushroom button; it stays down. Safe from a signal handler: the loop latches the
        e-stop on its next pass."""
        self.button_down = True

    def release_estop_button(self) -> None:
        """Twist the button free. The e-stop stays latched until an ``R`` line clears it."""
        self.button_down = False

    def _log(self, event: str, now: float, **data: object) -> None:
        """Record ``event`` at ``now``, the monotonic time the emulator's decision used."""
        if self.record is not None:
            self.record.write(json.dumps({"t": now, "event": event, **data}) + "\n")
            self.record.flush()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _send(self, message: Ack | Telemetry | Error) -> None:
        self.transport.write(encode(self.seq, message))
        self.seq = (self.seq + 1) % 65536

    def _set_mode(self, mode: Mode, now: float) -> None:
        if mode != self.mode:
            self.mode = mode
            self._log("mode", now, mode=mode.value)
        if mode != Mode.DRIVING:
            self.steer_milli = self.throttle_milli = 0

    def _reject(self, code: ErrorCode, ref_seq: int, now: float) -> None:
        self._count(f"rejected_{code.value}")
        self._log("rejected", now, code=code.value, seq=ref_seq)
        last = -1 if self.last_good_seq is None else self.last_good_seq
        self._send(Error(code, ref_seq, last))

    def _stale(self, seq: int) -> bool:
        return self.last_good_seq is not None and not seq_is_newer(seq, self.last_good_seq)

    def handle_line(self, line: bytes, now: float) -> None:
        """Validate one line in the sketch's order (framing, CRC, version, sequence, contents),
        apply it and ack, or answer ``E`` with the line's seq (-1 if unreadable)."""
        try:
            packet = decode(line)
        except ChecksumError:
            return self._reject(ErrorCode.CHECKSUM, -1, now)
        except VersionError:
            return self._reject(ErrorCode.VERSION, -1, now)
        except ProtocolError as exc:
            if exc.seq is None:
                return self._reject(ErrorCode.FORMAT, -1, now)
            if self._stale(exc.seq):
                return self._reject(ErrorCode.SEQUENCE, exc.seq, now)
            return self._reject(ErrorCode.RANGE if isinstance(exc, RangeError) else ErrorCode.FORMAT, exc.seq, now)
        message = packet.message
        if self._stale(packet.seq):
            return self._reject(ErrorCode.SEQUENCE, packet.seq, now)
        if not isinstance(message, (Drive, Heartbeat, Stop, EStopReset)):
            return self._reject(ErrorCode.FORMAT, packet.seq, now)
        if isinstance(message, Drive) and self.estop_latched:
            return self._reject(ErrorCode.ESTOP, packet.seq, now)
        if isinstance(message, EStopReset) and self.button_down:
            return self._reject(ErrorCode.ESTOP, packet.seq, now)  # button still held
        self.last_good_seq = packet.seq
        self.last_valid_rx = now
        self._count(f"accepted_{message.TYPE}")
        if isinstance(message, Drive):
            self.last_drive = now
            self._set_mode(Mode.DRIVING, now)
            self.steer_milli, self.throttle_milli = message.steer_milli, message.throttle_milli
            self._log("drive", now, seq=packet.seq, steer_milli=message.steer_milli, throttle_milli=message.throttle_milli)
        elif isinstance(message, Stop):
            self._set_mode(Mode.STOPPED, now)
            self._log("stop", now, seq=packet.seq)
        elif isinstance(message, EStopReset):
            self.estop_latched = False
            self._set_mode(Mode.IDLE, now)
            self._log("estop_reset", now, seq=packet.seq)
        else:
            self._log("heartbeat", now, seq=packet.seq)
        self._send(Ack(packet.seq))

    def tick(self, now: float, dt: float) -> None:
        """Timers: e-stop button, drive expiry (failsafe), sequence baseline reset, speed model."""
        if self.button_down:
            if not self.estop_latched:
                self.estop_latched = True
                self._count("estops")
                self._log("estop", now)
            self._set_mode(Mode.ESTOP, now)
        failsafe_s = self.config.failsafe_ms / 1000.0
        if self.mode == Mode.DRIVING and now - self.last_drive > failsafe_s:
            self._count("failsafes")
            self._set_mode(Mode.FAILSAFE, now)
        if self.last_good_seq is not None and now - self.last_valid_rx > failsafe_s:
            self.last_good_seq = None  # host gone: accept a restarted host's sequence numbers
        target = self.throttle_milli / 1000.0 * self.config.max_speed_m_s
        self.speed_m_s += (target - self.speed_m_s) * min(1.0, dt / self.config.speed_time_constant_s)

    def telemetry(self) -> Telemetry:
        flags = (FLAG_ESTOP if self.estop_latched else 0) | (FLAG_FAILSAFE if self.mode == Mode.FAILSAFE else 0)
        return Telemetry(
            self.steer_milli, self.throttle_milli, int(round(self.speed_m_s * 1000)), self.config.battery_mv, flags
        )

    def run(self, stop_event: threading.Event) -> None:
        splitter = LineSplitter()
        period = 1.0 / self.config.telemetry_hz
        last = time.monotonic()
        next_telemetry = last
        self._log("ready", last, port=self.transport.slave_path)
        while not stop_event.is_set():
            data = self.transport.read(0.005)
            now = time.monotonic()
            for line in splitter.feed(data):
                self.handle_line(line, now)
            self.tick(now, now - last)
            last = now
            if now >= next_telemetry:
                self._send(self.telemetry())
                next_telemetry = max(next_telemetry + period, now)
        self._log("exit", time.monotonic(), counters=self.counters, overlong=splitter.overlong)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lnn_control.runtime.emulators.car", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="create a pseudo-terminal pair and print its path")
    where.add_argument("--port", help="serial device to serve, e.g. /dev/pts/7")
    parser.add_argument("--baudrate", type=int, default=115200)
    parser.add_argument("--failsafe-ms", type=int, default=EmulatorConfig.failsafe_ms)
    parser.add_argument("--telemetry-hz", type=float, default=EmulatorConfig.telemetry_hz)
    parser.add_argument("--record", help="append JSON-lines events to this file")
    args = parser.parse_args(argv)
    # a shell that starts us in the background sets SIGINT to "ignore"; Ctrl-C / kill -INT must
    # still stop the emulator (KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        config = EmulatorConfig(failsafe_ms=args.failsafe_ms, telemetry_hz=args.telemetry_hz)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        transport = PtyTransport() if args.pty else SerialTransport(args.port, args.baudrate)
    except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
        parser.error(f"cannot open {'a pseudo-terminal' if args.pty else repr(args.port)}: {exc}")
    try:
        record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    except OSError as exc:
        transport.close()
        parser.error(f"cannot open --record file {args.record!r}: {exc}")
    emulator = CarEmulator(transport, config, record)
    stop_event = threading.Event()

    def _quit(signum: int, frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _quit)
    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGUSR1, lambda signum, frame: emulator.press_estop_button())
    signal.signal(signal.SIGUSR2, lambda signum, frame: emulator.release_estop_button())
    print(f"READY {transport.slave_path}", flush=True)
    try:
        emulator.run(stop_event)
    finally:
        transport.close()
        if record is not None:
            record.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
