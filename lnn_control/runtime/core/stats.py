"""Control-loop statistics: per-step timing series, counters, the live status line and the final
summary. Times in seconds (``time.monotonic()``)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "median": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    arr = np.asarray(values, np.float64)
    return {
        "count": int(arr.size),
        "median": float(np.median(arr)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


@dataclass
class LoopStats:
    """Per-step timing series (seconds) and counters, summarised by :meth:`summary`."""

    rate_hz: float
    latency: list[float] = field(default_factory=list)
    period_jitter: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    policy_dt: list[float] = field(default_factory=list)
    steps: int = 0
    policy_steps: int = 0
    human_steps: int = 0  # steps that sent a human command (teleop, takeover)
    hold_steps: int = 0
    stop_steps: int = 0
    deadline_misses: int = 0
    watchdog_trips: int = 0
    reconnects: int = 0
    stop_reason: str = ""

    def summary(self) -> dict[str, Any]:
        abs_jitter = [abs(v) for v in self.period_jitter]
        return {
            "rate_hz": self.rate_hz,
            "steps": self.steps,
            "policy_steps": self.policy_steps,
            "human_steps": self.human_steps,
            "hold_steps": self.hold_steps,
            "stop_steps": self.stop_steps,
            "deadline_misses": self.deadline_misses,
            "watchdog_trips": self.watchdog_trips,
            "reconnects": self.reconnects,
            "stop_reason": self.stop_reason,
            "latency_s": _summary(self.latency),
            "abs_period_jitter_s": _summary(abs_jitter),
            "lateness_s": _summary(self.lateness),
            "compute_s": _summary(self.compute),
            "policy_dt_s": _summary(self.policy_dt),
        }

    def status_line(self) -> str:
        lat = _summary(self.latency[-100:])
        jit = _summary([abs(v) for v in self.period_jitter[-100:]])
        return (
            f"step {self.steps}  latency p50 {lat['median'] * 1e3:.2f} ms p99 {lat['p99'] * 1e3:.2f} ms"
            f"  |jitter| p99 {jit['p99'] * 1e3:.3f} ms  misses {self.deadline_misses}"
            f"  watchdog trips {self.watchdog_trips}  stops {self.stop_steps}"
        )


def print_summary(stats: LoopStats, stream: TextIO | None = None) -> None:
    """Final statistics as a few readable lines (default: stdout)."""
    stream = stream or sys.stdout
    s = stats.summary()
    ms = 1e3
    print(
        f"{s['steps']} steps at {s['rate_hz']:g} Hz ({s['policy_steps']} policy, {s['human_steps']} human, "
        f"{s['hold_steps']} hold, "
        f"{s['stop_steps']} stop); stop reason: {s['stop_reason']}",
        file=stream,
    )
    for key, label in (
        ("latency_s", "sense->act latency"),
        ("abs_period_jitter_s", "|period jitter|"),
        ("compute_s", "step compute"),
    ):
        v = s[key]
        print(
            f"  {label:<20} median {v['median'] * ms:8.3f} ms   p99 {v['p99'] * ms:8.3f} ms   "
            f"max {v['max'] * ms:8.3f} ms",
            file=stream,
        )
    print(
        f"  deadline misses {s['deadline_misses']}   watchdog trips {s['watchdog_trips']}   "
        f"reconnects {s['reconnects']}",
        file=stream,
    )
