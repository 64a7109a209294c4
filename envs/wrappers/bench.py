"""Cost of each image corruption: median milliseconds per frame, per severity (a benchmark,
not a test). Used by ``lnn-control conditions --bench FILE.json``."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lnn_control.envs.wrappers.corruptions import CORRUPTIONS, SEVERITIES, check_image
from lnn_control.envs.wrappers.image import stream_rng


def bench_corruptions(
    frame: np.ndarray, names: Sequence[str] | None = None, repeats: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Time ``CORRUPTIONS[name](frame, s, rng)`` ``repeats`` times per severity (after 3 warm-up
    calls); returns ``{"frame_shape", "repeats", "unit": "ms", "corruptions": {name: {"1".."5":
    median ms, "max": worst severity's median}}}``."""
    check_image(frame, "frame")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer ≥ 1, got {repeats!r}")
    names = list(CORRUPTIONS) if names is None else list(names)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown image corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
        function = CORRUPTIONS[name].function
        rng = stream_rng(seed, name)
        per_severity: dict[str, float] = {}
        for severity in SEVERITIES:
            for _ in range(3):
                function(frame, severity, rng)
            times = np.empty(repeats)
            for i in range(repeats):
                start = time.perf_counter()
                function(frame, severity, rng)
                times[i] = time.perf_counter() - start
            per_severity[str(severity)] = round(float(np.median(times)) * 1e3, 4)
        per_severity["max"] = max(per_severity.values())
        results[name] = per_severity
    return {
        "frame_shape": list(frame.shape),
        "repeats": repeats,
        "unit": "ms",
        "machine": platform.processor() or platform.machine(),
        "corruptions": results,
    }


def format_bench(report: dict[str, Any]) -> str:
    """A text table of :func:`bench_corruptions`' report."""
    h, w = report["frame_shape"][:2]
    lines = [f"median ms per frame ({w}x{h}), {report['repeats']} repeats", f"{'corruption':<12}" + "".join(
        f"{'s' + str(s):>8}" for s in SEVERITIES) + f"{'max':>8}"]
    for name, row in report["corruptions"].items():
        lines.append(f"{name:<12}" + "".join(f"{row[str(s)]:>8.3f}" for s in SEVERITIES) + f"{row['max']:>8.3f}")
    return "\n".join(lines)
