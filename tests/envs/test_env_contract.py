"""The contract every registered env keeps, on every physics backend: one suite over the task table
(``lnn_control.tasks.TASKS``), so a third task is checked the day it gets its row.

Registration without importing a simulator, Gymnasium's env checker, renders, seeded determinism,
specs that match the spaces (with the action frame), bad actions refused before the simulator, and
a close that can be repeated."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker

import lnn_control.envs  # noqa: F401  (registers the ids)
from lnn_control.spec import ActionFrame
from lnn_control.tasks import TASKS

SMALL_WORLDS = {  # test-sized worlds (a task without an entry runs with its defaults)
    "lnn_control/LaneKeeping-v0": {"road_length": 8.0},
    "lnn_control/DroneForest-v0": {"forest_config": {"area_size": 20.0, "density": 3.0, "target_distance_range": [5.0, 7.0]}},
}
# Gymnasium advises normalising Box actions to [-1, 1]; the drone acts in physical units (m/s,
# rad/s: MAVLink set-points) by contract, so that advice is the one allowed warning.
ALLOWED_WARNINGS = ("symmetric and normalized space",)


def _available(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


CASES = [
    pytest.param(task.env_id, backend, id=f"{task.name}-{backend}",
                 marks=pytest.mark.skipif(not _available(backend), reason=f"{backend} not installed"))
    for task in TASKS.values()
    for backend in ("pybullet", "mujoco")
]


def make(env_id: str, backend: str, **kwargs):
    return gym.make(env_id, backend=backend, **{**SMALL_WORLDS.get(env_id, {}), **kwargs})


@pytest.mark.parametrize("env_id", [task.env_id for task in TASKS.values()])
def test_registered_without_importing_a_simulator_or_torch(env_id):
    code = (
        "import sys, gymnasium as gym, lnn_control.envs\n"
        f"assert '{env_id}' in gym.registry\n"
        "assert not any(m.split('.')[0] in ('pybullet', 'mujoco', 'torch') for m in sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("env_id", "backend"), CASES)
def test_gymnasium_checker_and_rgb_render(env_id, backend):
    env = make(env_id, backend, render_mode="rgb_array")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
            env.reset(seed=3)
            env_render_passive_checker(env.unwrapped)
        messages = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
        assert messages == []
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8 and frame.std() > 0
    finally:
        env.close()
        env.close()  # closing twice is harmless


@pytest.mark.parametrize(("env_id", "backend"), CASES)
def test_specs_describe_the_spaces_and_name_the_flu_frame(env_id, backend):
    env = make(env_id, backend)
    try:
        unwrapped = env.unwrapped
        act, obs = unwrapped.action_spec, unwrapped.observation_spec
        assert act.frame is ActionFrame.FLU
        assert env.action_space.shape == (act.size,)
        np.testing.assert_allclose(env.action_space.low, act.low)
        np.testing.assert_allclose(env.action_space.high, act.high)
        assert env.observation_space["image"].shape == tuple(obs.image_shape)
        assert set(env.observation_space.spaces) == {"image", *obs.extras}
        assert unwrapped.control_dt > 0 and callable(unwrapped.expert_action)
    finally:
        env.close()


def _rollout(env_id: str, backend: str, seed: int, steps: int = 10) -> tuple[np.ndarray, list]:
    env = make(env_id, backend, domain_randomization=True)
    try:
        obs, _ = env.reset(seed=seed)
        images, extras = [obs["image"]], []
        rng = np.random.default_rng(0)
        for _ in range(steps):
            noise = rng.normal(0.0, 0.2, env.action_space.shape) * (env.action_space.high - env.action_space.low) / 2
            action = np.clip(env.unwrapped.expert_action() + noise, env.action_space.low, env.action_space.high)
            obs, _, terminated, truncated, _ = env.step(action.astype(np.float32))
            images.append(obs["image"])
            extras.append({k: v.tolist() for k, v in obs.items() if k != "image"})
            if terminated or truncated:
                break
        return np.stack(images), extras
    finally:
        env.close()


@pytest.mark.parametrize(("env_id", "backend"), CASES)
def test_the_same_seed_repeats_the_episode_and_another_differs(env_id, backend):
    images_a, extras_a = _rollout(env_id, backend, 11)
    images_b, extras_b = _rollout(env_id, backend, 11)
    np.testing.assert_array_equal(images_a, images_b)
    assert extras_a == extras_b
    images_c, _ = _rollout(env_id, backend, 12, steps=1)
    assert not np.array_equal(images_a[0], images_c[0])


@pytest.mark.parametrize(("env_id", "backend"), CASES)
@pytest.mark.parametrize("kind", ["nan", "above the bounds", "wrong shape", "not numeric"])
def test_a_bad_action_is_refused_before_the_simulator(env_id, backend, kind):
    """The error names the problem; the episode then goes on exactly as if it had not been sent."""
    reference, env = make(env_id, backend), make(env_id, backend)
    try:
        space = env.action_space
        bad = {
            "nan": np.full(space.shape, np.nan, np.float32),
            "above the bounds": (space.high + 0.5).astype(np.float32),
            "wrong shape": np.zeros(space.shape[0] + 1, np.float32),
            "not numeric": "forward",
        }[kind]
        good = ((space.low + space.high) / 2 + 0.25 * (space.high - space.low) / 2).astype(np.float32)
        reference.reset(seed=5)
        env.reset(seed=5)
        with pytest.raises(ValueError) as refused:
            env.unwrapped.step(bad)
        assert str(refused.value)  # a message, checked per env in its own tests
        expected = reference.step(good)[0]
        got = env.step(good)[0]
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
    finally:
        reference.close()
        env.close()


@pytest.mark.parametrize(("env_id", "backend"), CASES)
def test_reset_takes_the_world_seed_from_its_option_then_the_seed_then_the_rng(env_id, backend):
    """The shared reset rules of ``TaskEnv``: ``options={<world>_seed: n}`` wins over ``seed``; an
    unseeded reset draws a training world (< 900); a bad seed or an unknown option is refused
    naming what is allowed; step before reset is refused."""
    env = make(env_id, backend)
    try:
        base = env.unwrapped
        key = base.world_seed_option
        with pytest.raises(RuntimeError, match="call reset"):
            base.step(np.zeros(env.action_space.shape, np.float32))
        assert env.reset(seed=3, options={key: 1001})[1][key] == 1001
        assert env.reset(seed=3)[1][key] == 3
        assert 0 <= env.reset()[1][key] < 900
        with pytest.raises(ValueError, match=rf"unknown reset option.*{key}"):
            env.reset(options={"seed_of_the_world": 1})
        with pytest.raises(ValueError, match=r"integer ≥ 0 \(< 900 training, 900–999 validation, ≥ 1000 held out\)"):
            env.reset(options={key: -1})
    finally:
        env.close()
