"""LaneKeepingEnv specifics: seeds and reset options, bad actions, info, termination, arguments (the
Gymnasium contract every env keeps is tests/envs/test_env_contract.py)."""

from __future__ import annotations

import importlib.util
import os

import gymnasium as gym
import numpy as np
import pytest

import lnn_control.envs  # noqa: F401  (registers the ids)
from lnn_control.envs.lane_keeping.env import LaneKeepingEnv
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

ENV_ID = "lnn_control/LaneKeeping-v0"
INFO_KEYS = {
    "lateral_offset", "heading_error", "progress", "s", "speed", "steering_angle", "sim_time",
    "lane_departure", "success", "end_reason", "road_seed", "reward_terms",
}


def _backend_available(name: str) -> bool:
    module = {"pybullet": "pybullet", "mujoco": "mujoco"}[name]
    return (
        importlib.util.find_spec(module) is not None
        and importlib.util.find_spec(f"lnn_control.envs.lane_keeping.{name}_backend") is not None
    )


# the per-env checks run on every backend present in this checkout
BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(not _backend_available(name), reason=f"{name} backend not present"))
    for name in ("pybullet", "mujoco")
]


def make(backend: str = "pybullet", **kwargs):
    kwargs.setdefault("road_length", 8.0)
    return gym.make(ENV_ID, backend=backend, **kwargs)


def test_reset_again_with_the_same_seed_repeats_the_episode():
    env = make()
    try:
        runs = []
        for _ in range(2):
            obs, _ = env.reset(seed=5)
            for _ in range(10):
                obs, _, _, _, info = env.step(np.array([0.3], np.float32))
            runs.append((obs["image"].copy(), info["lateral_offset"], info["heading_error"]))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        assert runs[0][1:] == runs[1][1:]
    finally:
        env.close()


def test_road_seed_option_and_unseeded_resets_use_training_roads():
    env = make()
    try:
        _, info = env.reset(seed=1, options={"road_seed": 1005})
        assert info["road_seed"] == 1005
        seeds = {env.reset()[1]["road_seed"] for _ in range(3)}
        assert all(0 <= s < 1000 for s in seeds)
        with pytest.raises(ValueError, match="unknown reset option"):
            env.reset(options={"road": 3})
        for bad in (1.5, "7", -2, True):
            with pytest.raises(ValueError, match="road seed must be an integer ≥ 0"):
                env.reset(options={"road_seed": bad})
    finally:
        env.close()


@pytest.mark.parametrize(
    "action, message",
    [
        (np.array([np.nan], np.float32), "NaN"),
        (np.array([1.5], np.float32), "outside the action space bounds"),
        (np.array([-1.01], np.float32), "outside the action space bounds"),
        (np.array([0.1, 0.2], np.float32), "shape"),
        ("left", "numeric array"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_actions_raise_and_never_reach_the_simulator(action, message, backend):
    env = make(backend, start_noise=False)
    try:
        env.reset(seed=0)
        before = env.unwrapped.vehicle_state()
        with pytest.raises(ValueError, match=message):
            env.unwrapped.step(action)
        assert env.unwrapped.vehicle_state() == before  # no physics step was taken
        # nothing was commanded either: advancing the simulator itself, without a new command, keeps
        # the wheels straight (a leaked full-lock command turns them ≈ 0.22 rad in this time, measured on both backends)
        env.unwrapped.backend.advance(env.unwrapped.control_dt)
        state = env.unwrapped.vehicle_state()
        assert state.finite and abs(state.steering_angle) < 0.02 and state.time == pytest.approx(0.05)
    finally:
        env.close()


def test_observation_info_and_specs():
    env = make()
    try:
        obs, info = env.reset(seed=2)
        assert env.observation_space.contains(obs)
        assert obs["image"].shape == (64, 128, 3) and obs["speed"].dtype == np.float32
        assert INFO_KEYS <= set(info)
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        assert INFO_KEYS <= set(info)
        assert set(info["reward_terms"]) == {"progress", "centering", "heading", "departure"}
        assert info["sim_time"] == pytest.approx(0.05)
        assert info["progress"] == pytest.approx(1.5 * 0.05, abs=0.02)
        assert reward == pytest.approx(info["reward_terms"]["progress"] + 0.1 * info["reward_terms"]["centering"] + 0.05 * info["reward_terms"]["heading"])
        unwrapped = env.unwrapped
        assert unwrapped.control_dt == pytest.approx(0.05)
        assert unwrapped.action_spec == ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
        assert unwrapped.observation_spec == ObservationSpec((64, 128, 3), ("speed",), ("m/s",))
    finally:
        env.close()


def test_without_speed_and_with_speed_action():
    env = make(include_speed=False, speed_action=True)
    try:
        obs, _ = env.reset(seed=2)
        assert set(obs) == {"image"}
        assert env.action_space.shape == (2,)
        for _ in range(20):
            obs, *_ , info = env.step(np.array([0.0, 1.0], np.float32))  # full speed: 3 m/s
        assert info["speed"] == pytest.approx(3.0, abs=0.2)
        assert env.unwrapped.expert_action().shape == (2,)
    finally:
        env.close()


def test_steering_hard_left_departs_the_lane_and_terminates():
    env = make(road_length=12.0)
    try:
        env.reset(seed=4)
        steps = 0
        while steps < 100:
            _, reward, terminated, truncated, info = env.step(np.array([1.0], np.float32))
            steps += 1
            if terminated or truncated:
                break
        assert terminated and not truncated
        assert info["lane_departure"] and info["end_reason"] == "lane_departure" and not info["success"]
        assert info["lateral_offset"] > 0.15  # left of the lane
        assert reward < -5
        assert steps < 40
    finally:
        env.close()


def test_friction_scale_validation():
    env = LaneKeepingEnv(road_length=8.0)
    try:
        with pytest.raises(ValueError, match="friction_scale"):
            env.set_friction_scale(1.5)
        env.set_friction_scale(0.5)
        assert env.friction_scale == 0.5
    finally:
        env.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "gazebo"}, "backend must be one of"),
        ({"render_mode": "ansi"}, "render_mode"),
        ({"target_speed": 9.0}, "target_speed"),
        ({"road_config": {"lane_widht": 0.5}}, "unknown key"),
        ({"physics_rate_hz": 10.0}, "physics_rate_hz"),
        ({"chase_size": (320.5, 240)}, "chase_size"),
        ({"rules": {"max_tilt": 0.0}}, "max_tilt"),
        ({"rules": {"max_heading_error": float("nan")}}, "max_heading_error"),
        ({"rules": {"start_s": float("nan")}}, "start_s"),
        ({"rules": {"rewards": {"progress": float("nan")}}}, "RewardWeights.progress must be a finite number"),
        ({"chase_size": (320,)}, "chase_size"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LaneKeepingEnv(**kwargs)


@pytest.mark.skipif(bool(os.environ.get("DISPLAY")), reason="checks the no-display error path")
def test_human_mode_without_display_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a display"):
        LaneKeepingEnv(render_mode="human")


def test_friction_scale_accepts_numpy_numbers_and_rejects_bools():
    env = LaneKeepingEnv(road_length=8.0, friction_scale=np.float32(0.5))
    try:
        assert env.friction_scale == 0.5 and type(env.friction_scale) is float
        with pytest.raises(ValueError, match="friction_scale must be in"):
            env.set_friction_scale(True)
    finally:
        env.close()
