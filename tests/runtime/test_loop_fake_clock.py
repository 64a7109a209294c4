"""The control loop's timing logic on a fake clock: exact slots, skips, watchdog trips and dt, with
no dependence on how loaded the machine is. (The real-time behaviour is measured by
``lnn-control bench runtime``; tests/runtime/test_loop.py keeps a few real-clock runs.)"""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.runtime.core.loop import ControlLoop, LoopConfig, StepState
from lnn_control.runtime.core.robot import Observation, Robot
from lnn_control.runtime.core.safety import CommandLimiter, EventLog, SafetyEventKind, Watchdog
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

RATE = 50.0
PERIOD = 1.0 / RATE


class FakeClock:
    """Monotonic seconds that move only when something sleeps or works."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class ScriptedCamera(Robot):
    """A robot whose camera delivers a frame at the given capture times (fake clock) and whose
    ``read()`` / ``write()`` take the given time; records every command and stop."""

    def __init__(self, clock: FakeClock, capture_times: list[float], read_s: float = 0.001,
                 slow_reads: dict[int, float] | None = None) -> None:
        self.clock = clock
        self.capture_times = capture_times
        self.read_s = read_s
        self.slow_reads = slow_reads or {}
        self.reads = 0
        self.writes: list[float] = []
        self.stops = 0
        self.observation_spec = ObservationSpec((4, 4, 3))
        self.action_spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
        self._connected = False

    def connect(self) -> None:
        self._connected = True

    def read(self) -> Observation:
        self.clock.sleep(self.slow_reads.get(self.reads, self.read_s))
        self.reads += 1
        delivered = [t for t in self.capture_times if t <= self.clock.now]
        stamp = delivered[-1] if delivered else self.capture_times[0]
        return Observation(np.full((4, 4, 3), len(delivered) % 255, np.uint8), stamp, {})

    def write(self, action: np.ndarray) -> np.ndarray:
        self.writes.append(float(action[0]))
        return np.asarray(action, np.float32)

    def stop(self) -> None:
        self.stops += 1

    def disconnect(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected


class RecordingPolicy:
    def __init__(self) -> None:
        self.dts: list[float] = []

    def reset(self) -> None:
        self.dts.clear()

    def act(self, observation: dict, dt: float) -> np.ndarray:
        self.dts.append(dt)
        return np.array([0.1], np.float32)


def run_loop(robot: ScriptedCamera, clock: FakeClock, steps: int, max_age: float = 1.0):
    events = EventLog()
    policy = RecordingPolicy()
    loop = ControlLoop(
        robot, policy, LoopConfig(rate_hz=RATE, busy_wait_s=0.0, live_stats_interval_s=0.0),
        CommandLimiter(robot.action_spec, events=events), Watchdog(max_age, events), events=events,
        clock=clock, sleep=clock.sleep,
    )
    records = []
    loop.sink = type("Sink", (), {"write_step": lambda self, r: records.append(r), "write_event": lambda self, e: None})()
    with robot:
        stats = loop.run(max_steps=steps)
    return stats, records, policy, events


def test_slots_are_exact_and_an_overrun_skips_whole_slots():
    clock = FakeClock()
    start = clock.now
    frames = [start + k * PERIOD for k in range(200)]
    robot = ScriptedCamera(clock, frames, slow_reads={3: 2.5 * PERIOD})  # the 4th read takes 50 ms
    stats, records, _, events = run_loop(robot, clock, steps=8)
    slots = [round((r.slot_time - start) / PERIOD, 9) for r in records]
    assert slots == [0, 1, 2, 3, 6, 7, 8, 9]  # slot 3 ran until 3 + 2.5 + a bit: slots 4 and 5 skipped
    assert stats.deadline_misses == 2
    assert [e.kind for e in events.events].count(SafetyEventKind.DEADLINE_MISS) == 1
    assert all(r.wake_time == pytest.approx(r.slot_time, abs=1e-9) for r in records)  # exactly on time
    assert max(abs(j) for j in stats.period_jitter) < 1e-9  # float rounding only


def test_the_policy_sees_the_measured_frame_interval_and_holds_between_frames():
    clock = FakeClock()
    start = clock.now
    frames = [start + k * 2.5 * PERIOD for k in range(100)]  # a 20 Hz camera under a 50 Hz loop
    robot = ScriptedCamera(clock, frames)
    stats, records, policy, _ = run_loop(robot, clock, steps=10)
    states = [r.state for r in records]
    assert states.count(StepState.RUN) == len(policy.dts) and StepState.HOLD in states
    assert policy.dts[0] == PERIOD  # the first step: nominal
    assert policy.dts[1:] == pytest.approx([2.5 * PERIOD] * (len(policy.dts) - 1))
    holds = [r for r in records if r.state == StepState.HOLD]
    assert all(r.sent is not None and r.sent[0] == pytest.approx(0.1) for r in holds)


def test_the_watchdog_trips_in_the_first_step_after_the_frame_goes_stale():
    clock = FakeClock()
    start = clock.now
    frames = [start + k * PERIOD for k in range(5)]  # the camera stalls after 5 frames
    robot = ScriptedCamera(clock, frames)
    stats, records, _, events = run_loop(robot, clock, steps=12, max_age=0.05)
    trip_point = frames[-1] + 0.05
    for record in records:
        stale = record.wake_time + robot.read_s - record.frame_timestamp > 0.05
        assert (record.state == StepState.WATCHDOG) == stale
    first = next(r for r in records if r.state == StepState.WATCHDOG)
    assert first.wake_time <= trip_point + PERIOD and stats.watchdog_trips == 1
    assert robot.stops >= stats.stop_steps == sum(r.state == StepState.WATCHDOG for r in records)
    assert [e.kind for e in events.events].count(SafetyEventKind.WATCHDOG_TRIP) == 1
