"""The simulator camera of a task, read from the env's own config dataclass.

The numbers are not copied anywhere else: ``CarParams`` (lane keeping) and ``QuadParams`` (drone
forest) are the one place both physics backends take their camera from, and this module reads
their defaults. Importing ``lnn_control.envs`` needs the ``[sim]`` extra (Gymnasium); the robot
never does, because a calibration file stores the numbers it needs.
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from lnn_control.camera.model import SimView
from lnn_control.tasks import get_task

CAMERA_PARAMS: dict[str, str] = {
    "lane-keeping": "lnn_control.envs.lane_keeping.car:CarParams",
    "drone-forest": "lnn_control.envs.drone_forest.quad:QuadParams",
}
"""Task name -> ``module:Class`` of the env config dataclass that holds its camera."""


def sim_view_of_task(task: str) -> SimView:
    """The task's default simulator camera: ``camera_vertical_fov_deg``, ``camera_pitch`` (rad,
    converted to degrees), ``image_height`` / ``image_width`` of its params dataclass."""
    get_task(task)  # unknown names list the known tasks
    if task not in CAMERA_PARAMS:
        raise ValueError(f"task {task!r} has no camera params registered; known: {sorted(CAMERA_PARAMS)}")
    module_name, class_name = CAMERA_PARAMS[task].split(":")
    params = getattr(importlib.import_module(module_name), class_name)()
    return SimView(
        task=task,
        vertical_fov_deg=float(params.camera_vertical_fov_deg),
        pitch_deg=math.degrees(float(params.camera_pitch)),
        image_height=int(params.image_height),
        image_width=int(params.image_width),
    )


def render_sim_frame(task: str, backend: str = "pybullet", seed: int = 1000) -> np.ndarray:
    """One onboard camera frame of ``task`` (RGB uint8, the env's image size) at the start of the
    held-out episode ``seed``, without domain randomisation."""
    import gymnasium as gym

    import lnn_control.envs  # noqa: F401  (registers the ids)

    env = gym.make(get_task(task).env_id, backend=backend)
    try:
        observation, _ = env.reset(seed=seed)
        return observation["image"]
    finally:
        env.close()
