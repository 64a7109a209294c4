"""Drive from the terminal's keyboard (works over SSH, no display): raw key bytes through termios.

Keys (defaults by action name, see :data:`~lnn_control.runtime.inputs.config.DEFAULT_KEYS`;
arrows act as w/s/a/d): each press (or autorepeat of a held key) moves that action's set-point by
``step`` x half its range, e.g. ``a``/``d`` = steering +/- 0.1 (left/right), ``w``/``s`` = throttle
or vx. ``h`` holds the set-point without changing it, ``space`` zeroes it and releases the dead-man
(takeover mode: it also latches the e-stop, as in ``lnn-control run``), ``e`` latches the e-stop,
``q`` (or Ctrl-C) ends the run. In takeover mode "held" is also the takeover control: any drive key
(or ``h``) takes over, and the policy drives again ``hold_s`` after the last key.

**Dead-man rule.** A terminal reports key presses, never releases, so "held" means: a key arrived
within the last ``hold_s`` seconds (a held key autorepeats). Past that window the dead-man counts as
released: in teleop the robot gets the stop command in the next period and the set-point returns to
neutral; in takeover the policy drives again. A press after a release starts from the command last
sent (takeover: the policy's, so taking over does not jump) or neutral (teleop).

Keys are read by a small thread that stamps each one on arrival (``time.monotonic()``), so the
window is measured from the key, not from the loop's next poll. The terminal is switched to
non-canonical, no-echo input (``ISIG`` kept: Ctrl-C still sends SIGINT) and restored by ``close()``.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable

import numpy as np

from lnn_control.runtime.core.arbiter import HumanCommand, InputDeviceError
from lnn_control.runtime.inputs.config import ARROW_ALIAS, KeyboardConfig
from lnn_control.runtime.inputs.mapping import resolve_keys
from lnn_control.spec import ActionSpec

log = logging.getLogger(__name__)

_ARROWS = {b"A": "up", b"B": "down", b"C": "right", b"D": "left"}


class KeyDecoder:
    """Terminal bytes -> key names: a lower-case character, ``up``/``down``/``left``/``right``
    (``ESC [ A``..``D`` and the application-mode ``ESC O A``..``D``), ``ctrl-c``, ``esc``. Other escape
    sequences and non-ASCII bytes are dropped; a sequence split across reads is completed by the next."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._pending + data
        self._pending = b""
        keys: list[str] = []
        i = 0
        while i < len(buffer):
            byte = buffer[i : i + 1]
            if byte != b"\x1b":
                i += 1
                if byte == b"\x03":
                    keys.append("ctrl-c")
                elif 0x20 <= byte[0] < 0x7F:
                    keys.append(byte.decode("ascii").lower())
                continue
            if i + 1 >= len(buffer):  # a lone ESC so far: wait for the rest of a sequence
                self._pending = buffer[i:]
                break
            intro = buffer[i + 1 : i + 2]
            if intro not in (b"[", b"O"):
                keys.append("esc")
                i += 1
                continue
            end = i + 2  # CSI: parameter bytes, then one final byte in 0x40..0x7E
            while end < len(buffer) and not 0x40 <= buffer[end] <= 0x7E:
                end += 1
            if end >= len(buffer):
                self._pending = buffer[i:]
                break
            final = buffer[end : end + 1]
            if end == i + 2 and final in _ARROWS:
                keys.append(_ARROWS[final])
            i = end + 1
        return keys


class KeyboardInput:
    """A :class:`~lnn_control.runtime.core.arbiter.HumanInput` on a terminal; see the module docstring.

    fd: the terminal to read (default: stdin). takeover_mode: ``run --takeover keyboard``: held keys
    report ``takeover`` (else only ``deadman``), and ``space`` latches the e-stop (the policy drives
    while no key is held, so space must stop it for good)."""

    name = "keyboard"

    def __init__(
        self,
        config: KeyboardConfig | None = None,
        fd: int | None = None,
        takeover_mode: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or KeyboardConfig()
        self.fd = 0 if fd is None else fd
        self.takeover_mode = takeover_mode
        self.clock = clock
        self._decoder = KeyDecoder()
        self._keys: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_mode: list | None = None
        self._bindings: dict[str, tuple[int, float]] = {}
        self._steps = np.zeros(0)
        self._low = self._high = self._neutral = np.zeros(0)
        self._setpoint = np.zeros(0)
        self._last_key: float | None = None
        self._held = False
        self.keys_seen = 0

    # -- HumanInput ------------------------------------------------------------------------
    def open(self) -> None:
        """Switch the terminal to key-at-a-time input and start the reader thread."""
        import termios

        if not os.isatty(self.fd):
            raise InputDeviceError(
                f"keyboard input reads keys from a terminal, but file descriptor {self.fd} is not one: run "
                "lnn-control in a terminal (over SSH: ssh -t), or use the gamepad"
            )
        self._saved_mode = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags: no line editing, no echo; ISIG stays
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        self._running.set()
        self._thread = threading.Thread(target=self._read_keys, name="keyboard-input", daemon=True)
        self._thread.start()

    def bind(self, action_spec: ActionSpec, neutral: np.ndarray) -> None:
        self._bindings = resolve_keys(self.config, action_spec)
        self._low = np.asarray(action_spec.low, np.float64)
        self._high = np.asarray(action_spec.high, np.float64)
        self._steps = self.config.step * (self._high - self._low) / 2.0
        self._neutral = np.asarray(neutral, np.float64).reshape(-1).copy()
        self._setpoint = self._neutral.copy()
        layout = ", ".join(
            f"{key}{'+' if sign > 0 else '-'}{action_spec.names[index]}" for key, (index, sign) in self._bindings.items()
        )
        log.info(
            "keyboard: %s (arrows = w s a d); h hold, space stop/zero, e e-stop, q quit; "
            "no key for %.2f s = dead-man released", layout, self.config.hold_s,
        )

    def poll(self, now: float, current: np.ndarray | None) -> HumanCommand:
        with self._lock:
            keys, self._keys = self._keys, []
        estop = quit_ = False
        for stamp, key in keys:
            key = ARROW_ALIAS.get(key, key)
            if key in ("q", "ctrl-c"):
                quit_ = True
            elif key == "e":
                estop = True
            elif key == " ":
                self._setpoint = self._neutral.copy()
                self._last_key = None
                self._held = False
                estop = estop or self.takeover_mode
            elif key == "h" or key in self._bindings:
                if not self._is_held(stamp):  # pressed after a release: start from what the robot does
                    self._setpoint = self._neutral.copy() if current is None else np.asarray(current, np.float64).copy()
                self._last_key = stamp
                self._held = True
                if key in self._bindings:
                    index, sign = self._bindings[key]
                    self._setpoint[index] = np.clip(
                        self._setpoint[index] + sign * self._steps[index], self._low[index], self._high[index]
                    )
        if self._held and not self._is_held(now):
            self._held = False
            self._setpoint = self._neutral.copy()
        takeover = self._held and self.takeover_mode
        return HumanCommand(self._setpoint.astype(np.float32), self._held, takeover, now, estop, quit_)

    def close(self) -> None:
        """Stop the reader and restore the terminal's mode."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._saved_mode is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_mode)
            except termios.error:  # the terminal is gone: nothing to restore
                pass
            self._saved_mode = None

    @property
    def last_key_time(self) -> float | None:
        """Arrival time (monotonic s) of the newest key the loop has polled; the dead-man window
        runs from here."""
        return self._last_key

    # -- internals -------------------------------------------------------------------------
    def _is_held(self, now: float) -> bool:
        return self._held and self._last_key is not None and now - self._last_key <= self.config.hold_s

    def _read_keys(self) -> None:
        while self._running.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.fd, 256)
            except (OSError, ValueError):  # the terminal closed: no keys => the dead-man releases
                return
            if not data:  # readable but empty: the terminal hung up
                return
            stamp = self.clock()
            keys = self._decoder.feed(data)
            if keys:
                with self._lock:
                    self._keys.extend((stamp, key) for key in keys)
                    self.keys_seen += len(keys)
