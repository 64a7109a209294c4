"""ClockedSimRobot: a real env in a real child process, stepped on the loop's clock over a socket pair."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lnn_runtime_testkit import DOT_ENV_ID, CenteringPolicy, H, W, dot_position

from lnn_control.runtime.clocked_sim import ClockedSimRobot
from lnn_control.runtime.launch import LimitsConfig
from lnn_control.runtime.loop import ControlLoop, LoopConfig
from lnn_control.runtime.robot import RobotError
from lnn_control.runtime.safety import CommandLimiter, EventLog, Watchdog

# The child imports the module that registers the test env ("module:id" is Gymnasium's syntax for that).
CHILD_DOT_ENV = f"lnn_runtime_testkit:{DOT_ENV_ID}"
PERIOD = 0.02  # DotEnv.dt


def _read_paced(robot: ClockedSimRobot, reads: int) -> list:
    """``reads`` reads one env period apart, like the control loop."""
    frames = []
    start = time.monotonic()
    for k in range(reads):
        time.sleep(max(start + k * PERIOD - time.monotonic(), 0.0))
        frames.append(robot.read())
    return frames


def test_steps_once_per_read_with_the_latest_command_and_stop_is_neutral() -> None:
    with ClockedSimRobot(CHILD_DOT_ENV, seed=7) as robot:
        assert robot.observation_spec.image_shape == (H, W, 3) and robot.observation_spec.extras == ("speed",)
        assert robot.action_spec.low == (-1.0,) and robot.control_period_s == pytest.approx(PERIOD)
        first = robot.read()  # the reset frame
        assert first.image.shape == (H, W, 3) and first.image.dtype == np.uint8 and first.extras == {"speed": 1.5}
        x0 = dot_position(first.image)
        assert robot.write(np.array([0.25])).tolist() == [0.25]
        assert robot.write(np.array([3.0])).tolist() == [1.0]  # clipped to the action space
        robot.write(np.array([0.1]))  # the newest command is the one the next steps use
        frames = _read_paced(robot, 12)
        stamps = [f.timestamp for f in frames]
        assert all(b >= a for a, b in zip(stamps, stamps[1:])) and stamps[-1] > first.timestamp
        time.sleep(3 * PERIOD)
        last = robot.read()
        steps = robot.episode_steps
        assert 10 <= steps <= 13  # one step per read announced (the last read's step may be pending)
        assert dot_position(last.image) == pytest.approx(x0 + 0.02 * steps, abs=0.06)
        assert robot.step_durations and robot.lead_s is not None and 0 < robot.lead_s <= 0.8 * PERIOD
        robot.stop()
        assert robot.held_action.tolist() == [0.0]
        moved = _read_paced(robot, 6)[-1]
        time.sleep(3 * PERIOD)
        assert dot_position(robot.read().image) == pytest.approx(dot_position(moved.image), abs=1.5 * 2 / (W - 1))
    assert not robot.is_connected


def test_episode_end_resets_with_the_next_seed_in_the_child() -> None:
    with ClockedSimRobot(CHILD_DOT_ENV, env_kwargs={"episode_steps": 3}, seed=10) as robot:
        _read_paced(robot, 10)
        time.sleep(3 * PERIOD)
        robot.read()
        assert robot.episodes_finished >= 2
        assert robot.last_episode_info["steps"] == 3 and robot.last_episode_info["terminated"] is False


def test_a_closed_loop_centres_the_dot() -> None:
    policy = CenteringPolicy(gain=1.5)
    events = EventLog()
    with ClockedSimRobot(CHILD_DOT_ENV, seed=3) as robot:
        limiter = CommandLimiter(robot.action_spec, LimitsConfig(), events)
        loop = ControlLoop(robot, policy, LoopConfig(rate_hz=1 / PERIOD), limiter, Watchdog(0.2, events), events=events)
        stats = loop.run(max_steps=60)
        time.sleep(3 * PERIOD)
        final = robot.read()
    assert stats.steps == 60 and stats.policy_steps + stats.hold_steps == 60
    assert abs(dot_position(final.image)) < 0.1, "the closed loop must centre the dot"


def test_a_slow_simulator_delivers_late_frames_but_never_blocks_a_read_for_long() -> None:
    """Steps of 100 ms at a 20 ms period: each read waits at most max_frame_wait_s for the due
    frame, then hands back the newest one it has (the loop holds its command on a repeated frame)."""
    with ClockedSimRobot(CHILD_DOT_ENV, env_kwargs={"step_delay_s": 0.1}, seed=1) as robot:
        assert robot.max_frame_wait_s == pytest.approx(PERIOD / 4)
        robot.read()  # the first read waits for its step
        durations, stamps = [], []
        start = time.monotonic()
        for k in range(20):
            time.sleep(max(start + k * PERIOD - time.monotonic(), 0.0))
            began = time.monotonic()
            stamps.append(robot.read().timestamp)
            durations.append(time.monotonic() - began)
    assert max(durations) < robot.max_frame_wait_s + 0.04  # far from waiting out a 100 ms step
    assert len(set(stamps)) < len(stamps)  # repeated (late) frames
    assert len(set(stamps)) >= 3  # yet the simulator keeps delivering


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
