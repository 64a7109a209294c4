"""Shared real parts for the explain tests: the shipped lane policy and real simulator frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest


@dataclass
class LaneFrames:
    frames: np.ndarray  # [T,64,128,3] uint8, PyBullet onboard camera
    speeds: np.ndarray  # [T,1] m/s
    road: np.ndarray  # [T,64,128] bool
    sky: np.ndarray  # [T,64,128] bool


@pytest.fixture(scope="session")
def lane_policy():
    from lnn_control.policies.bundle import load_policy
    from lnn_control.runtime.launch import resolve_policy_path

    return load_policy(resolve_policy_path("lane_keeping_ncp19"))


@pytest.fixture(scope="session")
def unsaturated_lane_policy():
    """A real lane policy whose sensory synapses are not saturated, so its pixel gradients carry
    information (the bundle shipped until 2026-12-07; ``data/README.md``)."""
    from pathlib import Path

    from lnn_control.policies.bundle import load_policy

    return load_policy(Path(__file__).parent / "data" / "lane_default_init_2026-12-06")


@pytest.fixture(scope="session")
def lane_frames() -> LaneFrames:
    """Frames of a held-out road driven by the expert (every 10th of 120 steps: straights and bends)."""
    from lnn_control.data.collect import make_env
    from lnn_control.envs.lane_keeping.camera_mask import camera_masks

    env = make_env("lane-keeping", "pybullet", "clean", 1003)
    frames, speeds, road, sky = [], [], [], []
    try:
        obs, _ = env.reset(seed=1003)
        for step in range(120):
            obs, *_ = env.step(env.unwrapped.expert_action())
            if step % 10 == 9:
                masks = camera_masks(env)
                frames.append(obs["image"])
                speeds.append(obs["speed"])
                road.append(masks["road"])
                sky.append(masks["sky"])
    finally:
        env.close()
    return LaneFrames(np.stack(frames), np.stack(speeds), np.stack(road), np.stack(sky))
