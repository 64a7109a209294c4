"""The Linux evdev event stream: ``struct input_event`` records parsed from raw bytes, and the pad
state they build up.

A read from ``/dev/input/eventN`` returns whole records of ``struct input_event``::

    struct timeval time;   // two C longs: seconds, microseconds
    __u16 type;            // EV_SYN, EV_KEY, EV_ABS, ...
    __u16 code;            // ABS_X, BTN_SOUTH, ...
    __s32 value;           // axis position; key 1 = press, 0 = release, 2 = autorepeat

(native layout ``@llHHi``: 24 bytes on 64-bit Linux). The kernel groups events into frames ended
by ``SYN_REPORT``; :class:`PadState` applies a frame only when its ``SYN_REPORT`` arrives, so a
reader never sees half a frame. ``SYN_DROPPED`` (the client's kernel buffer overflowed) discards
everything up to the next ``SYN_REPORT``; then the state is re-read from the device if a
``resync`` function was given, else every button counts as released (dead-man and takeover let go:
the safe side) and the axes keep their last values.

The event codes below are the kernel's ABI (``linux/input-event-codes.h``), so recorded bytes
parse without the ``evdev`` package; a test checks them against ``evdev.ecodes``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

INPUT_EVENT = struct.Struct("@llHHi")
"""One ``struct input_event`` in the machine's native layout."""

EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT, SYN_DROPPED = 0, 3

ABS_CODES: dict[str, int] = {
    "ABS_X": 0x00, "ABS_Y": 0x01, "ABS_Z": 0x02, "ABS_RX": 0x03, "ABS_RY": 0x04, "ABS_RZ": 0x05,
    "ABS_THROTTLE": 0x06, "ABS_RUDDER": 0x07, "ABS_WHEEL": 0x08, "ABS_GAS": 0x09, "ABS_BRAKE": 0x0A,
    "ABS_HAT0X": 0x10, "ABS_HAT0Y": 0x11, "ABS_HAT1X": 0x12, "ABS_HAT1Y": 0x13,
}
"""Absolute axes a gamepad, joystick or RC transmitter reports, by kernel name."""

BUTTON_CODES: dict[str, int] = {
    "BTN_SOUTH": 0x130, "BTN_A": 0x130, "BTN_EAST": 0x131, "BTN_B": 0x131, "BTN_C": 0x132,
    "BTN_NORTH": 0x133, "BTN_X": 0x133, "BTN_WEST": 0x134, "BTN_Y": 0x134, "BTN_Z": 0x135,
    "BTN_TL": 0x136, "BTN_TR": 0x137, "BTN_TL2": 0x138, "BTN_TR2": 0x139,
    "BTN_SELECT": 0x13A, "BTN_START": 0x13B, "BTN_MODE": 0x13C, "BTN_THUMBL": 0x13D, "BTN_THUMBR": 0x13E,
    "BTN_TRIGGER": 0x120, "BTN_THUMB": 0x121, "BTN_THUMB2": 0x122, "BTN_TOP": 0x123, "BTN_TOP2": 0x124,
    "BTN_PINKIE": 0x125, "BTN_BASE": 0x126, "BTN_BASE2": 0x127, "BTN_BASE3": 0x128, "BTN_BASE4": 0x129,
    "BTN_DPAD_UP": 0x220, "BTN_DPAD_DOWN": 0x221, "BTN_DPAD_LEFT": 0x222, "BTN_DPAD_RIGHT": 0x223,
}
"""Gamepad and joystick buttons, by kernel name (``BTN_A`` is ``BTN_SOUTH``, ``BTN_X`` is ``BTN_NORTH``)."""


@dataclass(frozen=True)
class InputEvent:
    """One ``struct input_event``: kernel timestamp (seconds), type, code, value."""

    time: float
    type: int
    code: int
    value: int

    def pack(self) -> bytes:
        """The record's bytes, as the kernel writes them (for recordings and tests)."""
        sec = int(self.time)
        return INPUT_EVENT.pack(sec, int(round((self.time - sec) * 1e6)), self.type, self.code, self.value)


class EventParser:
    """Bytes of an evdev stream -> :class:`InputEvent` records; keeps a partial record for the next
    ``feed`` (a pipe or socket may split one)."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[InputEvent]:
        buffer = self._pending + data
        whole = len(buffer) - len(buffer) % INPUT_EVENT.size
        self._pending = buffer[whole:]
        return [
            InputEvent(sec + usec * 1e-6, kind, code, value)
            for sec, usec, kind, code, value in INPUT_EVENT.iter_unpack(buffer[:whole])
        ]

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)


@dataclass
class PadSnapshot:
    """Axis raw values and pressed buttons by code after the last complete frame."""

    axes: dict[int, int] = field(default_factory=dict)
    pressed: frozenset[int] = frozenset()
    frames: int = 0  # complete frames applied
    dropped: int = 0  # SYN_DROPPED seen


class PadState:
    """Applies evdev frames (events up to ``SYN_REPORT``) to axis values and button states.

    initial_axes / initial_pressed: the device's state when opened (raw values / button codes).
    ``resync()`` (optional) returns the device's current ``(axes, pressed)`` after a ``SYN_DROPPED``.
    """

    def __init__(
        self,
        initial_axes: dict[int, int] | None = None,
        resync: Callable[[], tuple[dict[int, int], Iterable[int]]] | None = None,
        initial_pressed: Iterable[int] = (),
    ) -> None:
        self._axes = dict(initial_axes or {})
        self._pressed: set[int] = set(initial_pressed)
        self._frame: list[InputEvent] = []
        self._dropping = False
        self._resync = resync
        self.frames = 0
        self.dropped = 0

    def apply(self, events: Iterable[InputEvent]) -> None:
        for event in events:
            if event.type == EV_SYN and event.code == SYN_DROPPED:
                self.dropped += 1
                self._dropping = True
                self._frame.clear()
            elif event.type == EV_SYN and event.code == SYN_REPORT:
                if self._dropping:
                    self._dropping = False
                    self._recover()
                else:
                    self._commit()
            elif not self._dropping:
                self._frame.append(event)

    def _commit(self) -> None:
        for event in self._frame:
            if event.type == EV_ABS:
                self._axes[event.code] = event.value
            elif event.type == EV_KEY and event.value == 1:
                self._pressed.add(event.code)
            elif event.type == EV_KEY and event.value == 0:
                self._pressed.discard(event.code)
            # EV_KEY value 2 (autorepeat) changes nothing; other types (EV_MSC, EV_FF) are ignored
        self._frame.clear()
        self.frames += 1

    def _recover(self) -> None:
        if self._resync is None:
            self._pressed.clear()  # unknown: every button let go (dead-man and takeover released)
            return
        axes, pressed = self._resync()
        self._axes.update(axes)
        self._pressed = set(pressed)

    def snapshot(self) -> PadSnapshot:
        return PadSnapshot(dict(self._axes), frozenset(self._pressed), self.frames, self.dropped)
