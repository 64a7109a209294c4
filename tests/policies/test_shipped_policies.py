"""The bundles in policies/pretrained: where they came from, and that they drive on both backends."""

from __future__ import annotations

import json
from importlib import resources

import gymnasium as gym
import numpy as np
import pytest

import lnn_control.envs  # noqa: F401  (registers the env ids)
from lnn_control.policies.bundle import load_policy
from lnn_control.runtime.launch import resolve_policy_path
from lnn_control.tasks import TASKS

SHIPPED = {name: task for name, task in TASKS.items() if task.shipped_policy}


def _shipped_dir(task_name: str):
    return resolve_policy_path(TASKS[task_name].shipped_policy)


def test_every_task_names_a_shipped_bundle_that_exists() -> None:
    root = resources.files("lnn_control.policies") / "pretrained"
    present = {entry.name for entry in root.iterdir() if entry.is_dir()}
    assert {task.shipped_policy for task in TASKS.values()} <= present


@pytest.mark.parametrize("task_name", sorted(SHIPPED))
def test_shipped_bundle_records_the_pipeline_command(task_name: str) -> None:
    config = json.loads((_shipped_dir(task_name) / "config.json").read_text())
    provenance = config["provenance"]
    launch = TASKS[task_name].launch_file.removesuffix(".yaml")
    assert provenance["command"].startswith(f"lnn-control train --launch {launch}")
    assert provenance["git_commit"] and provenance["dataset_hash"]
    assert f"task: {task_name}" in provenance["launch_file"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_shipped_lane_policy_completes_a_short_held_out_road(backend: str) -> None:
    policy = load_policy(_shipped_dir("lane-keeping"))
    env = gym.make(TASKS["lane-keeping"].env_id, backend=backend, road_length=12.0)
    try:
        obs, info = env.reset(seed=1000)
        policy.reset()
        dt = env.unwrapped.control_dt
        for _ in range(1000):
            obs, _, terminated, truncated, info = env.step(policy.act(obs, dt))
            if terminated or truncated:
                break
        assert info["success"], f"{backend}: ended with {info['end_reason']} after {info['progress']:.1f} m"
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_shipped_drone_policy_flies_towards_the_target(backend: str) -> None:
    policy = load_policy(_shipped_dir("drone-forest"))
    env = gym.make(TASKS["drone-forest"].env_id, backend=backend)
    try:
        obs, info = env.reset(seed=1000)
        start_distance = info["distance_to_target"]
        policy.reset()
        dt = env.unwrapped.control_dt
        for _ in range(60):  # 3 s at 20 Hz
            action = policy.act(obs, dt)
            assert np.all(np.isfinite(action))
            obs, _, terminated, truncated, info = env.step(action)
            assert not info["collision"], f"{backend}: collided {info['sim_time']:.1f} s in"
            if terminated or truncated:
                break
        assert info["distance_to_target"] < start_distance - 2.0, f"{backend}: {start_distance:.1f} -> {info['distance_to_target']:.1f} m"
    finally:
        env.close()
