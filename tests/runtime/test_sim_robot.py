"""LockstepSimRobot over a real gymnasium env: physics advances on read(), held commands, stop, episode resets."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from lnn_runtime_testkit import DOT_ENV_ID, H, W, dot_position

from lnn_control.runtime.core.robot import RobotError
from lnn_control.runtime.sim.lockstep import LockstepSimRobot


def test_read_steps_with_the_held_command_and_stop_is_neutral() -> None:
    with LockstepSimRobot(DOT_ENV_ID, seed=7) as robot:
        assert robot.observation_spec.image_shape == (H, W, 3)
        assert robot.observation_spec.extras == ("speed",)
        assert robot.action_spec.low == (-1.0,) and robot.action_spec.high == (1.0,)
        assert robot.control_period_s == pytest.approx(0.02)
        x0 = robot.env.unwrapped.x
        obs = robot.read()  # neutral command: the dot does not move
        assert obs.image.shape == (H, W, 3) and obs.image.dtype == np.uint8
        assert obs.extras == {"speed": 1.5}
        assert robot.env.unwrapped.x == pytest.approx(x0)
        assert robot.write(np.array([3.0])).tolist() == [1.0]  # clipped to the action space
        stamps = []
        for _ in range(2):
            stamps.append(robot.read().timestamp)
        assert robot.env.unwrapped.x == pytest.approx(min(x0 + 0.4, 1.0))
        assert dot_position(robot.read().image) == pytest.approx(robot.env.unwrapped.x, abs=0.05)
        assert stamps[1] > stamps[0]
        robot.stop()
        assert robot.held_action.tolist() == [0.0]
        x1 = robot.env.unwrapped.x
        robot.read()
        assert robot.env.unwrapped.x == x1
    assert not robot.is_connected


def test_episode_end_resets_with_the_next_seed() -> None:
    with LockstepSimRobot(DOT_ENV_ID, env_kwargs={"episode_steps": 3}, seed=10) as robot:
        first_start = robot.env.unwrapped.x
        for _ in range(3):
            robot.read()
        assert robot.episodes_finished == 1
        assert robot.last_episode_info["steps"] == 3 and robot.last_episode_info["terminated"] is False
        second_start = robot.env.unwrapped.x
    with LockstepSimRobot(DOT_ENV_ID, seed=11) as again:
        assert again.env.unwrapped.x == second_start  # episode i uses seed + i
    with LockstepSimRobot(DOT_ENV_ID, seed=10) as same:
        assert same.env.unwrapped.x == first_start


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(RobotError, match="cannot make env 'lnn_test/NoSuchEnv-v0'"):
        LockstepSimRobot("lnn_test/NoSuchEnv-v0").connect()
    with pytest.raises(RobotError, match="Dict observation space with an 'image'"):
        LockstepSimRobot("CartPole-v1").connect()
    robot = LockstepSimRobot(DOT_ENV_ID)
    with pytest.raises(RobotError, match="call connect"):
        robot.read()
    with pytest.raises(RobotError, match="after connect"):
        _ = robot.action_spec
    with robot:
        with pytest.raises(ValueError, match="finite"):
            robot.write(np.array([np.nan]))
        with pytest.raises(ValueError, match="shape"):
            robot.write(np.zeros(2))
    assert "CartPole-v1" in gymnasium.registry
