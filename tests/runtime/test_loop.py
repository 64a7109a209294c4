"""The control loop with real threads, clocks, a real env through LockstepSimRobot and a real video camera."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from lnn_runtime_testkit import DOT_ENV_ID, CameraRobot, CenteringPolicy, H, W

from lnn_control.runtime.core.loop import ControlLoop, LoopConfig, StepRecord, StepState
from lnn_control.runtime.core.robot import LinkLostError
from lnn_control.runtime.core.safety import (
    CommandLimiter,
    EventLog,
    LimitsConfig,
    SafetyEventKind,
    Watchdog,
)
from lnn_control.runtime.hardware.cameras import VideoFileCamera
from lnn_control.runtime.logs.runlog import read_run_log
from lnn_control.runtime.sim.lockstep import LockstepSimRobot

RATE = 50.0
PERIOD = 1 / RATE


class ListSink:
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.events: list = []

    def write_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def write_event(self, event) -> None:
        self.events.append(event)


def make_loop(robot, policy, max_age=0.1, rate=RATE, **config):
    events = EventLog()
    sink = ListSink()
    limiter = CommandLimiter(robot.action_spec, LimitsConfig(), events)
    loop = ControlLoop(
        robot, policy, LoopConfig(rate_hz=rate, **config), limiter, Watchdog(max_age, events), sink=sink, events=events
    )
    return loop, sink


def test_sim_in_the_loop_centres_the_dot_with_measured_dt() -> None:
    policy = CenteringPolicy(gain=1.5)
    with LockstepSimRobot(DOT_ENV_ID, seed=3) as robot:
        loop, sink = make_loop(robot, policy)
        stats = loop.run(max_steps=40)
        final_x = robot.env.unwrapped.x
    assert stats.steps == 40 and stats.policy_steps == 40 and stats.stop_reason == "40 steps done"
    assert abs(final_x) < 0.05, "the closed loop must centre the dot"
    # dt is measured between frame capture times, not the nominal period
    captures = np.array([r.frame_timestamp for r in sink.steps])
    assert policy.dts[0] == pytest.approx(PERIOD)
    assert np.allclose(policy.dts[1:], np.diff(captures))
    assert np.median(policy.dts[1:]) == pytest.approx(PERIOD, abs=0.005)
    # absolute deadlines: slots sit on the grid, wakes never precede their slot
    slots = np.array([r.slot_time for r in sink.steps])
    grid = (slots - slots[0]) / PERIOD
    assert np.allclose(grid, np.round(grid), atol=1e-6)
    assert all(r.wake_time >= r.slot_time for r in sink.steps)
    assert all(0 < r.latency < r.write_time - r.slot_time + PERIOD for r in sink.steps)
    assert sink.steps[5].neurons is not None and sink.steps[5].neurons.shape == (2,)
    summary = stats.summary()
    assert summary["latency_s"]["count"] == 40 and summary["latency_s"]["p99"] > 0
    assert summary["abs_period_jitter_s"]["count"] >= 39 - stats.deadline_misses
    assert [e.kind for e in sink.events][-1] == SafetyEventKind.STOP_COMMAND


def test_nan_from_policy_sends_neutral_and_continues() -> None:
    with LockstepSimRobot(DOT_ENV_ID, seed=1) as robot:
        loop, sink = make_loop(robot, CenteringPolicy(fault="nan", fault_at=4))
        stats = loop.run(max_steps=8)
    assert stats.steps == 8
    bad = sink.steps[3]
    assert np.isnan(bad.command).all() and bad.sent.tolist() == [0.0] and bad.applied.tolist() == [0.0]
    assert [e.kind for e in sink.events].count(SafetyEventKind.NONFINITE_COMMAND) == 1


def test_policy_exception_sends_stop_and_reraises() -> None:
    with LockstepSimRobot(DOT_ENV_ID, seed=1) as robot:
        loop, sink = make_loop(robot, CenteringPolicy(fault="raise", fault_at=3))
        robot.write(np.array([0.9], np.float32))
        with pytest.raises(RuntimeError, match="injected policy failure"):
            loop.run(max_steps=10)
        assert robot.held_action.tolist() == [0.0]  # stop() took effect
    kinds = [e.kind for e in sink.events]
    assert kinds[-2:] == [SafetyEventKind.EXCEPTION, SafetyEventKind.STOP_COMMAND]
    assert len(sink.steps) == 2


def test_overrun_skips_to_next_future_slot_never_bursts() -> None:
    with LockstepSimRobot(DOT_ENV_ID, seed=1) as robot:
        loop, sink = make_loop(robot, CenteringPolicy(fault="slow", fault_at=5, fault_s=2.5 * PERIOD))
        stats = loop.run(max_steps=10)
    slow, after = sink.steps[4], sink.steps[5]
    assert stats.deadline_misses >= 2
    # the step after the overrun starts at the first slot after the overrun ended ...
    assert after.slot_time > slow.write_time
    assert after.slot_time - slow.write_time <= PERIOD + 1e-9
    skipped = round((after.slot_time - slow.slot_time) / PERIOD) - 1
    assert skipped >= 2
    # ... and no step ever runs in a slot that began before the previous step finished (no
    # catch-up burst), slots stay on the grid and never repeat
    for prev, nxt in zip(sink.steps, sink.steps[1:]):
        assert nxt.slot_time > prev.write_time
        assert nxt.slot_time - prev.slot_time >= PERIOD - 1e-9
    assert sum(e.kind == SafetyEventKind.DEADLINE_MISS for e in sink.events) >= 1


def write_clip(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for k in range(frames):
        image = np.zeros((H, W, 3), np.uint8)
        image[:, (5 * k) % W] = 255
        writer.write(image)
    writer.release()
    return path


def test_stalled_camera_trips_watchdog_within_one_period(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=10, fps=50.0)
    max_age = 0.05
    robot = CameraRobot(VideoFileCamera(clip, realtime=True))
    with robot:
        loop, sink = make_loop(robot, CenteringPolicy(), max_age=max_age)
        stats = loop.run(max_steps=25)  # 0.5 s: the 0.2 s clip stalls after 10 frames
        robot.camera.close()
    last_capture = max(r.frame_timestamp for r in sink.steps)
    trip_point = last_capture + max_age
    stale = [r for r in sink.steps if r.wake_time > trip_point + 0.002]
    fresh = [r for r in sink.steps if r.wake_time < trip_point - 0.002]
    assert stale and fresh
    # the stop command: logged as source 'stop' with the neutral command it stands for, nothing applied
    assert all(r.state == StepState.WATCHDOG and r.source == "stop" and r.applied is None for r in stale)
    assert all(r.sent is not None and r.sent.tolist() == [0.0] for r in stale)
    assert all(r.state in (StepState.RUN, StepState.HOLD) for r in fresh)
    first = stale[0]
    # the stop goes out in the first step executed after the frame went stale: the step before
    # it still ran on time (on an idle machine that is within one period; `bench runtime`
    # measures the delay, this shared test machine may stall)
    before = sink.steps[first.step - 1]
    assert before.wake_time <= trip_point + 0.002
    assert first.slot_time - before.slot_time == pytest.approx(PERIOD) or stats.deadline_misses > 0
    assert stats.watchdog_trips == 1 and stats.stop_steps == len([r for r in sink.steps if r.state == "watchdog"])
    assert len(robot.stops) >= stats.stop_steps  # the stop command is repeated every period
    trip = next(e for e in sink.events if e.kind == SafetyEventKind.WATCHDOG_TRIP)
    assert trip.time <= first.write_time


def test_robot_side_estop_latches(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=200, fps=50.0)
    robot = CameraRobot(VideoFileCamera(clip, realtime=True))

    class Trigger(CenteringPolicy):
        def act(self, observation, dt):
            out = super().act(observation, dt)
            robot.estop_flag = self.calls == 3  # raised for exactly one period, then released
            return out

    with robot:
        loop, sink = make_loop(robot, Trigger(), max_age=1.0)
        stats = loop.run(max_steps=8)
        robot.camera.close()
    states = [r.state for r in sink.steps]
    assert states[3:] == [StepState.ESTOP] * 5  # stays latched although the trigger went away
    assert len(robot.writes) <= 3 and stats.stop_steps == 5
    assert loop.estop.is_set and loop.estop.reason == "robot-side e-stop trigger"


def test_link_loss_reconnects_then_gives_up_with_a_clear_report(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=200, fps=50.0)
    robot = CameraRobot(VideoFileCamera(clip, realtime=True), lose_link_at_write=3, failed_reconnects=1)
    with robot:
        loop, sink = make_loop(robot, CenteringPolicy(), max_age=1.0, reconnect_backoff_s=0.01)
        stats = loop.run(max_steps=8)
    assert stats.reconnects == 1 and robot.connects == 3
    kinds = [e.kind for e in sink.events]
    assert kinds.index(SafetyEventKind.LINK_LOST) < kinds.index(SafetyEventKind.RECONNECTED)
    # the link came back but motion did not: the reconnect latched the e-stop, every later step
    # sent the stop command, and the summary says so
    assert kinds.index(SafetyEventKind.RECONNECTED) < kinds.index(SafetyEventKind.ESTOP)
    assert len(robot.writes) == 3 and loop.estop.is_set and "link restored" in loop.estop.reason  # 3 before the loss
    assert stats.stop_steps == stats.steps - 3 and stats.stop_reason.startswith("e-stop latched at step")

    robot = CameraRobot(VideoFileCamera(clip, realtime=True), lose_link_at_write=2, failed_reconnects=10)
    with robot:
        loop, sink = make_loop(
            robot, CenteringPolicy(), max_age=1.0, reconnect_backoff_s=0.01, max_reconnect_attempts=2
        )
        with pytest.raises(LinkLostError, match="2 reconnect attempt\\(s\\) failed.*reconnect 2 refused"):
            loop.run(max_steps=8)
        robot.camera.close()
    assert len(robot.stops) >= 2  # at the loss and when giving up


CHILD = """
import sys, signal
from lnn_runtime_testkit import DOT_ENV_ID, CenteringPolicy
from lnn_control.runtime.core.loop import ControlLoop, LoopConfig, install_stop_signals
from lnn_control.runtime.logs.runlog import RunLogWriter
from lnn_control.runtime.core.safety import CommandLimiter, EventLog, Watchdog
from lnn_control.runtime.sim.lockstep import LockstepSimRobot

class Announce(CenteringPolicy):
    def act(self, obs, dt):
        if self.calls == 5:
            print("running", flush=True)
        return super().act(obs, dt)

events = EventLog()
with LockstepSimRobot(DOT_ENV_ID) as robot, RunLogWriter(sys.argv[1], robot.action_spec.names) as log:
    loop = ControlLoop(robot, Announce(), LoopConfig(rate_hz=50.0), CommandLimiter(robot.action_spec, None, events),
                       Watchdog(0.2, events), sink=log, events=events)
    install_stop_signals(loop)
    stats = loop.run(duration_s=30.0)
    print("stopped:", stats.stop_reason, flush=True)
"""


@pytest.mark.slow
def test_sigint_stops_the_loop_process_and_logs_the_stop_command(tmp_path: Path) -> None:
    log_path = tmp_path / "run.mcap"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env_path = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(log_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    try:
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: signal SIGINT" in out
    log = read_run_log(log_path)
    assert log.complete
    events = [m.payload for m in log.topic("/safety/events")]
    assert [e["kind"] for e in events][-2:] == ["stop_requested", "stop_command"]
    assert events[-2]["detail"] == "signal SIGINT" and "shutdown" in events[-1]["detail"]
    assert len(log.topic("/loop/timing")) >= 5


def test_slow_camera_holds_last_command_and_policy_sees_frame_interval(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "slow.avi", frames=40, fps=10.0)  # 10 fps camera, 50 Hz loop
    robot = CameraRobot(VideoFileCamera(clip, realtime=True))
    policy = CenteringPolicy()
    with robot:
        loop, sink = make_loop(robot, policy, max_age=0.5)
        stats = loop.run(max_steps=30)  # 0.6 s: about 6 new frames
        robot.camera.close()
    runs = [r for r in sink.steps if r.state == StepState.RUN]
    holds = [r for r in sink.steps if r.state == StepState.HOLD]
    assert 3 <= len(runs) <= 8 and len(holds) == 30 - len(runs) and stats.hold_steps == len(holds)
    # the policy is stepped once per new frame, with dt = the measured frame interval: 0.1 s, or a
    # multiple of it if a stall of this (shared, loaded) machine made the loop miss a frame
    assert policy.calls == len(runs)
    intervals = np.array(policy.dts[1:]) / 0.1
    assert np.allclose(intervals, np.round(intervals), atol=1e-5) and np.all(np.round(intervals) >= 1)
    assert np.median(intervals) == pytest.approx(1.0)
    # a hold re-sends exactly the last command computed
    for record in holds:
        previous_run = max((r for r in runs if r.step < record.step), key=lambda r: r.step)
        assert np.array_equal(record.sent, previous_run.sent)
