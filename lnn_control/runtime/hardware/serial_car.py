"""SerialCar: a camera plus an RC-car microcontroller speaking the LNC line protocol over pyserial.

The protocol is documented in ``SERIAL_PROTOCOL.md`` (encoding in :mod:`serial_protocol`). A
background I/O thread reads acks / telemetry / errors, sends a heartbeat when the link is idle,
and runs the host-side command watchdog: if ``write()`` has not been called for
``command_timeout_s`` it sends STOP on its own. It never repeats a drive command, so a hung control
loop cannot keep the car driving (the MCU's failsafe would also catch it, but only after its
own timeout).

**Steering sign, in one place.** The policy steers in :attr:`~lnn_control.spec.ActionFrame.FLU`
(+1 = full LEFT, like the simulator); the LNC wire format says -1000 = full left. :meth:`write`
negates steering on the way out (:func:`wire_steering`) and reports what it sent in the policy's
frame; the robot's action spec says ``frame: flu`` and ``lnn-control run`` checks it against the
bundle before opening the port.

Usage::

    car = SerialCar(OpenCVCamera(0, output_shape=(64, 128)), SerialCarConfig(port="/dev/ttyACM0"))
    with car:
        obs = car.read()                       # Observation(image, timestamp, extras)
        car.write(np.array([0.1, 0.3]))        # steering (+ = left), throttle in [-1, 1]
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot, RobotError
from lnn_control.runtime.hardware.cameras import Camera, CameraError
from lnn_control.runtime.hardware.link import (
    check_finite_positive,
    check_image_shape,
    fit_image,
    link_alive,
    reconnect,
    require_link,
)
from lnn_control.runtime.hardware.serial_protocol import (
    Ack,
    Drive,
    Error,
    ErrorCode,
    EStopReset,
    Heartbeat,
    LineSplitter,
    Message,
    ProtocolError,
    Stop,
    Telemetry,
    VersionError,
    decode,
    encode,
)
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec


def wire_steering(policy_steering: float) -> float:
    """Policy steering (FLU: + = left) → LNC wire steering (+ = right), both in [-1, 1]."""
    return -float(policy_steering)


class CarActions(str, enum.Enum):
    """What the policy commands: steering only (throttle fixed at ``cruise_throttle``) or both."""

    STEERING = "steering"
    STEERING_THROTTLE = "steering_throttle"


@dataclass(frozen=True)
class SerialCarConfig:
    """port: serial device (``/dev/ttyACM0``, ``/dev/pts/N``); baudrate: bits/s.
    actions: see :class:`CarActions`; cruise_throttle: normalised throttle for ``steering`` only.
    include_speed: add the MCU's wheel speed (m/s) as observation extra ``speed``.
    image_shape: (height, width) of frames when the camera does not resize them itself.
    heartbeat_interval_s: send a heartbeat when nothing was sent for this long.
    command_timeout_s: host watchdog: no ``write()`` for this long while driving => STOP.
    link_timeout_s: no line from the MCU for this long => link lost.
    connect_timeout_s: how long ``connect()`` waits for the MCU's first ack."""

    port: str
    baudrate: int = 115200
    actions: CarActions = CarActions.STEERING_THROTTLE
    cruise_throttle: float = 0.3
    include_speed: bool = False
    image_shape: tuple[int, int] = (64, 128)
    heartbeat_interval_s: float = 0.1
    command_timeout_s: float = 0.2
    link_timeout_s: float = 0.5
    connect_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        try:  # a plain string is accepted where the enum is expected
            object.__setattr__(self, "actions", CarActions(self.actions))
        except ValueError as exc:
            raise ValueError(f"actions must be one of {[a.value for a in CarActions]}, got {self.actions!r}") from exc
        if not self.port:
            raise ValueError("port must name a serial device, e.g. /dev/ttyACM0")
        if isinstance(self.baudrate, bool) or not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"baudrate must be a positive int (bits/s, e.g. 115200), got {self.baudrate!r}")
        if not -1.0 <= self.cruise_throttle <= 1.0:
            raise ValueError(f"cruise_throttle must be in [-1, 1], got {self.cruise_throttle}")
        check_image_shape(self.image_shape)
        timeouts = ("heartbeat_interval_s", "command_timeout_s", "link_timeout_s", "connect_timeout_s")
        check_finite_positive(self, timeouts, "seconds")
        if self.heartbeat_interval_s >= self.link_timeout_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be shorter than "
                f"link_timeout_s ({self.link_timeout_s})"
            )


@dataclass
class LinkStats:
    """Counters of the serial link since construction."""

    sent: dict[str, int] = field(default_factory=dict)
    acks: int = 0
    telemetry: int = 0
    mcu_errors: dict[str, int] = field(default_factory=dict)
    bad_lines: int = 0
    watchdog_stops: int = 0


class SerialCar(Robot):
    """Camera + RC car over serial; see the module docstring."""

    def __init__(self, camera: Camera, config: SerialCarConfig) -> None:
        self.camera = camera
        self.config = config
        shape = getattr(camera, "output_shape", None) or config.image_shape
        extras = ("speed",) if config.include_speed else ()
        self.observation_spec = ObservationSpec((int(shape[0]), int(shape[1]), 3), extras, ("m/s",) * len(extras))
        names = ("steering",) if config.actions == CarActions.STEERING else ("steering", "throttle")
        n = len(names)
        self.action_spec = ActionSpec(names, (-1.0,) * n, (1.0,) * n, ("normalized",) * n, ActionFrame.FLU)
        self.stats = LinkStats()
        self._serial: Any = None  # serial.Serial while connected
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._lock = threading.Lock()  # guards writes to the port and the sequence counter
        self._replies = threading.Condition()
        self._seq = 0
        self._last_tx = 0.0
        self._last_rx = 0.0
        self._last_write = 0.0
        self._driving = False
        self._io_error: str | None = None
        self._acked: set[int] = set()
        self._errors: dict[int, Error] = {}
        self._telemetry: Telemetry | None = None
        self._connected = False
        self._ever_connected = False
        self._motion_locked: str | None = None  # why write() drives no more (a link that came back)

    # ----------------------------------------------------------------- link
    def _send(self, message: Message, even_if_link_down: bool = False) -> int:
        """Encode and write one line; returns its sequence number. Raises LinkLostError.

        ``even_if_link_down``: try the write while the port is open although the link was declared
        lost (for STOP: the wire may still carry it)."""
        with self._lock:
            if self._serial is None or (self._io_error is not None and not even_if_link_down):
                raise LinkLostError(f"serial link {self.config.port} is down: {self._io_error or 'not connected'}")
            seq = self._seq
            self._seq = (self._seq + 1) % 65536
            try:
                self._serial.write(encode(seq, message))
            except Exception as exc:  # serial.SerialException, OSError, write timeout
                self._io_error = f"write failed: {exc}"
                raise LinkLostError(
                    f"serial link {self.config.port} lost while writing ({exc}); check the cable and the MCU"
                ) from exc
            self._last_tx = time.monotonic()
            self.stats.sent[message.TYPE] = self.stats.sent.get(message.TYPE, 0) + 1
            return seq

    def _handle(self, line: bytes) -> None:
        try:
            packet = decode(line)
        except VersionError as exc:
            self._io_error = str(exc)
            return
        except ProtocolError:
            self.stats.bad_lines += 1
            return
        message = packet.message
        with self._replies:
            self._last_rx = time.monotonic()
            if isinstance(message, Ack):
                self.stats.acks += 1
                self._acked.add(message.acked_seq)
                if len(self._acked) > 256:
                    self._acked = {s for s in self._acked if (self._seq - s) % 65536 < 128}
            elif isinstance(message, Telemetry):
                self.stats.telemetry += 1
                self._telemetry = message
            elif isinstance(message, Error):
                code = message.code.value
                self.stats.mcu_errors[code] = self.stats.mcu_errors.get(code, 0) + 1
                self._errors[message.ref_seq] = message
                if len(self._errors) > 256:
                    self._errors.clear()
            else:
                self.stats.bad_lines += 1  # a host message coming back: echo on the line
            self._replies.notify_all()

    def _io_loop(self) -> None:
        try:
            self._serve_link()
        except Exception as exc:  # a fault in this thread must show as a lost link at once, not pass silently
            self._io_error = f"I/O thread failed: {type(exc).__name__}: {exc}"
            with self._replies:
                self._replies.notify_all()

    def _serve_link(self) -> None:
        splitter = LineSplitter()
        serial_port = self._serial
        while self._running.is_set():
            try:
                data = serial_port.read(max(1, serial_port.in_waiting))
            except Exception as exc:  # the device vanished (EIO, unplugged, pty closed)
                self._io_error = f"read failed: {exc}"
                with self._replies:
                    self._replies.notify_all()
                return
            for line in splitter.feed(data):
                self._handle(line)
            now = time.monotonic()
            try:
                if self._driving and now - self._last_write > self.config.command_timeout_s:
                    self._driving = False
                    self.stats.watchdog_stops += 1
                    self._send(Stop())
                elif now - self._last_tx > self.config.heartbeat_interval_s:
                    self._send(Heartbeat())
            except LinkLostError:
                return

    def _await_reply(self, seq: int, timeout_s: float) -> Ack | Error | None:
        deadline = time.monotonic() + timeout_s
        with self._replies:
            while True:
                if seq in self._acked:
                    return Ack(seq)
                if seq in self._errors:
                    return self._errors.pop(seq)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._io_error is not None:
                    return None
                self._replies.wait(remaining)

    def link_ok(self) -> bool:
        """Connected, no I/O error, and a line from the MCU within ``link_timeout_s``."""
        return link_alive(self._connected, self._io_error, self._last_rx, self.config.link_timeout_s)

    def _check_link(self) -> None:
        require_link(
            self._connected, self._io_error, self._last_rx, self.config.link_timeout_s, robot="SerialCar",
            link=f"serial link {self.config.port}", silence="no reply from the MCU", hint="check the cable, power and firmware",
        )

    # ------------------------------------------------------------ lifecycle
    def connect(self) -> None:
        import serial

        if self._connected:
            return
        try:
            self._serial = serial.Serial(
                self.config.port, self.config.baudrate, timeout=0.005, write_timeout=0.2, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise RobotError(
                f"cannot open serial port {self.config.port!r} ({exc}); check the device path, that no "
                "other program holds it, and permissions (e.g. the dialout group)"
            ) from exc
        self._io_error = None
        self._acked.clear()
        self._errors.clear()
        self._telemetry = None
        self._driving = False
        try:
            self._serial.reset_input_buffer()
            self._running.set()
            self._thread = threading.Thread(target=self._io_loop, name="serial-car-io", daemon=True)
            self._thread.start()
            self._handshake()
            self.camera.open()
        except BaseException as exc:  # never leave the I/O thread or the port open behind
            self._close_link()
            if isinstance(exc, CameraError):
                raise RobotError(f"SerialCar camera: {exc}") from exc
            raise
        self._connected = True
        if self._ever_connected:  # a reconnect: the link is back, the car does not drive by itself
            self._motion_locked = "the link came back after a loss: call resume() (an operator's decision) to drive again"
        self._ever_connected = True

    def _handshake(self) -> None:
        """Heartbeat until the MCU acks one; resynchronise the sequence if it asks for it."""
        deadline = time.monotonic() + self.config.connect_timeout_s
        while time.monotonic() < deadline:
            seq = self._send(Heartbeat())
            reply = self._await_reply(seq, min(0.25, max(0.0, deadline - time.monotonic())))
            if isinstance(reply, Ack):
                return
            if isinstance(reply, Error) and reply.code == ErrorCode.SEQUENCE and reply.last_good_seq >= 0:
                with self._lock:
                    self._seq = (reply.last_good_seq + 1) % 65536
            if self._io_error is not None:
                break
        why = self._io_error or f"no ack within {self.config.connect_timeout_s} s"
        raise RobotError(
            f"MCU on {self.config.port} did not answer the LNC handshake ({why}); check that the "
            "firmware runs, the baud rate matches and the protocol versions agree"
        )

    def _close_link(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # closing a vanished device: nothing left to release
                pass
            self._serial = None

    def disconnect(self) -> None:
        """Close the port and the camera; a car still driving gets STOP first (best effort)."""
        if self._driving and self._serial is not None:
            try:
                self.stop()
            except LinkLostError:  # the wire is gone: the MCU's failsafe stops the car
                pass
        self._connected = False
        self._driving = False
        self._close_link()
        self.camera.close()

    @property
    def is_connected(self) -> bool:
        return self._connected

    def reconnect(self, max_attempts: int, backoff_s: float = 0.2) -> int:
        """Close and reopen the link up to ``max_attempts`` times; returns the attempt that worked.

        Raises RobotError listing each failed attempt's reason when none succeeds."""
        return reconnect(self, max_attempts, backoff_s, f"the car on {self.config.port}")

    # ------------------------------------------------------------- robot io
    def read(self) -> Observation:
        self._check_link()
        try:
            frame = self.camera.read()
        except CameraError as exc:
            raise RobotError(f"SerialCar camera: {exc}") from exc
        image = fit_image(frame.image, self.observation_spec.image_shape)
        extras = {}
        if self.config.include_speed:
            telemetry = self._telemetry
            extras["speed"] = 0.0 if telemetry is None else telemetry.speed_mm_s / 1000.0
        return Observation(image, frame.timestamp, extras)

    def write(self, action: np.ndarray) -> np.ndarray:
        """Clamp to [-1, 1], quantise to milli-units, send DRIVE; returns the values sent, in the
        policy's frame. While the MCU reports its e-stop latched nothing is sent (it would refuse
        the drive) and neutral is returned: what the car does."""
        self._check_link()
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != (self.action_spec.size,):
            raise ValueError(f"action must have shape ({self.action_spec.size},) {self.action_spec.names}, got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action must be finite, got {values.tolist()}; the car was not commanded")
        if self.estop_requested():  # MCU e-stop latched, or motion locked after a reconnect
            return np.zeros(self.action_spec.size, np.float32)
        values = np.clip(values, -1.0, 1.0)
        throttle = values[1] if values.size == 2 else self.config.cruise_throttle
        drive = Drive.from_normalized(wire_steering(values[0]), throttle)
        self._last_write = time.monotonic()
        self._driving = True
        self._send(drive)
        sent = (wire_steering(drive.steering), drive.throttle)[: self.action_spec.size]
        return np.asarray(sent, np.float32)

    def stop(self) -> None:
        """Send STOP (neutral steering, zero throttle), also while the link counts as lost (the
        wire may still carry it); raises LinkLostError if it cannot be written."""
        self._driving = False
        self._send(Stop(), even_if_link_down=True)

    # ------------------------------------------------------------ telemetry
    def telemetry(self) -> Telemetry | None:
        """The MCU's latest telemetry (applied outputs, speed, battery, flags), if any arrived."""
        return self._telemetry

    def estop_requested(self) -> bool:
        """True while the MCU reports its e-stop latched (button pressed, not yet reset), and after
        a reconnect until :meth:`resume`."""
        telemetry = self._telemetry
        return self._motion_locked is not None or (telemetry is not None and telemetry.estop)

    def estop_detail(self) -> str:
        if self._motion_locked is not None:
            return f"car: {self._motion_locked}"
        return "MCU: the car's e-stop button is latched"

    def resume(self) -> None:
        """An operator's explicit decision to drive again after a reconnect (the control loop never
        calls this: ``lnn-control run`` stays stopped until a new run)."""
        self._motion_locked = None

    def reset_estop(self, timeout_s: float = 1.0) -> None:
        """Ask the MCU to clear its latched e-stop; raises RobotError if it does not confirm."""
        self._check_link()
        seq = self._send(EStopReset())
        reply = self._await_reply(seq, timeout_s)
        if not isinstance(reply, Ack):
            why = f"MCU answered {reply.code.value}" if reply is not None else f"no ack within {timeout_s} s"
            raise RobotError(f"e-stop reset refused ({why}); release the e-stop button and try again")
        with self._replies:
            self._telemetry = None  # the old telemetry still says e-stop; wait for a fresh one
