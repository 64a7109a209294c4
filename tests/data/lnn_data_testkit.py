"""Run logs for the dataset tests, written by the real MCAP writer from real loop step records.

Source-marked logs (``/commands/sent`` ``source``, ``/commands/human``, ``mode`` / ``takeover``
metadata) come straight from :class:`RunLogWriter`. Two variants it does not write by itself are
made by :class:`VariantRunLogWriter`, which only leaves messages out: a log of the format before
source marking (``legacy``: no ``source``, no stop-step ``/commands/sent``, no ``/commands/human``)
and a log without camera frames (``frames=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.runtime.core.arbiter import HumanCommand
from lnn_control.runtime.core.loop import StepRecord
from lnn_control.runtime.logs.runlog import LogConfig, RunLogWriter

#: the shipped lane policy's specs: the tests convert with ``--spec lane_keeping_ncp19``
SPEC = "lane_keeping_ncp19"
ACTIONS = ("steering",)
H, W = 64, 128
PERIOD = 0.02
T0 = 100.0


@dataclass
class Step:
    """What one logged control period holds. ``sent`` None: the loop sent the stop command.
    ``applied`` None: the robot reported nothing (the label falls back to ``sent``).
    ``new_frame`` False: the loop re-used the previous step's frame (``hold``).
    ``human``: the human input's command this step (a human input is attached)."""

    sent: float | None
    applied: float | None = None
    source: str = "policy"
    state: str = "run"
    new_frame: bool = True
    speed: float = 1.5
    human: float | None = None


@dataclass
class WrittenLog:
    """What the writer was given, per step, to compare the dataset against."""

    path: Path
    images: list[np.ndarray] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    slot_times: list[float] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def label(self, k: int) -> float:
        step = self.steps[k]
        value = step.applied if step.applied is not None else step.sent
        assert value is not None
        return value


class VariantRunLogWriter(RunLogWriter):
    """The real writer, leaving out what a legacy (pre source marking) log or a log without camera
    frames does not hold; everything it writes is the real writer's."""

    def __init__(self, *args: Any, legacy: bool = False, frames: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.legacy = legacy
        self.frames = frames
        self._stop_step = False

    def write_step(self, record: StepRecord) -> None:
        self._stop_step = record.source == "stop"
        super().write_step(record)

    def _add(self, topic: str, payload: dict[str, Any], log_ns: int, sequence: int = 0) -> None:
        if topic == "/camera/image" and not self.frames:
            return
        if self.legacy:
            if topic == "/commands/human" or (topic == "/commands/sent" and self._stop_step):
                return
            if topic == "/commands/sent":
                payload = {k: v for k, v in payload.items() if k != "source"}
        super()._add(topic, payload, log_ns, sequence)


def write_log(
    path: Path,
    steps: Sequence[Step],
    *,
    legacy: bool = False,
    frames: bool = True,
    mode: str | None = "run",
    takeover: str | None = None,
    config: LogConfig | None = None,
    size: tuple[int, int] = (H, W),
    seed: int = 0,
    policy: str | None = SPEC,
) -> WrittenLog:
    """Write ``steps`` at 50 Hz (slot k at ``T0 + k * PERIOD``) with random frames of ``size``."""
    rng = np.random.default_rng(seed)
    metadata: dict[str, Any] = {"rate_hz": 1 / PERIOD, "action_units": ["normalized"], "robot_kind": "sim"}
    if policy is not None:
        metadata["policy"] = policy
    if not legacy:
        metadata.update(mode=mode, takeover=takeover)
    written = WrittenLog(path)
    config = config or LogConfig(image_format="png")
    with VariantRunLogWriter(path, ACTIONS, config, metadata, legacy=legacy, frames=frames) as log:
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        frame_time = T0 - 0.003
        for k, step in enumerate(steps):
            slot = T0 + k * PERIOD
            if step.new_frame:
                image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                frame_time = slot - 0.003 + 0.0005 * (k % 3)  # measured, irregular capture times
            stop = step.sent is None  # the loop logs the neutral command it stands for
            sent = np.array([0.0 if stop else step.sent], np.float32)
            applied = None if step.applied is None else np.array([step.applied], np.float32)
            human = None if step.human is None else HumanCommand(
                np.array([step.human], np.float32), deadman=True, takeover=step.source == "human", time=slot)
            record = StepRecord(
                step=k, slot_time=slot, wake_time=slot + 1e-4, frame_timestamp=frame_time, frame_index=k,
                state=step.state, dt=PERIOD if step.state == "run" else None,
                command=None if stop else sent, sent=sent, applied=None if stop else applied,
                write_time=slot + 2e-3, latency=5e-3, compute_time=1.9e-3, neurons=None, image=image,
                extras={"speed": step.speed}, source="stop" if stop else step.source, human=human,
            )
            log.write_step(record)
            written.images.append(image)
            written.frame_times.append(frame_time)
            written.slot_times.append(slot)
            written.steps.append(step)
    return written


def policy_steps(count: int, start: float = 0.0) -> list[Step]:
    """``count`` policy steps with distinct commands (applied = sent)."""
    return [Step(sent=round(start + 0.01 * k, 4), applied=round(start + 0.01 * k, 4)) for k in range(count)]


def human_steps(count: int, start: float = -0.5) -> list[Step]:
    """``count`` human steps; the robot applies a slightly different value than was sent."""
    return [
        Step(sent=round(start + 0.02 * k, 4), applied=round(start + 0.02 * k - 0.001, 4), source="human",
             human=round(start + 0.02 * k, 4))
        for k in range(count)
    ]


def stop_steps(count: int) -> list[Step]:
    return [Step(sent=None, state="watchdog", new_frame=False) for _ in range(count)]
