"""Environment throughput with the camera on: env steps per second for each physics backend.

Each step is one policy period (physics substeps + camera frame + task logic), driven by the
privileged expert so the car stays on the road; only ``env.step`` is timed. The figure is
the median over several chunks of steps (robust to a noisy shared machine).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lnn_control.seeds import HELD_OUT_SEED_START
from lnn_control.tasks import get_task


@dataclass(frozen=True)
class EnvBenchSettings:
    """steps: timed env steps per backend; chunks: how many medians-of-chunks to take."""

    task: str = "lane-keeping"
    backends: tuple[str, ...] = ("pybullet", "mujoco")
    steps: int = 600
    chunks: int = 6
    warmup: int = 20

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.steps < self.chunks or self.chunks < 1:
            raise ValueError(f"steps ({self.steps}) must be ≥ chunks ({self.chunks}) ≥ 1")


def bench_backend(settings: EnvBenchSettings, backend: str) -> dict[str, Any]:
    """Time ``settings.steps`` env steps on one backend; returns steps/s and per-step ms."""
    import gymnasium as gym
    import numpy as np

    import lnn_control.envs  # noqa: F401  (registers the ids)

    env = gym.make(get_task(settings.task).env_id, backend=backend)
    seed = HELD_OUT_SEED_START
    try:
        env.reset(seed=seed)
        task_env: Any = env.unwrapped  # a task env: control_dt, expert_action() (lnn_control.tasks)
        per_step: list[float] = []
        while len(per_step) < settings.steps + settings.warmup:
            action = np.asarray(task_env.expert_action(), np.float32)
            started = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            per_step.append(time.perf_counter() - started)
            if terminated or truncated:
                seed += 1
                env.reset(seed=seed)
    finally:
        env.close()
    timed = per_step[settings.warmup :]
    size = len(timed) // settings.chunks
    chunk_rates = [size / sum(timed[i * size : (i + 1) * size]) for i in range(settings.chunks)]
    ordered = sorted(timed)
    return {
        "steps_per_s": statistics.median(chunk_rates),
        "step_ms_median": 1000 * statistics.median(timed),
        "step_ms_p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "steps": len(timed),
    }


def run_env_bench(settings: EnvBenchSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    report: dict[str, Any] = {"task": settings.task, "backends": {}}
    for backend in settings.backends:
        progress(f"{settings.task} on {backend}: {settings.steps} steps")
        report["backends"][backend] = bench_backend(settings, backend)
    return report


def format_env_table(report: dict[str, Any]) -> str:
    lines = [f"{report['task']}: env steps with camera (one process)", "backend    steps/s   step ms (median / p99)"]
    for backend, figures in report["backends"].items():
        lines.append(
            f"{backend:<10} {figures['steps_per_s']:7.1f}   {figures['step_ms_median']:.2f} / {figures['step_ms_p99']:.2f}"
        )
    return "\n".join(lines)
