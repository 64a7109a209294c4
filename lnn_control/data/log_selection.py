"""Which steps of a run log become dataset steps, and how they split into episodes.

Rules (in this order; the first that applies names why a step is left out):

==================  =====================================================  ==============
reason              the step ...                                           splits episode
==================  =====================================================  ==============
``trimmed``         lies in the first ``trim_start_s`` / last ``trim_end_s``  yes
``dropped``         lies in a ``drop`` range (``start_s <= t < end_s``)    yes
``stop``            sent the stop command (source ``stop``)               yes
``not_selected``    has a source ``only`` leaves out                      yes
``no_label``        has no finite command to learn                        yes
``repeated_frame``  acted on a frame an earlier step already acted on      no
                    (the loop's ``hold``: no new frame, command re-sent)
``no_frame``        has no logged frame (``log.image_rate_hz`` below the   no
                    loop rate: only the steps with a frame are kept)
==================  =====================================================  ==============

An **episode** is a maximal run of kept steps from one log with one source: a splitting reason or
a change of source (policy ↔ human) or of simulator episode (a simulated robot reset to a new road
or forest: the log's ``episode`` field) ends it. Inside an episode, frames follow each other in time
with their measured capture times, so the network integrates over the real gaps; across a stop, a
cut or a hand-over there is no continuity to learn from, hence a new episode. Times ``t`` are
seconds since the log's first step (slot time), per log.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, get_args

from lnn_control.data.log_steps import LogStep, RunLogSteps

Only = Literal["human", "interventions"]
ONLY_CHOICES: tuple[str, ...] = get_args(Only)


class Exclusion(str, enum.Enum):
    """Why a step is not in the dataset (see the module docstring)."""

    TRIMMED = "trimmed"
    DROPPED = "dropped"
    STOP = "stop"
    NOT_SELECTED = "not_selected"
    NO_LABEL = "no_label"
    REPEATED_FRAME = "repeated_frame"
    NO_FRAME = "no_frame"
    SHORT_SEGMENT = "short_segment"

    @property
    def splits(self) -> bool:
        return self not in (Exclusion.REPEATED_FRAME, Exclusion.NO_FRAME)


@dataclass(frozen=True)
class TimeRange:
    """``start_s <= t < end_s``, seconds since a log's first step."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_s < self.end_s:
            raise ValueError(f"time range {self.start_s}:{self.end_s} needs 0 <= start < end (seconds)")

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """``"A:B"`` in seconds, e.g. ``"12.5:14"``."""
        parts = text.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, end = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"--drop {text!r}: expected START:END in seconds, e.g. 12.5:14") from None
        return cls(start, end)

    def __contains__(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class Selection:
    """What to keep of every log.

    trim_start_s / trim_end_s: seconds cut from each log's start / end (>= 0). drop: time ranges cut
    from each log. only: ``human`` keeps the human-driven steps (teleop, takeovers);
    ``interventions`` keeps the human steps of policy runs (``mode: run``, takeover corrections);
    None keeps policy and human steps. min_steps: shorter episodes are left out (>= 1).
    """

    trim_start_s: float = 0.0
    trim_end_s: float = 0.0
    drop: tuple[TimeRange, ...] = ()
    only: Only | None = None
    min_steps: int = 1

    def __post_init__(self) -> None:
        for name in ("trim_start_s", "trim_end_s"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value}")
        if self.only is not None and self.only not in ONLY_CHOICES:
            raise ValueError(f"only {self.only!r} is not one of {list(ONLY_CHOICES)} (or None: every source)")
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) or self.min_steps < 1:
            raise ValueError(f"min_steps must be an integer >= 1, got {self.min_steps!r}")

    def to_dict(self) -> dict[str, object]:
        return {
            "trim_start_s": self.trim_start_s,
            "trim_end_s": self.trim_end_s,
            "drop": [[r.start_s, r.end_s] for r in self.drop],
            "only": self.only,
            "min_steps": self.min_steps,
        }


@dataclass
class Segment:
    """One future episode: consecutive kept steps of one log, all with the same ``source``."""

    source: str
    steps: list[LogStep]


@dataclass
class SegmentPlan:
    """The episodes of one log and how many steps were left out, by :class:`Exclusion` value."""

    segments: list[Segment]
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def kept_steps(self) -> int:
        return sum(len(s.steps) for s in self.segments)


def _wanted(source: str, log: RunLogSteps, only: Only | None) -> bool:
    if only is None:
        return True
    if only == "human":
        return source == "human"
    return source == "human" and log.mode == "run"


def _exclusion(step: LogStep, log: RunLogSteps, selection: Selection, end_s: float,
               last_frame_s: float | None) -> Exclusion | None:
    t = step.time_s
    if t < selection.trim_start_s or t > end_s - selection.trim_end_s:
        return Exclusion.TRIMMED
    if any(t in r for r in selection.drop):
        return Exclusion.DROPPED
    if step.source == "stop":
        return Exclusion.STOP
    if not _wanted(step.source, log, selection.only):
        return Exclusion.NOT_SELECTED
    if step.label is None:
        return Exclusion.NO_LABEL
    if last_frame_s is not None and step.frame_timestamp_s <= last_frame_s:
        return Exclusion.REPEATED_FRAME
    if step.image is None:
        return Exclusion.NO_FRAME
    return None


def plan_segments(log: RunLogSteps, selection: Selection) -> SegmentPlan:
    """Split ``log`` into episodes by the rules in the module docstring."""
    excluded: Counter[str] = Counter()
    segments: list[Segment] = []
    current: Segment | None = None
    end_s = log.steps[-1].time_s if log.steps else 0.0
    last_frame_s: float | None = None

    def close() -> None:
        nonlocal current
        if current is not None:
            if len(current.steps) >= selection.min_steps:
                segments.append(current)
            else:
                excluded[Exclusion.SHORT_SEGMENT.value] += len(current.steps)
        current = None

    for step in log.steps:
        reason = _exclusion(step, log, selection, end_s, last_frame_s)
        last_frame_s = step.frame_timestamp_s if last_frame_s is None else max(last_frame_s, step.frame_timestamp_s)
        if reason is not None:
            excluded[reason.value] += 1
            if reason.splits:
                close()
            continue
        if current is not None and (current.source != step.source or current.steps[-1].episode != step.episode):
            close()  # a new source, or the simulator reset to a new episode (a jump, not driving)
        if current is None:
            current = Segment(step.source, [])
        current.steps.append(step)
    close()
    return SegmentPlan(segments, dict(excluded))
