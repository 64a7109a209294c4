"""The operator's status line for human-driven runs (teleop, takeover), through ``logging``.

One line every ``interval_s`` and at once when the source changes (the human takes over, the
dead-man is released): who drives, the command sent per action, the input's dead-man / takeover
state, deadline misses, and the recording state (log path and steps written, or that nothing is
recorded). Also: :class:`StepSinks`, which hands each step to several sinks (run log + status).
"""

from __future__ import annotations

import logging
from typing import Any

from lnn_control.runtime.core.loop import StepRecord, StepSink
from lnn_control.runtime.core.stats import LoopStats

log = logging.getLogger("lnn_control.runtime.teleop")


class StepSinks:
    """A :class:`~lnn_control.runtime.core.loop.StepSink` that forwards to each of ``sinks`` in order."""

    def __init__(self, *sinks: StepSink | None) -> None:
        self.sinks = [sink for sink in sinks if sink is not None]

    def write_step(self, record: StepRecord) -> None:
        for sink in self.sinks:
            sink.write_step(record)

    def write_event(self, event: Any) -> None:
        for sink in self.sinks:
            sink.write_event(event)


class TeleopStatus:
    """A step sink that logs the status line; ``takeover``: show the takeover control (takeover mode)
    instead of the dead-man (teleop); ``recorder``: the run log writer (or None); ``stats``: the
    loop's (for deadline misses), set once the loop exists."""

    def __init__(
        self, action_names: tuple[str, ...], interval_s: float, recorder: Any = None, takeover: bool = False
    ) -> None:
        self.action_names = tuple(action_names)
        self.takeover = takeover
        self.interval_s = float(interval_s)
        self.recorder = recorder
        self.stats: LoopStats | None = None
        self.lines = 0
        self._steps = 0
        self._last_source: str | None = None
        self._next_time: float | None = None

    def write_step(self, record: StepRecord) -> None:
        self._steps += 1
        changed = record.source != self._last_source
        self._last_source = record.source
        due = self._next_time is None or record.write_time >= self._next_time
        if changed or due:
            log.info("%s", self.line(record))
            self.lines += 1
            self._next_time = record.write_time + self.interval_s

    def write_event(self, event: Any) -> None:
        return None

    def line(self, record: StepRecord) -> str:
        """The status text for ``record`` (also used by tests)."""
        values = record.sent if record.sent is not None else ()
        command = "  ".join(f"{name} {float(v):+.2f}" for name, v in zip(self.action_names, values))
        human = record.human
        if human is None:
            controls = "no input"
        elif self.takeover:
            controls = f"takeover {'held' if human.takeover else 'released'}"
        else:
            controls = f"dead-man {'held' if human.deadman else 'released'}"
        why = ""
        if record.source == "stop":
            why = {"estop": " (e-stop)", "watchdog": " (stale frame)"}.get(record.state, "")
        misses = self.stats.deadline_misses if self.stats is not None else 0
        return (
            f"{record.source.upper():6s}{why} {command} | {controls} | step {record.step}, misses {misses} | "
            f"{self.recording()}"
        )

    def recording(self) -> str:
        recorder = self.recorder
        if recorder is None:
            return "not recording"
        error = getattr(recorder, "error", None)
        if error is not None:
            return f"RECORDING FAILED ({error})"
        return f"REC {recorder.path} ({self._steps} steps)"
