"""DroneForestEnv specifics: forest seeds, bad actions, info, termination, shift hooks (the Gymnasium
contract every env keeps is tests/envs/test_env_contract.py)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import lnn_control.envs  # noqa: F401  (registers the ids)
from lnn_control.envs.drone_forest.backend import DroneState, yaw_quaternion
from lnn_control.envs.drone_forest.env import DroneForestEnv
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

ENV_ID = "lnn_control/DroneForest-v0"
INFO_KEYS = {
    "distance_to_target", "bearing_to_target", "clearance", "collision", "speed", "altitude", "x", "y", "z",
    "sim_time", "success", "end_reason", "forest_seed", "reward_terms",
}


def _backend_available(name: str) -> bool:
    return (
        importlib.util.find_spec(name) is not None
        and importlib.util.find_spec(f"lnn_control.envs.drone_forest.{name}_backend") is not None
    )


BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(not _backend_available(name), reason=f"{name} backend not present"))
    for name in ("pybullet", "mujoco")
]


def test_forest_seed_option_and_unseeded_resets_use_training_forests() -> None:
    env = DroneForestEnv()
    try:
        _, info = env.reset(seed=1, options={"forest_seed": 1234})
        assert info["forest_seed"] == 1234 and env.forest.held_out
        for _ in range(3):
            _, info = env.reset()
            assert 0 <= info["forest_seed"] < 1000
        with pytest.raises(ValueError, match="forest seed"):
            env.reset(options={"forest_seed": -3})
        with pytest.raises(ValueError, match="reset option"):
            env.reset(options={"road_seed": 1})
    finally:
        env.close()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ([np.nan, 0, 0, 0], "NaN"),
        ([0, 0, np.inf, 0], "NaN"),
        ([2.5, 0, 0, 0], "outside the action space bounds"),
        ([0, -1.2, 0, 0], "outside the action space bounds"),
        ([0, 0, 0], "shape"),
        ("fast", "numeric"),
    ],
)
def test_bad_actions_raise_and_never_reach_the_simulator(action, message: str) -> None:
    env = DroneForestEnv(start_noise=False)
    try:
        env.reset(seed=2)
        env.step(np.array([1.0, 0, 0, 0], np.float32))  # moving, so a leaked command would show
        before = env.drone_state()
        with pytest.raises(ValueError, match=message):
            env.step(action)
        after = env.drone_state()
        assert after.time == before.time and np.array_equal(after.position, before.position)
        assert "vx in [-2.0, 2.0]" in str(pytest.raises(ValueError, env.step, [9, 0, 0, 0]).value)
    finally:
        env.close()


def test_observation_info_and_specs() -> None:
    env = DroneForestEnv()
    try:
        obs, info = env.reset(seed=4)
        assert set(obs) == {"image", "vx", "vy", "vz"}
        assert obs["image"].shape == (64, 128, 3) and obs["image"].dtype == np.uint8
        assert all(obs[k].shape == (1,) and obs[k].dtype == np.float32 for k in ("vx", "vy", "vz"))
        assert INFO_KEYS <= set(info)
        assert info["success"] is False and info["end_reason"] == ""
        assert env.action_spec == ActionSpec(("vx", "vy", "vz", "yaw_rate"), (-2.0, -1.0, -1.0, -1.0),
                                             (2.0, 1.0, 1.0, 1.0), ("m/s", "m/s", "m/s", "rad/s"), ActionFrame.FLU)
        assert env.observation_spec == ObservationSpec((64, 128, 3), ("vx", "vy", "vz"), ("m/s",) * 3)
        assert env.control_dt == pytest.approx(0.05)
        # fly forward: vx observation and progress reward follow
        for _ in range(20):
            obs, reward, *_, info = env.step(np.array([1.0, 0, 0, 0], np.float32))
        assert obs["vx"][0] == pytest.approx(1.0, abs=0.1)
        assert INFO_KEYS <= set(info) and set(info["reward_terms"]) == {"progress", "proximity", "success", "failure"}
        assert info["speed"] == pytest.approx(1.0, abs=0.1) and info["sim_time"] == pytest.approx(1.0)
        assert info["clearance"] == pytest.approx(float(env.forest.clearance([info["x"], info["y"]])))
    finally:
        env.close()
    bare = DroneForestEnv(include_velocity=False)
    try:
        obs, _ = bare.reset(seed=4)
        assert set(obs) == {"image"} and bare.observation_spec.extras == ()
    finally:
        bare.close()


def test_flying_into_a_trunk_terminates_with_collision() -> None:
    env = DroneForestEnv(start_noise=False)
    try:
        env.reset(seed=0)
        forest = env.forest
        centre, radius = forest.trunk_xy[0], forest.trunk_radius[0]
        env.backend.reset(DroneState(0.0, [centre[0] - radius - 1.5, centre[1], 1.5], yaw_quaternion(0.0),
                                     np.zeros(3), np.zeros(3)))
        for _ in range(60):
            _, reward, terminated, truncated, info = env.step(np.array([1.5, 0, 0, 0], np.float32))
            if terminated or truncated:
                break
        assert terminated and not truncated
        assert info["end_reason"] == "collision" and info["collision"] and not info["success"]
        assert info["reward_terms"]["failure"] == -1.0 and reward < -5
    finally:
        env.close()


def test_climbing_out_of_the_flight_volume_and_diverging_end_the_episode() -> None:
    env = DroneForestEnv(start_noise=False)
    try:
        env.reset(seed=0)
        for _ in range(200):
            _, _, terminated, _, info = env.step(np.array([0, 0, 1.0, 0], np.float32))
            if terminated:
                break
        assert terminated and info["end_reason"] == "out_of_bounds"
        # a NaN state (as from a blown-up simulation) ends the episode as "diverged" without a crash
        obs, _ = env.reset(seed=0)
        env.backend.reset(DroneState(0.0, [0.0, 0.0, np.nan], [1, 0, 0, 0], np.zeros(3), np.zeros(3)))
        obs2, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert terminated and not truncated and info["end_reason"] == "diverged" and not info["success"]
        assert np.array_equal(obs2["image"], obs["image"]) and np.isfinite(reward)
        assert env.expert_action().tolist() == [0.0, 0.0, 0.0, 0.0]
    finally:
        env.close()


def test_wind_and_tree_density_hooks() -> None:
    env = DroneForestEnv(start_noise=False)
    try:
        env.reset(seed=8)
        trees = env.forest.num_trees
        env.set_wind([0.0, 3.0, 0.0])
        for _ in range(10):
            *_, info = env.step(np.zeros(4, np.float32))
        drift = env.drone_state().velocity[1]
        assert drift > 0.2  # pushed downwind (+y) before the integrators catch up
        env.set_tree_density_scale(2.0)
        env.reset(seed=8)
        assert env.forest.num_trees >= 1.9 * trees
        with pytest.raises(ValueError, match="wind"):
            env.set_wind([1.0, 2.0])
        with pytest.raises(ValueError, match="density scale"):
            env.set_tree_density_scale(0.0)
    finally:
        env.close()


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        DroneForestEnv(backend="gazebo")
    with pytest.raises(ValueError, match="forest_density"):
        DroneForestEnv(forest_density=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        DroneForestEnv(forest_config={"trees": 3})
    with pytest.raises(ValueError, match="render_mode"):
        DroneForestEnv(render_mode="ascii")
