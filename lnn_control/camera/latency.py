"""Camera→command latency of a run, and the ``delay`` condition that matches it in training.

The loop logs, for every step, ``latency_s`` = the time ``robot.write()`` returned minus the
capture time stamped on the frame it acted on (``/loop/timing``). A camera stamps a frame when
the driver hands it over, so the time from exposure to hand-over (USB transfer, driver buffers;
typically 30–100 ms for a USB camera, measure it by filming a millisecond clock on a screen and
comparing the logged frame with the clock) is not in it: pass it as ``camera_latency_s``.

In the simulators a command reaches the actuators in the step whose frame it was computed from;
the ``delay:s`` condition holds it back ``s`` policy steps (``DELAY_STEPS_BY_SEVERITY``). The
matching severity is the one whose steps are nearest to (median latency + camera latency) ×
policy rate; below half a step no delay condition is needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LatencyReport:
    """Latency figures of one run log, seconds; ``steps_late``: (median + camera) × rate;
    ``condition``: the matching training condition (``"delay:2"``), ``"clean"`` below half a
    step, or None when the delay table is not installed (``[sim]`` extra)."""

    log: str
    rate_hz: float
    steps: int
    median_s: float
    p90_s: float
    p99_s: float
    camera_latency_s: float
    steps_late: float
    condition: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        ms = 1e3
        total = self.median_s + self.camera_latency_s
        advice = (
            f"train with condition {self.condition}" if self.condition
            else "install the [sim] extra to map this onto a delay severity"
        )
        return [
            f"{self.log}: {self.steps} policy steps at {self.rate_hz:g} Hz",
            f"  loop camera->command latency  median {self.median_s * ms:.1f} ms  p90 {self.p90_s * ms:.1f} ms  "
            f"p99 {self.p99_s * ms:.1f} ms",
            f"  + camera (not measured by the loop) {self.camera_latency_s * ms:.1f} ms = {total * ms:.1f} ms "
            f"= {self.steps_late:.2f} policy steps -> {advice}",
        ]


def delay_condition(steps_late: float) -> str | None:
    """``delay:s`` whose step count is nearest to ``steps_late``; ``clean`` below half a step; None
    without the ``[sim]`` extra (the table lives with the env wrappers)."""
    try:
        from lnn_control.envs.wrappers.dynamics import DELAY_STEPS_BY_SEVERITY
    except ModuleNotFoundError:
        return None
    if steps_late < 0.5:
        return "clean"
    best = min(range(len(DELAY_STEPS_BY_SEVERITY)), key=lambda i: abs(DELAY_STEPS_BY_SEVERITY[i] - steps_late))
    return f"delay:{best + 1}"


def latency_report(log_path: str | Path, camera_latency_s: float = 0.0) -> LatencyReport:
    """Read ``/loop/timing`` of a run log (steps where the policy acted on a new frame) and
    summarise the latency; ValueError names the log when it holds no such step."""
    from lnn_control.runtime.logs.runlog import read_run_log

    if not (math.isfinite(camera_latency_s) and camera_latency_s >= 0):
        raise ValueError(f"camera latency must be >= 0 s, got {camera_latency_s}")
    path = Path(log_path)
    if not path.is_file():
        raise ValueError(f"run log {path} does not exist")
    log = read_run_log(path)
    latencies = np.array([
        m.payload["latency_s"] for m in log.topic("/loop/timing")
        if m.payload.get("state") == "run" and m.payload.get("latency_s") is not None
    ], np.float64)
    if latencies.size == 0:
        raise ValueError(f"run log {path} holds no step where the policy acted on a new frame (/loop/timing state run)")
    rate = float(json.loads(log.metadata.get("rate_hz", "nan")))
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"run log {path} does not record its rate_hz; it was not written by 'lnn-control run'")
    median = float(np.median(latencies))
    steps_late = (median + camera_latency_s) * rate
    return LatencyReport(
        str(path), rate, int(latencies.size), median, float(np.percentile(latencies, 90)),
        float(np.percentile(latencies, 99)), float(camera_latency_s), float(steps_late), delay_condition(steps_late),
    )
