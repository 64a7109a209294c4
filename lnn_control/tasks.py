"""The tasks the pipeline knows: name -> Gymnasium id, launch file, metrics.

``collect``, ``train``, ``eval`` and ``demo`` are generic; everything task-specific is
reached through this table, so the drone is a second row, not a second pipeline.

Each env (its ``unwrapped``) provides, beyond the Gymnasium API:

- ``expert_action() -> np.ndarray``: the privileged expert's action for the current state;
- ``control_dt``: seconds per env step (the policy period);

and the task's metrics module provides ``summarize_episode(infos, terminated, truncated)``
and ``aggregate(episode_summaries)`` (see ``lnn_control.envs.<task>.metrics``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from lnn_control.seeds import HELD_OUT_SEED_START, held_out_seed, training_seed

__all__ = ["HELD_OUT_SEED_START", "TASKS", "TaskInfo", "get_task", "held_out_seed", "training_seed"]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    env_id: str
    launch_file: str
    metrics_module: str
    overlay: tuple[tuple[str, str], ...] = ()
    """``(info key, unit)`` pairs the demo prints over the video."""
    shipped_policy: str = ""
    """Name of the task's bundle in ``policies/pretrained/`` (the demo's default policy)."""

    def metrics(self) -> ModuleType:
        return importlib.import_module(self.metrics_module)


TASKS: dict[str, TaskInfo] = {
    "lane-keeping": TaskInfo(
        name="lane-keeping",
        env_id="lnn_control/LaneKeeping-v0",
        launch_file="lane_keeping.yaml",
        metrics_module="lnn_control.envs.lane_keeping.metrics",
        overlay=(("lateral_offset", "m"), ("heading_error", "rad"), ("speed", "m/s"), ("progress", "m")),
        shipped_policy="lane_keeping_ncp19",
    ),
    "drone-forest": TaskInfo(
        name="drone-forest",
        env_id="lnn_control/DroneForest-v0",
        launch_file="drone_forest.yaml",
        metrics_module="lnn_control.envs.drone_forest.metrics",
        overlay=(("distance_to_target", "m"), ("clearance", "m"), ("speed", "m/s"), ("altitude", "m")),
        shipped_policy="drone_forest_ncp19",
    ),
}


def get_task(name: str) -> TaskInfo:
    """Look a task up by name; the error lists the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None
