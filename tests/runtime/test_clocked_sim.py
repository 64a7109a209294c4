"""ClockedSimRobot: a real env in a real child process, stepped on the loop's clock over a socket pair."""

from __future__ import annotations

import numpy as np
import pytest
from lnn_runtime_testkit import DOT_ENV_ID, CenteringPolicy, H, W, dot_position

from lnn_control.runtime.core.loop import ControlLoop, LoopConfig
from lnn_control.runtime.core.robot import RobotError
from lnn_control.runtime.core.safety import CommandLimiter, EventLog, Watchdog
from lnn_control.runtime.launch import LimitsConfig
from lnn_control.runtime.sim.clocked import ClockedSimRobot

# The child imports the module that registers the test env ("module:id" is Gymnasium's syntax for that).
CHILD_DOT_ENV = f"lnn_runtime_testkit:{DOT_ENV_ID}"
PERIOD = 0.02  # DotEnv.dt


def _patient(env_kwargs: dict | None = None, seed: int = 0) -> ClockedSimRobot:
    """A robot whose reads wait (up to 5 s) for the frame their previous read announced, so every
    read answers exactly one step, however loaded the machine: counts below are exact."""
    return ClockedSimRobot(CHILD_DOT_ENV, env_kwargs=env_kwargs, seed=seed, max_frame_wait_s=5.0)


def _make_loop(robot: ClockedSimRobot, policy: CenteringPolicy) -> ControlLoop:
    events = EventLog()
    limiter = CommandLimiter(robot.action_spec, LimitsConfig(), events)
    return ControlLoop(robot, policy, LoopConfig(rate_hz=1 / PERIOD), limiter, Watchdog(0.5, events), events=events)


def test_steps_once_per_read_with_the_latest_command_and_stop_is_neutral() -> None:
    pixel = 2 / (W - 1)
    with _patient(seed=7) as robot:
        assert robot.observation_spec.image_shape == (H, W, 3) and robot.observation_spec.extras == ("speed",)
        assert robot.action_spec.low == (-1.0,) and robot.control_period_s == pytest.approx(PERIOD)
        first = robot.read()  # the first read steps once with the neutral command
        assert first.image.shape == (H, W, 3) and first.image.dtype == np.uint8 and first.extras == {"speed": 1.5}
        assert robot.episode_steps == 1
        x0 = dot_position(first.image)
        assert robot.write(np.array([0.25])).tolist() == [0.25]
        assert robot.write(np.array([3.0])).tolist() == [1.0]  # clipped to the action space
        robot.write(np.array([0.1]))  # the newest command is the one the next steps use
        frames = [robot.read() for _ in range(12)]
        assert robot.episode_steps == 13
        stamps = [f.timestamp for f in [first, *frames]]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))  # a fresh frame per read
        for k, frame in enumerate(frames, start=1):  # the dot moves 0.2 × 0.1 per step
            assert dot_position(frame.image) == pytest.approx(min(x0 + 0.02 * k, 1.0), abs=pixel)
        assert robot.step_durations and robot.lead_s is not None and 0 < robot.lead_s <= 0.8 * PERIOD
        robot.stop()
        assert robot.held_action.tolist() == [0.0]
        still = [dot_position(robot.read().image) for _ in range(6)]
        assert still == [dot_position(frames[-1].image)] * 6
    assert not robot.is_connected


def test_episode_end_resets_with_the_next_seed_in_the_child() -> None:
    with _patient({"episode_steps": 3}, seed=10) as robot:
        for _ in range(10):
            robot.read()
        assert robot.episodes_finished == 3  # steps 3, 6 and 9 ended episodes
        assert robot.episode_steps == 1
        assert robot.last_episode_info["steps"] == 3 and robot.last_episode_info["terminated"] is False


def test_a_closed_loop_centres_the_dot() -> None:
    with ClockedSimRobot(CHILD_DOT_ENV, seed=3) as robot:
        stats = _make_loop(robot, CenteringPolicy(gain=1.5)).run(max_steps=60)
        final = robot.read()
    assert stats.steps == 60 and stats.policy_steps + stats.hold_steps == 60
    assert abs(dot_position(final.image)) < 0.1, "the closed loop must centre the dot"


def test_a_slow_simulator_delivers_late_frames_but_never_blocks_a_read_for_long() -> None:
    """Steps of 100 ms at a 20 ms period: each read waits at most max_frame_wait_s for the due
    frame, then hands back the newest one it has; the loop holds its command on a repeated frame."""
    with ClockedSimRobot(CHILD_DOT_ENV, env_kwargs={"step_delay_s": 0.1}, seed=1) as robot:
        assert robot.max_frame_wait_s == pytest.approx(PERIOD / 4)
        stats = _make_loop(robot, CenteringPolicy()).run(max_steps=25)
    assert stats.hold_steps >= 10  # most periods saw no new frame
    assert stats.policy_steps >= 3  # yet the simulator keeps delivering
    # the first read waits for its step; after it, no period is spent waiting out a 100 ms step
    assert max(stats.compute[1:]) < robot.max_frame_wait_s + 0.04


def test_failures_raise_robot_errors_that_say_what_happened() -> None:
    with pytest.raises(RobotError, match="cannot make env 'lnn_test/NoSuchEnv-v0'"):
        ClockedSimRobot("lnn_test/NoSuchEnv-v0").connect()
    with pytest.raises(RobotError, match="Dict observation space with an 'image'"):
        ClockedSimRobot("CartPole-v1").connect()
    with pytest.raises(RobotError, match="unexpected keyword argument 'no_such_option'"):
        ClockedSimRobot(CHILD_DOT_ENV, env_kwargs={"no_such_option": 1}).connect()
    robot = ClockedSimRobot(CHILD_DOT_ENV)
    with pytest.raises(RobotError, match="call connect"):
        robot.read()
    with pytest.raises(RobotError, match="after connect"):
        _ = robot.action_spec
    robot.connect()
    with pytest.raises(ValueError, match="finite"):
        robot.write(np.array([np.nan]))
    with pytest.raises(ValueError, match="shape"):
        robot.write(np.zeros(2))
    child = robot._process
    child.kill()
    child.wait(timeout=10)
    with pytest.raises(RobotError, match="simulator process"):
        robot.read()
    with pytest.raises(RobotError, match="is gone"):  # a stop that cannot reach the simulator says so
        robot.stop()
    robot.disconnect()
    assert not robot.is_connected


def test_disconnect_ends_the_child() -> None:
    robot = ClockedSimRobot(CHILD_DOT_ENV)
    robot.connect()
    child = robot._process
    assert child.poll() is None
    robot.disconnect()
    assert child.poll() is not None
    robot.disconnect()  # twice is fine
