"""``lnn-control bench explain``: wall time of ``lnn-control explain`` on a lane episode (target ≤ 120 s
for 30 s of driving on a 2-core machine), with the time of each phase."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from typing import Any

TARGET_S = 120.0


@dataclass(frozen=True)
class ExplainBenchSettings:
    """policy / task / backend / condition / seed / duration_s: the explained episode; video: include
    the video (as the command does by default); samples: SmoothGrad copies per frame."""

    policy: str = "lane_keeping_ncp19"
    task: str = "lane-keeping"
    backend: str = "pybullet"
    condition: str = "rain:3"
    seed: int = 1000
    duration_s: float = 30.0
    video: bool = True
    samples: int = 8


def run_explain_bench(settings: ExplainBenchSettings, out: str | None = None) -> dict[str, Any]:
    """Run explain once (into ``out`` or a temporary folder) and report its timings."""
    import torch

    from lnn_control.explain.pipeline import ExplainConfig, run_explain
    from lnn_control.explain.saliency import SmoothGradConfig

    with tempfile.TemporaryDirectory(prefix="bench-explain-") as scratch:
        config = ExplainConfig(
            policy=settings.policy, out=out or scratch, task=settings.task, backend=settings.backend,
            condition=settings.condition, seed=settings.seed, duration_s=settings.duration_s,
            smoothgrad=SmoothGradConfig(samples=settings.samples), video=settings.video,
        )
        start = time.perf_counter()
        summary = run_explain(config)
        wall = time.perf_counter() - start
    return {
        "settings": settings.__dict__,
        "episode_s": summary["duration_s"],
        "steps": summary["steps"],
        "wall_s": round(wall, 3),
        "phases_s": summary["timing_s"],
        "target_s": TARGET_S,
        "within_target": wall <= TARGET_S,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
    }


def format_explain_report(report: dict[str, Any]) -> str:
    phases = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in report["phases_s"].items() if k != "total_s")
    verdict = "within" if report["within_target"] else "OVER"
    return (f"explain: {report['steps']} steps ({report['episode_s']:.1f} s of driving) in {report['wall_s']:.1f} s "
            f"wall ({verdict} the {report['target_s']:.0f} s target)\n  {phases}")
