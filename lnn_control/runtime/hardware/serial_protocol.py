"""The LNC serial line protocol between the host (SerialCar) and the RC-car microcontroller.

One message per ASCII line (see ``SERIAL_PROTOCOL.md`` next to this file for the full document)::

    $LNC,<version>,<seq>,<type>[,<field>...]*<crc8>\\n

``version`` is :data:`PROTOCOL_VERSION`; ``seq`` a per-sender counter 0..65535 (wraps); ``crc8`` two
upper-case hex digits of CRC-8 (polynomial 0x07, init 0x00, no reflection: CRC-8/SMBUS) over the
bytes between ``$`` and ``*``. Steering and throttle travel as integer milli-units of the normalised
range [-1, 1], i.e. -1000..1000.

Host -> MCU: ``D`` drive(steer_milli, throttle_milli), ``H`` heartbeat, ``S`` stop, ``R`` e-stop reset.
MCU -> host: ``A`` ack(acked_seq), ``T`` telemetry(steer_milli, throttle_milli, speed_mm_s,
battery_mv, flags), ``E`` error(code, ref_seq, last_good_seq).

Pure encoding/decoding, no I/O: :func:`encode` gives the bytes of one line, :func:`decode` parses
one line and raises a :class:`ProtocolError` subclass naming what is wrong.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

PROTOCOL_VERSION = 1
TALKER = b"LNC"
MAX_LINE_BYTES = 80
SEQ_MODULO = 65536
MILLI_LIMIT = 1000

#: telemetry flag bits
FLAG_ESTOP = 1  # e-stop latched (button pressed since the last R); outputs neutral
FLAG_FAILSAFE = 2  # no fresh drive command: the MCU's own failsafe holds neutral


class ProtocolError(ValueError):
    """A line is not a valid LNC message; the message says which part is wrong.

    ``seq`` is the line's sequence number when it could be read (the MCU reports it as
    ``ref_seq``), else None."""

    seq: int | None = None


class FrameFormatError(ProtocolError):
    """Framing, field count or field syntax is wrong."""


class RangeError(FrameFormatError):
    """A well-formed field holds a value outside its range (e.g. steering beyond -1000..1000)."""


class ChecksumError(ProtocolError):
    """The CRC-8 in the line does not match its contents (corrupted on the wire)."""


class VersionError(ProtocolError):
    """The peer speaks another protocol version."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


class ErrorCode(str, enum.Enum):
    """Why the MCU rejected a line (field 1 of an ``E`` message)."""

    CHECKSUM = "CRC"
    VERSION = "VER"
    SEQUENCE = "SEQ"  # seq not newer than the last accepted one (duplicate / replay / reorder)
    FORMAT = "FMT"
    RANGE = "RNG"  # a value outside -1000..1000
    ESTOP = "EST"  # drive refused: e-stop latched, send R after releasing the button


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS: polynomial x^8+x^2+x+1 (0x07), init 0, no reflection, no final xor.

    Any CRC of degree 8 detects every error burst of length <= 8 bits, so every single corrupted
    byte is detected."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@dataclass(frozen=True)
class Drive:
    """Host -> MCU: apply steering / throttle (milli-units of [-1, 1]; -1000 = full left / reverse)."""

    steer_milli: int
    throttle_milli: int

    TYPE = "D"

    def __post_init__(self) -> None:
        for name in ("steer_milli", "throttle_milli"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MILLI_LIMIT:
                raise ValueError(f"Drive.{name} must be an int in -1000..1000, got {value!r}")

    @classmethod
    def from_normalized(cls, steering: float, throttle: float) -> Drive:
        """Round normalised values in [-1, 1] to milli-units; NaN or out of range raises ValueError."""
        out = []
        for name, value in (("steering", steering), ("throttle", throttle)):
            value = float(value)
            if not math.isfinite(value) or abs(value) > 1.0:
                raise ValueError(f"{name} must be a finite value in [-1, 1], got {value!r}; clamp first")
            out.append(int(round(value * MILLI_LIMIT)))
        return cls(out[0], out[1])

    @property
    def steering(self) -> float:
        return self.steer_milli / MILLI_LIMIT

    @property
    def throttle(self) -> float:
        return self.throttle_milli / MILLI_LIMIT

    def fields(self) -> tuple[str, ...]:
        return (str(self.steer_milli), str(self.throttle_milli))


@dataclass(frozen=True)
class Heartbeat:
    """Host -> MCU: I am alive (keeps the link up; does NOT renew a drive command)."""

    TYPE = "H"

    def fields(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class Stop:
    """Host -> MCU: neutral steering, throttle 0 (brake) until the next drive command."""

    TYPE = "S"

    def fields(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class EStopReset:
    """Host -> MCU: clear a latched e-stop (refused while the button is still pressed)."""

    TYPE = "R"

    def fields(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class Ack:
    """MCU -> host: the command with sequence number ``acked_seq`` was accepted."""

    acked_seq: int

    TYPE = "A"

    def __post_init__(self) -> None:
        _check_seq(self.acked_seq, "Ack.acked_seq")

    def fields(self) -> tuple[str, ...]:
        return (str(self.acked_seq),)


@dataclass(frozen=True)
class Telemetry:
    """MCU -> host: applied outputs (milli-units), wheel speed (mm/s), battery (mV), flag bits."""

    steer_milli: int
    throttle_milli: int
    speed_mm_s: int
    battery_mv: int
    flags: int

    TYPE = "T"

    def __post_init__(self) -> None:
        Drive(self.steer_milli, self.throttle_milli)  # same range check
        if self.battery_mv < 0 or not 0 <= self.flags <= 255:
            raise ValueError(f"Telemetry battery_mv must be >= 0 and flags in 0..255, got {self}")

    @property
    def estop(self) -> bool:
        return bool(self.flags & FLAG_ESTOP)

    @property
    def failsafe(self) -> bool:
        return bool(self.flags & FLAG_FAILSAFE)

    def fields(self) -> tuple[str, ...]:
        return tuple(
            str(v) for v in (self.steer_milli, self.throttle_milli, self.speed_mm_s, self.battery_mv, self.flags)
        )


@dataclass(frozen=True)
class Error:
    """MCU -> host: the line with ``ref_seq`` (-1 if unreadable) was rejected for ``code``;
    ``last_good_seq`` is the last accepted host seq (-1 if none), for resynchronising."""

    code: ErrorCode
    ref_seq: int
    last_good_seq: int

    TYPE = "E"

    def fields(self) -> tuple[str, ...]:
        return (self.code.value, str(self.ref_seq), str(self.last_good_seq))


Message = Drive | Heartbeat | Stop | EStopReset | Ack | Telemetry | Error
HOST_MESSAGES = (Drive, Heartbeat, Stop, EStopReset)
MCU_MESSAGES = (Ack, Telemetry, Error)
_BY_TYPE: dict[str, type] = {cls.TYPE: cls for cls in HOST_MESSAGES + MCU_MESSAGES}


@dataclass(frozen=True)
class Packet:
    """One decoded line: sender sequence number, message, protocol version."""

    seq: int
    message: Message
    version: int = PROTOCOL_VERSION


def _check_seq(seq: int, name: str) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < SEQ_MODULO:
        raise ValueError(f"{name} must be an int in 0..65535, got {seq!r}")


def encode(seq: int, message: Message, version: int = PROTOCOL_VERSION) -> bytes:
    """The bytes of one line (ending in ``\\n``) carrying ``message`` with sequence number ``seq``."""
    _check_seq(seq, "seq")
    if type(message) not in _BY_TYPE.values():
        raise ValueError(f"message must be one of {sorted(c.__name__ for c in _BY_TYPE.values())}, got {message!r}")
    body = ",".join((TALKER.decode(), str(int(version)), str(seq), message.TYPE, *message.fields())).encode("ascii")
    return b"$" + body + b"*" + f"{crc8(body):02X}".encode("ascii") + b"\n"


def _int_field(text: str, what: str) -> int:
    if not text or not (text.isdigit() or (text[0] == "-" and text[1:].isdigit())):
        raise FrameFormatError(f"{what} must be a decimal integer, got {text!r}")
    return int(text)


_FIELD_COUNTS = {"D": 2, "H": 0, "S": 0, "R": 0, "A": 1, "T": 5, "E": 3}


def decode(line: bytes) -> Packet:
    """Parse one line (with or without the trailing ``\\n`` / ``\\r\\n``).

    Raises FrameFormatError (RangeError for a value out of range), ChecksumError or VersionError
    (all :class:`ProtocolError`, a ValueError; ``seq`` set once the sequence number was read).
    The checksum is verified before anything else in the body is trusted."""
    if len(line) > MAX_LINE_BYTES:
        raise FrameFormatError(f"line is {len(line)} bytes, more than the maximum {MAX_LINE_BYTES}")
    raw = line[:-1] if line.endswith(b"\n") else line
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    if not raw.startswith(b"$"):
        raise FrameFormatError(f"line must start with '$', got {bytes(line[:8])!r}")
    star = raw.rfind(b"*")
    if star < 0 or len(raw) - star != 3:
        raise FrameFormatError("line must end in '*' and two hex digits of CRC-8")
    body, crc_text = raw[1:star], raw[star + 1 :]
    if any(c not in b"0123456789ABCDEF" for c in crc_text):
        raise FrameFormatError(f"checksum must be two upper-case hex digits, got {crc_text!r}")
    if int(crc_text, 16) != crc8(body):
        raise ChecksumError(f"CRC-8 mismatch: line says {crc_text.decode()}, contents give {crc8(body):02X}")
    try:
        parts = body.decode("ascii").split(",")
    except UnicodeDecodeError as exc:
        raise FrameFormatError("line contains non-ASCII bytes") from exc
    if len(parts) < 4 or parts[0] != TALKER.decode():
        raise FrameFormatError(f"line must begin '$LNC,<version>,<seq>,<type>', got {body[:20]!r}")
    version = _int_field(parts[1], "version")
    if version != PROTOCOL_VERSION:
        raise VersionError(
            f"peer speaks LNC protocol version {version}, this side speaks {PROTOCOL_VERSION}; "
            "flash matching firmware or update lnn-control",
            version,
        )
    seq = _int_field(parts[2], "seq")
    if not 0 <= seq < SEQ_MODULO:
        raise FrameFormatError(f"seq must be in 0..65535, got {seq}")
    try:
        return Packet(seq, _decode_message(parts[3], parts[4:]), version)
    except ProtocolError as exc:
        exc.seq = seq
        raise


def _decode_message(kind: str, fields: list[str]) -> Message:
    if kind not in _FIELD_COUNTS:
        raise FrameFormatError(f"unknown message type {kind!r}; known: {sorted(_FIELD_COUNTS)}")
    if len(fields) != _FIELD_COUNTS[kind]:
        raise FrameFormatError(f"message {kind} needs {_FIELD_COUNTS[kind]} field(s), got {len(fields)}")
    if kind == "E":
        try:
            code = ErrorCode(fields[0])
        except ValueError as exc:
            raise FrameFormatError(f"unknown error code {fields[0]!r}") from exc
        return Error(code, _int_field(fields[1], "ref_seq"), _int_field(fields[2], "last_good_seq"))
    values = [_int_field(f, f"field {i + 1} of {kind}") for i, f in enumerate(fields)]
    try:
        return _BY_TYPE[kind](*values)
    except ValueError as exc:  # the message's own range check
        raise RangeError(str(exc)) from exc


def seq_is_newer(seq: int, last: int) -> bool:
    """Whether ``seq`` comes after ``last`` in modulo-65536 order (within half the range)."""
    return 0 < (seq - last) % SEQ_MODULO < SEQ_MODULO // 2


class LineSplitter:
    """Collects bytes from a serial port into complete lines; lines longer than MAX_LINE_BYTES
    are dropped (counted in ``overlong``) so garbage cannot grow the buffer."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines = []
        for chunk in data.split(b"\n")[:-1] if b"\n" in data else []:
            if self._discarding or len(self._buffer) + len(chunk) + 1 > MAX_LINE_BYTES:
                self.overlong += 0 if self._discarding else 1
            else:
                lines.append(bytes(self._buffer + chunk + b"\n"))
            self._buffer.clear()
            self._discarding = False
        tail = data.rsplit(b"\n", 1)[-1] if b"\n" in data else data
        if not self._discarding:
            self._buffer += tail
            if len(self._buffer) > MAX_LINE_BYTES:
                self._buffer.clear()
                self._discarding = True
                self.overlong += 1
        return lines
