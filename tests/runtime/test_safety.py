"""Command limiter, watchdog and latched e-stop."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnn_control.runtime.core.safety import (
    CommandLimiter,
    EStop,
    EventLog,
    LimitsConfig,
    SafetyEventKind,
    Watchdog,
)
from lnn_control.spec import ActionSpec

CAR = ActionSpec(("steering", "throttle"), (-1.0, 0.0), (1.0, 1.0), ("normalized", "normalized"))


def test_clamp_and_slew_rate_per_component() -> None:
    limiter = CommandLimiter(CAR, LimitsConfig(high=(1.0, 0.5), max_rate_per_s=(2.0, 1.0)))
    # from neutral (0, 0): at most 2/s * 0.1 s = 0.2 steering, 0.1 throttle
    assert limiter.limit(np.array([5.0, 5.0]), 0.1) == pytest.approx([0.2, 0.1])
    assert limiter.limit(np.array([5.0, 5.0]), 0.1) == pytest.approx([0.4, 0.2])
    out = None
    for _ in range(20):
        out = limiter.limit(np.array([5.0, 5.0]), 0.1)
    assert out == pytest.approx([1.0, 0.5])  # clamped to the tighter launch-file bound
    assert limiter.limit(np.array([-1.0, 0.0]), 0.05) == pytest.approx([0.9, 0.45])
    assert limiter.clamped_steps >= 20 and limiter.slew_limited_steps >= 3
    limiter.reset()
    assert limiter.limit(np.array([-1.0, 0.3]), 0.1) == pytest.approx([-0.2, 0.1])


def test_nonfinite_command_becomes_neutral_and_is_recorded() -> None:
    events = EventLog()
    limiter = CommandLimiter(CAR, LimitsConfig(neutral=(0.0, 0.0)), events)
    limiter.limit(np.array([0.7, 0.4]), 0.02)
    out = limiter.limit(np.array([np.nan, 0.5]), 0.02)
    assert out.tolist() == [0.0, 0.0] and out.dtype == np.float32
    out = limiter.limit(np.array([0.1, np.inf]), 0.02)
    assert out.tolist() == [0.0, 0.0]
    assert events.count(SafetyEventKind.NONFINITE_COMMAND) == 2
    assert "nan" in events.events[0].detail


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=2, max_size=2),
    st.floats(0.0, 1.0),
)
def test_output_always_inside_bounds_and_rate(raw: list[float], dt: float) -> None:
    limiter = CommandLimiter(CAR, LimitsConfig(max_rate_per_s=(3.0, 3.0)))
    first = limiter.limit(np.array([0.5, 0.5]), 1.0)
    out = limiter.limit(np.array(raw), dt)
    assert np.all(np.isfinite(out))
    assert np.all(out >= np.array(CAR.low)) and np.all(out <= np.array(CAR.high))
    if np.all(np.isfinite(raw)):
        assert np.all(np.abs(out - first) <= 3.0 * dt + 1e-6)


def test_bad_limits_name_the_problem() -> None:
    with pytest.raises(ValueError, match="limits.low has 1 entries"):
        CommandLimiter(CAR, LimitsConfig(low=(0.0,)))
    with pytest.raises(ValueError, match="limits for 'throttle'"):
        CommandLimiter(CAR, LimitsConfig(low=(-1.0, -0.5)))
    with pytest.raises(ValueError, match="max_rate_per_s must be > 0"):
        CommandLimiter(CAR, LimitsConfig(max_rate_per_s=(1.0, 0.0)))
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        CommandLimiter(CAR).limit(np.zeros(3), 0.1)


def test_watchdog_trips_once_and_clears() -> None:
    events = EventLog()
    dog = Watchdog(0.05, events)
    assert dog.check(frame_timestamp=10.0, now=10.04)
    assert not dog.check(frame_timestamp=10.0, now=10.06)
    assert not dog.check(frame_timestamp=10.0, now=10.5)
    assert dog.trips == 1 and dog.tripped
    assert dog.check(frame_timestamp=10.49, now=10.5)
    assert not dog.tripped
    kinds = [e.kind for e in events.events]
    assert kinds == [SafetyEventKind.WATCHDOG_TRIP, SafetyEventKind.WATCHDOG_CLEAR]
    assert events.events[0].time == 10.06
    with pytest.raises(ValueError, match="max_frame_age_s"):
        Watchdog(0.0)


def test_estop_latches_until_reset_and_fires_on_signal() -> None:
    events = EventLog()
    estop = EStop(events)
    estop.install_signal(signal.SIGUSR1)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 2.0
        while not estop.is_set and time.monotonic() < deadline:
            pass
        assert estop.is_set and estop.reason == "signal SIGUSR1"
        estop.trigger("second trigger is ignored while latched")
        assert estop.reason == "signal SIGUSR1"
        assert estop.is_set  # still latched: nothing clears it but reset()
        estop.reset()
        assert not estop.is_set
    finally:
        estop.uninstall_signals()
    assert [e.kind for e in events.events] == [SafetyEventKind.ESTOP, SafetyEventKind.ESTOP_RESET]


def test_keyboard_estop_on_a_real_terminal() -> None:
    import io
    import pty

    from lnn_control.runtime.core.safety import KeyboardEStop

    master, slave = pty.openpty()
    stream = os.fdopen(slave, "r", buffering=1)
    try:
        estop = EStop()
        keyboard = KeyboardEStop(estop, stream)
        assert keyboard.start()  # a pty is a terminal: cbreak mode, reader thread running
        os.write(master, b"x")
        os.write(master, b"e")
        deadline = time.monotonic() + 2.0
        while not estop.is_set and time.monotonic() < deadline:
            pass
        assert estop.is_set and estop.reason == "keyboard key 'e'"
        keyboard.stop()
    finally:
        os.close(master)
        stream.close()
    assert KeyboardEStop(EStop(), io.StringIO("e")).start() is False  # not a terminal: no thread
