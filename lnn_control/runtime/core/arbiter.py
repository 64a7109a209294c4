"""Who commands the robot in a control period: the policy, a human, or nobody (the stop command).

Three modes (:class:`ControlMode`):

- ``run``: the policy drives; no human input device.
- ``teleop``: a human drives through a :class:`HumanInput`; no policy. While the input's dead-man is
  held its command is sent, released => the stop command in that same period.
- ``takeover`` (human-gated DAgger): the policy drives and keeps running on every new frame; while
  the input's takeover control is held the human's command is sent instead, released => the
  policy's again, in the period the input reports it.

A human input device is polled once per period, after the frame was read, in the loop's thread.
Every safety rule of the loop (clamp, slew limit, watchdog, e-stop) applies to the human's command
exactly as to the policy's: the arbiter only picks the source, :class:`CommandLimiter` and the
robot see a command like any other. Source changes are recorded as safety events
(``control_source``); an input device that disappears latches the e-stop (``input_lost``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lnn_control.runtime.core.safety import EStop, EventLog, SafetyEventKind
from lnn_control.spec import ActionSpec


class ControlMode(str, enum.Enum):
    RUN = "run"  # the policy drives
    TELEOP = "teleop"  # a human drives, dead-man gated
    TAKEOVER = "takeover"  # the policy drives, a human takes over while holding the takeover control


class CommandSource(str, enum.Enum):
    """Where a step's command came from (``source`` of ``/commands/sent`` in the run log)."""

    POLICY = "policy"
    HUMAN = "human"
    STOP = "stop"  # the stop / neutral command: safety (watchdog, e-stop) or dead-man release


@dataclass(frozen=True)
class HumanCommand:
    """One sample of a human input device.

    values: the human's command in action units, in the robot's action order (before the limiter).
    deadman: the dead-man control is held (teleop: released => stop).
    takeover: the takeover control is held (takeover mode: held => the human drives).
    estop: the device asks to latch the e-stop (a key or button); quit: asks to end the run.
    time: when the sample was taken, monotonic seconds.
    """

    values: np.ndarray
    deadman: bool
    takeover: bool
    time: float
    estop: bool = False
    quit: bool = False


class InputDeviceError(RuntimeError):
    """A human input device cannot be used (none found, no permission, not a terminal); the message
    says what to check."""


class InputLostError(InputDeviceError):
    """The human input device went away (unplugged, stream closed); the message says which."""


class HumanInput(Protocol):
    """A robot-independent source of human commands (keyboard, gamepad).

    ``open()`` claims the device (a failure raises with what to check, before the robot moves);
    ``bind(action_spec, neutral)`` maps it onto the robot's actions (ValueError naming the setting
    that does not fit); ``poll(now, current)`` returns the newest sample without blocking
    (``current``: the command last sent, or None after a stop) or raises :class:`InputLostError`;
    ``close()`` releases the device and restores the terminal. ``name`` is ``keyboard`` / ``gamepad``.
    """

    name: str

    def open(self) -> None: ...

    def bind(self, action_spec: ActionSpec, neutral: np.ndarray) -> None: ...

    def poll(self, now: float, current: np.ndarray | None) -> HumanCommand: ...

    def close(self) -> None: ...


class Arbiter:
    """Polls the human input (if any) and picks each period's :class:`CommandSource`.

    ``request_stop(reason)`` ends the run (the input's quit control). Construction checks that the
    mode has what it needs: ``teleop`` and ``takeover`` a human input, ``run`` and ``takeover`` a policy.
    """

    def __init__(
        self,
        mode: ControlMode,
        human: HumanInput | None,
        has_policy: bool,
        events: EventLog,
        estop: EStop,
        request_stop: Callable[[str], None],
    ) -> None:
        mode = ControlMode(mode)
        if mode in (ControlMode.TELEOP, ControlMode.TAKEOVER) and human is None:
            raise ValueError(f"control mode {mode.value!r} needs a human input device (keyboard or gamepad)")
        if mode == ControlMode.RUN and human is not None:
            raise ValueError("control mode 'run' takes no human input; use mode 'takeover' or 'teleop'")
        if mode != ControlMode.TELEOP and not has_policy:
            raise ValueError(f"control mode {mode.value!r} needs a policy; only 'teleop' runs without one")
        self.mode = mode
        self.human = human
        self.events = events
        self.estop = estop
        self._request_stop = request_stop
        self._lost = False
        self._last_source: CommandSource | None = None

    def poll(self, now: float, current: np.ndarray | None) -> HumanCommand | None:
        """The human input's newest sample (None without a device, or after it was lost); acts on
        its e-stop and quit requests."""
        if self.human is None or self._lost:
            return None
        try:
            command = self.human.poll(now, current)
        except InputLostError as exc:
            self._lost = True
            self.events.record(SafetyEventKind.INPUT_LOST, f"{self.human.name}: {exc}")
            self.estop.trigger(f"{self.human.name} input lost: {exc}")
            return None
        if command.estop:
            self.estop.trigger(f"{self.human.name} e-stop control")
        if command.quit:
            self._request_stop(f"{self.human.name} quit control")
        return command

    def choose(self, human: HumanCommand | None, safety_stop: bool) -> CommandSource:
        """The source for this period; ``safety_stop``: the watchdog or the e-stop already decided."""
        if safety_stop:
            source = CommandSource.STOP
        elif self.mode == ControlMode.RUN:
            source = CommandSource.POLICY
        elif self.mode == ControlMode.TELEOP:
            source = CommandSource.HUMAN if human is not None and human.deadman else CommandSource.STOP
        else:
            source = CommandSource.HUMAN if human is not None and human.takeover else CommandSource.POLICY
        self._note(source, safety_stop)
        return source

    def _note(self, source: CommandSource, safety_stop: bool) -> None:
        previous, self._last_source = self._last_source, source
        if self.mode == ControlMode.RUN or previous in (None, source) or safety_stop:
            return
        name = self.human.name if self.human is not None else "input"
        if source == CommandSource.HUMAN:
            detail = f"{name}: the human drives" + (" (takeover)" if self.mode == ControlMode.TAKEOVER else "")
        elif source == CommandSource.POLICY:
            detail = f"{name}: takeover released, the policy drives"
        else:
            detail = f"{name}: dead-man released, stop command sent"
        self.events.record(SafetyEventKind.CONTROL_SOURCE, detail)
