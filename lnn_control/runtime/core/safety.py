"""Safety layer between policy and robot: command limiter, stale-frame watchdog, latched e-stop.

All three report what they did as :class:`SafetyEvent` records in a shared :class:`EventLog`
(the control loop writes them into the run log). Times are seconds on ``time.monotonic()``.

- :class:`CommandLimiter`: NaN/inf guard (-> neutral command + event), clamp to bounds, and a
  slew-rate limit per component per second.
- :class:`Watchdog`: a frame older than ``max_frame_age_s`` trips it; the loop then sends the stop
  command in the same period. A fresh frame clears it (recorded too).
- :class:`EStop`: latched; set by a signal (SIGUSR1 by default), the keyboard ('e' or space on a
  terminal) or the robot's ``estop_requested()``; only an explicit ``reset()`` clears it.
"""

from __future__ import annotations

import enum
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from lnn_control.spec import ActionSpec


class SafetyEventKind(str, enum.Enum):
    NONFINITE_COMMAND = "nonfinite_command"
    WATCHDOG_TRIP = "watchdog_trip"
    WATCHDOG_CLEAR = "watchdog_clear"
    ESTOP = "estop"
    ESTOP_RESET = "estop_reset"
    STOP_REQUESTED = "stop_requested"
    EXCEPTION = "exception"
    LINK_LOST = "link_lost"
    RECONNECTED = "reconnected"
    DEADLINE_MISS = "deadline_miss"
    STOP_COMMAND = "stop_command"
    CONTROL_SOURCE = "control_source"  # teleop / takeover: the human or the policy took over, dead-man released
    INPUT_LOST = "input_lost"  # a human input device went away (the e-stop latches)


@dataclass(frozen=True)
class SafetyEvent:
    """time: monotonic seconds; kind: what happened; detail: human-readable specifics."""

    time: float
    kind: SafetyEventKind
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"time": self.time, "kind": self.kind.value, "detail": self.detail}


class EventLog:
    """Thread-safe list of safety events with optional listeners (called in the recording thread)."""

    def __init__(self) -> None:
        self._events: list[SafetyEvent] = []
        # re-entrant: a signal handler (EStop.install_signal) may record while the main thread
        # is inside record()
        self._lock = threading.RLock()
        self._listeners: list[Callable[[SafetyEvent], None]] = []

    def subscribe(self, listener: Callable[[SafetyEvent], None]) -> None:
        self._listeners.append(listener)

    def record(self, kind: SafetyEventKind, detail: str, when: float | None = None) -> SafetyEvent:
        event = SafetyEvent(time.monotonic() if when is None else when, kind, detail)
        with self._lock:
            self._events.append(event)
        for listener in self._listeners:
            listener(event)
        return event

    @property
    def events(self) -> list[SafetyEvent]:
        with self._lock:
            return list(self._events)

    def count(self, kind: SafetyEventKind) -> int:
        with self._lock:
            return sum(1 for e in self._events if e.kind == kind)


@dataclass(frozen=True)
class LimitsConfig:
    """Command limits from a launch file (action units; one entry per action component).

    low / high: clamp bounds, inside the action spec's bounds (``None`` = the spec's bounds).
    max_rate_per_s: largest change per second per component (``None`` = no slew limit).
    neutral: the command sent in place of a NaN/inf one and the slew limiter's starting point
        (``None`` = 0 clipped into the bounds).
    """

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    max_rate_per_s: tuple[float, ...] | None = None
    neutral: tuple[float, ...] | None = None


class CommandLimiter:
    """NaN/inf guard, clamp and slew-rate limit for one action vector per control step."""

    def __init__(
        self,
        action_spec: ActionSpec,
        limits: LimitsConfig | None = None,
        events: EventLog | None = None,
    ) -> None:
        limits = limits or LimitsConfig()
        n = action_spec.size
        spec_low = np.asarray(action_spec.low, np.float64)
        spec_high = np.asarray(action_spec.high, np.float64)

        def vector(name: str, values: Sequence[float] | None, default: np.ndarray) -> np.ndarray:
            if values is None:
                return default.copy()
            if len(values) != n:
                raise ValueError(
                    f"limits.{name} has {len(values)} entries; the action {action_spec.names} has {n}"
                )
            return np.asarray(values, np.float64)

        self.low = vector("low", limits.low, spec_low)
        self.high = vector("high", limits.high, spec_high)
        for i, name in enumerate(action_spec.names):
            if not spec_low[i] <= self.low[i] < self.high[i] <= spec_high[i]:
                raise ValueError(
                    f"limits for '{name}': need {spec_low[i]} <= low ({self.low[i]}) < high "
                    f"({self.high[i]}) <= {spec_high[i]} (the action spec's bounds)"
                )
        self.max_rate = vector("max_rate_per_s", limits.max_rate_per_s, np.full(n, np.inf))
        if np.any(~(self.max_rate > 0)):
            raise ValueError(f"limits.max_rate_per_s must be > 0 per component, got {self.max_rate}")
        self.neutral = vector("neutral", limits.neutral, np.clip(np.zeros(n), self.low, self.high))
        if np.any(self.neutral < self.low) or np.any(self.neutral > self.high):
            raise ValueError(f"limits.neutral {self.neutral} lies outside [{self.low}, {self.high}]")
        self.action_spec = action_spec
        self.events = events or EventLog()
        self._previous: np.ndarray | None = None
        self.clamped_steps = 0
        self.slew_limited_steps = 0
        self.nonfinite_steps = 0

    def reset(self) -> None:
        """Forget the previous command (the next one slews from ``neutral`` again)."""
        self._previous = None

    def limit(self, command: np.ndarray, dt: float) -> np.ndarray:
        """Return the safe command (float32, shape (n,)); ``dt`` = seconds since the last one."""
        raw = np.asarray(command, np.float64).reshape(-1)
        if raw.shape != (self.action_spec.size,):
            raise ValueError(
                f"command has shape {np.shape(command)}; expected ({self.action_spec.size},) "
                f"for actions {self.action_spec.names}"
            )
        previous = self.neutral if self._previous is None else self._previous
        if not np.all(np.isfinite(raw)):
            self.nonfinite_steps += 1
            self.events.record(
                SafetyEventKind.NONFINITE_COMMAND,
                f"policy returned {raw.tolist()}; sent neutral {self.neutral.tolist()}",
            )
            self._previous = self.neutral.copy()
            return self.neutral.astype(np.float32)
        out = np.clip(raw, self.low, self.high)
        if np.any(out != raw):
            self.clamped_steps += 1
        step = self.max_rate * max(float(dt), 0.0)
        slewed = np.clip(out, previous - step, previous + step)
        if np.any(slewed != out):
            self.slew_limited_steps += 1
        self._previous = slewed
        return slewed.astype(np.float32)


class Watchdog:
    """Trips when the newest frame is older than ``max_frame_age_s`` seconds."""

    def __init__(self, max_frame_age_s: float, events: EventLog | None = None) -> None:
        if not max_frame_age_s > 0:
            raise ValueError(f"max_frame_age_s must be > 0 seconds, got {max_frame_age_s!r}")
        self.max_frame_age_s = float(max_frame_age_s)
        self.events = events or EventLog()
        self.tripped = False
        self.trips = 0

    def check(self, frame_timestamp: float, now: float) -> bool:
        """Return True if the frame is fresh enough to act on; records trip / clear transitions."""
        age = now - frame_timestamp
        fresh = age <= self.max_frame_age_s
        if not fresh and not self.tripped:
            self.tripped = True
            self.trips += 1
            self.events.record(
                SafetyEventKind.WATCHDOG_TRIP,
                f"frame age {age * 1e3:.1f} ms > {self.max_frame_age_s * 1e3:.1f} ms; stop command sent",
                now,
            )
        elif fresh and self.tripped:
            self.tripped = False
            self.events.record(SafetyEventKind.WATCHDOG_CLEAR, f"fresh frame, age {age * 1e3:.1f} ms", now)
        return fresh


class EStop:
    """Latched emergency stop: once triggered it stays set until :meth:`reset`."""

    def __init__(self, events: EventLog | None = None) -> None:
        self.events = events or EventLog()
        self._set = threading.Event()
        self.reason: str | None = None
        self._previous_handlers: dict[int, Any] = {}

    @property
    def is_set(self) -> bool:
        return self._set.is_set()

    def trigger(self, reason: str) -> None:
        if self._set.is_set():
            return
        self.reason = reason
        self._set.set()
        self.events.record(SafetyEventKind.ESTOP, reason)

    def reset(self) -> None:
        if self._set.is_set():
            self.events.record(SafetyEventKind.ESTOP_RESET, f"cleared (was: {self.reason})")
        self.reason = None
        self._set.clear()

    def install_signal(self, signum: int = signal.SIGUSR1) -> None:
        """Trigger on ``signum`` (main thread only), e.g. ``kill -USR1 <pid>`` from another shell."""
        self._previous_handlers[signum] = signal.signal(
            signum, lambda num, frame: self.trigger(f"signal {signal.Signals(num).name}")
        )

    def uninstall_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()


class KeyboardEStop:
    """Background thread: 'e' or space on a terminal's stdin triggers the e-stop.

    Does nothing (``start()`` returns False) when ``stream`` is not a terminal.
    """

    KEYS = ("e", " ")

    def __init__(self, estop: EStop, stream: TextIO | None = None) -> None:
        self.estop = estop
        self.stream = stream or sys.stdin
        self._thread: threading.Thread | None = None
        self._old_attrs: list[Any] | None = None

    def start(self) -> bool:
        try:
            if not self.stream.isatty():
                return False
            import termios
            import tty

            fd = self.stream.fileno()
            self._old_attrs = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except (OSError, ValueError, ImportError):
            return False
        self._thread = threading.Thread(target=self._run, name="keyboard-estop", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while True:
            try:
                char = self.stream.read(1)
            except (OSError, ValueError):  # terminal closed / stream closed under us
                return
            if not char:
                return
            if char.lower() in self.KEYS:
                self.estop.trigger(f"keyboard key {char!r}")

    def stop(self) -> None:
        """Restore the terminal mode (the reader thread is a daemon and ends with the process)."""
        if self._old_attrs is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._old_attrs)
            self._old_attrs = None
