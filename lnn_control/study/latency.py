"""Per-step latency of a policy: ``act`` on one camera frame at batch 1, one thread."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def policy_step_latency_ms(policy: Any, steps: int = 100, warmup: int = 10) -> float:
    """Median wall time (ms) of ``policy.act`` on a mid-grey frame with zero extras, after ``warmup``
    steps (JIT compilation, caches). Depends on the machine and its load; the report shows it
    apart from the results that must not depend on where cells ran."""
    spec = policy.config.observation_spec
    observation: dict[str, Any] = {"image": np.full(spec.image_shape, 128, np.uint8)}
    for name in spec.extras:
        observation[name] = np.zeros(1, np.float32)
    dt = 1.0 / float(policy.config.control_rate_hz)
    policy.reset()
    times = []
    for index in range(warmup + steps):
        started = time.perf_counter()
        policy.act(observation, dt)
        if index >= warmup:
            times.append(time.perf_counter() - started)
    policy.reset()
    return round(float(np.median(times)) * 1000.0, 4)
