"""The simulator's privileged expert at the gamepad: a benchmark stand-in for a human driver.

``lnn-control teleop --input expert`` (sim robots with ``pacing: lockstep`` only) drives exactly the
path a real gamepad drives: after every simulator frame the task's expert action is turned back into
raw stick readings (:meth:`~lnn_control.runtime.inputs.mapping.AxisMap.raw_for`) and written as
kernel ``struct input_event`` records (axes, the dead-man button held, ``SYN_REPORT``) into a FIFO
that a :class:`~lnn_control.runtime.inputs.gamepad.GamepadInput` reads, parses, maps and hands to the
loop's arbiter and safety layer like any pad. Like a person, the expert reacts to the frame it has
seen: its command lands in the loop's next poll at the earliest. Used to measure the data loop
(teleop -> ``dataset from-log`` -> fine-tune) without a human in the benchmark.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.runtime.core.robot import RobotError
from lnn_control.runtime.inputs.config import GamepadConfig
from lnn_control.runtime.inputs.evdev_events import (
    BUTTON_CODES,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    SYN_REPORT,
    InputEvent,
)
from lnn_control.runtime.inputs.gamepad import GamepadInput
from lnn_control.runtime.inputs.mapping import AxisMap, resolve_axes
from lnn_control.spec import ActionSpec

STICK_RANGE = (-32768, 32767)
"""Raw range of the virtual pad's axes (an Xbox pad's sticks)."""


def expert_pad_config(config: GamepadConfig, fifo: Path) -> GamepadConfig:
    """The launch file's gamepad settings (mapping, axes, dead-man) reading ``fifo``, axes without a
    range of their own given the stick range (a FIFO has no device to report ranges)."""
    return replace(config, device=str(fifo), stream_range=config.stream_range or STICK_RANGE, grab=False)


def expert_of(env: Any) -> Any:
    """The env's ``expert_action`` method; RobotError when the task has no privileged expert."""
    expert = getattr(env.unwrapped, "expert_action", None)
    if expert is None:
        raise RobotError(f"env {type(env.unwrapped).__name__} has no expert_action(); --input expert needs a task "
                         "with a privileged expert (both shipped tasks have one)")
    return expert


class ExpertPad:
    """Writes the expert's action for each simulator frame as gamepad events into a FIFO.

    Attach :meth:`on_frame` to a :class:`~lnn_control.runtime.sim.lockstep.LockstepSimRobot`'s
    ``frame_listeners``; the env must have ``expert_action()`` (both shipped tasks do).
    """

    def __init__(self, config: GamepadConfig, fifo: Path) -> None:
        self.config = config
        self.fifo = fifo
        self._fd: int | None = None
        self._axes: list[AxisMap] = []
        self.frames_written = 0

    @property
    def bound(self) -> bool:
        return bool(self._axes)

    def bind(self, action_spec: ActionSpec) -> None:
        """Resolve the axes for the robot's actions (the same resolution the pad reader does)."""
        self._axes = resolve_axes(self.config, action_spec, {})

    def on_frame(self, env: Any) -> None:
        """Write one event frame: every axis at the expert's action, the dead-man held."""
        action = np.asarray(expert_of(env)(), dtype=np.float64).reshape(-1)
        now = time.time()
        events = [InputEvent(now, EV_KEY, BUTTON_CODES[self.config.deadman], 1)]
        events += [InputEvent(now, EV_ABS, axis.code, axis.raw_for(float(action[axis.index]))) for axis in self._axes]
        events.append(InputEvent(now, EV_SYN, SYN_REPORT, 0))
        self._write(b"".join(event.pack() for event in events))
        self.frames_written += 1

    def _write(self, data: bytes) -> None:
        if self._fd is None:  # the reader opened its end before the robot connected
            self._fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(self._fd, data)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            # the reader fell a pipe-buffer behind: drop this frame, as a pad's kernel buffer would

    def close(self) -> None:
        """Close the FIFO's writing end (the reader then sees the pad leave)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ExpertGamepad:
    """A FIFO in a private temporary folder, the :class:`GamepadInput` that reads it and the
    :class:`ExpertPad` that writes it; ``close()`` removes the FIFO."""

    def __init__(self, config: GamepadConfig) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="lnn-expert-pad-")
        fifo = Path(self._folder.name) / "pad.fifo"
        os.mkfifo(fifo, 0o600)
        pad_config = expert_pad_config(config, fifo)
        self.input = GamepadInput(pad_config)
        self.pad = ExpertPad(pad_config, fifo)

    def attach(self, robot: Any) -> None:
        """Hook the pad to ``robot``'s frames; refuses a robot that does not offer them."""
        listeners = getattr(robot, "frame_listeners", None)
        if listeners is None:
            raise ValueError(
                f"--input expert needs a simulated robot stepped in the loop (robot.kind: sim with "
                f"robot.sim.pacing: lockstep), got {type(robot).__name__}"
            )

        def first_frame(env: Any) -> None:
            if not self.pad.bound:
                expert_of(env)  # a task without an expert fails before the mapping is looked at
                try:
                    self.pad.bind(robot.action_spec)
                except ValueError as exc:
                    raise RobotError(f"--input expert drives through the launch file's gamepad mapping: {exc}") from exc
            self.pad.on_frame(env)

        listeners.append(first_frame)

    def close(self) -> None:
        self.pad.close()
        self._folder.cleanup()


__all__ = ["STICK_RANGE", "ExpertGamepad", "ExpertPad", "expert_of", "expert_pad_config"]
