"""The fixed-rate control loop: sense -> policy / human -> safety -> act, with absolute deadlines.

Timing model (all seconds on ``time.monotonic()``):

- Slot ``k`` starts at ``t0 + k / rate_hz``. The loop sleeps until ``busy_wait_s`` before the
  slot and spins the rest (sleep alone wakes 50-100 us late, spinning the last 0.5 ms brings
  that to a few us; measured by ``lnn-control bench runtime``).
- If a step overruns into later slots, those slots are skipped (counted as deadline misses) and
  the loop waits for the next slot still in the future: it never bursts to catch up.
- ``dt`` handed to ``policy.act(obs, dt)`` is the MEASURED time between the capture timestamps
  of the frame the policy sees now and the frame it saw last step — the sampling interval of
  its input, which is what a liquid network's ODE should integrate over. The first step uses
  the nominal period. If the camera delivered no new frame since the last step, the policy is
  not stepped again on the same input (dt would be 0); the last safe command is re-sent.
- sense->act latency = time ``robot.write()`` returned - capture time of the frame acted upon.
- period jitter = (wake time - previous wake time) - nominal period, for consecutive slots;
  lateness = wake time - slot start.

Safety in every period: robot-side e-stop poll, watchdog on frame age, e-stop latch; any of them
active => ``robot.stop()`` instead of a command. SIGINT/SIGTERM handlers (installed by the CLI)
call :meth:`ControlLoop.request_stop`. Any exception in policy, camera or robot => ``stop()``,
event recorded, exception re-raised. :class:`LinkLostError` (or a RobotError while ``robot.link_ok()`` is False) => stop, then at most
``max_reconnect_attempts`` ``disconnect()`` + ``connect()`` tries, else a LinkLostError that says so.
A link that comes back never resumes motion by itself: a reconnect latches the e-stop, so the robot
gets the stop command for the rest of the run; the operator restarts the run to drive again.

Who commands (:mod:`~lnn_control.runtime.core.arbiter`): the policy (``run``), a human input device
(``teleop``: dead-man held => its command, released => stop) or both (``takeover``: the policy runs on
every new frame, the human's command is sent while the takeover control is held). The device is
polled after ``read()``, so a change reaches the robot in the period it was seen. A human command goes
through the same limiter as the policy's, and is sent on hold steps too (it needs no new frame).
Every step records its :class:`CommandSource`.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import numpy as np

from lnn_control.runtime.core.arbiter import (
    Arbiter,
    CommandSource,
    ControlMode,
    HumanCommand,
    HumanInput,
)
from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot, RobotError
from lnn_control.runtime.core.safety import (
    CommandLimiter,
    EStop,
    EventLog,
    SafetyEventKind,
    Watchdog,
)
from lnn_control.runtime.core.stats import LoopStats, print_summary

__all__ = [  # LoopStats and print_summary moved to core.stats; importable from here as before
    "ControlLoop", "LoopConfig", "LoopStats", "PolicyLike", "StepRecord", "StepSink", "StepState",
    "install_stop_signals", "observation_dict", "print_summary",
]


class PolicyLike(Protocol):
    """What the loop drives a robot with: a torch :class:`~lnn_control.policies.policy.Policy` or an
    exported :class:`~lnn_control.export.onnx_policy.OnnxPolicy`. A policy that also has
    ``neuron_activity() -> np.ndarray`` gets its neurons logged every step."""

    observation_spec: Any
    action_spec: Any

    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray: ...


class StepState:
    """Why a step sent what it sent (string constants, stored in the run log)."""

    RUN = "run"  # a new frame: the policy stepped on it (if there is one)
    HOLD = "hold"  # no new frame: last safe command re-sent (or the human's command)
    WATCHDOG = "watchdog"  # stale frame: stop command
    ESTOP = "estop"  # latched e-stop: stop command


@dataclass
class StepRecord:
    """One control period. Times in monotonic seconds; commands in action units."""

    step: int
    slot_time: float
    wake_time: float
    frame_timestamp: float
    frame_index: int | None
    state: str
    dt: float | None
    command: np.ndarray | None  # raw policy output (None: the policy did not run)
    sent: np.ndarray | None  # after the limiter; stop steps: the neutral command the stop stands for
    applied: np.ndarray | None  # what robot.write() reported (None: robot.stop() was called)
    write_time: float
    latency: float
    compute_time: float  # wake -> write done
    neurons: np.ndarray | None
    image: np.ndarray
    extras: dict[str, float] = field(default_factory=dict)
    source: str = CommandSource.POLICY.value  # who commanded: policy | human | stop
    human: HumanCommand | None = None  # the human input's sample this step, while one is attached
    episode: int | None = None  # simulated robots: which episode the frame belongs to (resets split datasets)


class StepSink(Protocol):
    """Receives every step and every safety event (the MCAP run log implements it)."""

    def write_step(self, record: StepRecord) -> None: ...

    def write_event(self, event: Any) -> None: ...


@dataclass(frozen=True)
class LoopConfig:
    """rate_hz: control rate; busy_wait_s: spin this long before each slot (0 = sleep only);
    max_reconnect_attempts / reconnect_backoff_s: after link loss; live_stats_interval_s:
    one status line this often (0 = none)."""

    rate_hz: float
    busy_wait_s: float = 0.0005
    max_reconnect_attempts: int = 3
    reconnect_backoff_s: float = 0.5
    live_stats_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in (0, 1000], got {self.rate_hz!r}")
        if not 0 <= self.busy_wait_s < 1 / self.rate_hz:
            raise ValueError(f"busy_wait_s must be in [0, period), got {self.busy_wait_s!r}")
        if self.max_reconnect_attempts < 0:
            raise ValueError(f"max_reconnect_attempts must be >= 0, got {self.max_reconnect_attempts}")
        if self.reconnect_backoff_s < 0 or self.live_stats_interval_s < 0:
            raise ValueError("reconnect_backoff_s and live_stats_interval_s must be >= 0")


def observation_dict(obs: Observation) -> dict[str, np.ndarray]:
    """Robot observation -> the policy's input dict ``{"image": HxWx3 uint8, extra: (1,) float32}``."""
    return {
        "image": obs.image,
        **{name: np.array([value], np.float32) for name, value in obs.extras.items()},
    }


class ControlLoop:
    """Drive ``robot`` with ``policy`` and/or a human at ``config.rate_hz`` until stopped; see module docstring."""

    def __init__(
        self,
        robot: Robot,
        policy: PolicyLike | None,
        config: LoopConfig,
        limiter: CommandLimiter,
        watchdog: Watchdog,
        estop: EStop | None = None,
        sink: StepSink | None = None,
        events: EventLog | None = None,
        live_stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        human: HumanInput | None = None,
        mode: ControlMode = ControlMode.RUN,
    ) -> None:
        """``policy`` may be None only in ``teleop`` mode; ``human`` is required in ``teleop`` and
        ``takeover`` mode (opened and bound to the robot's actions by the caller)."""
        self.robot = robot
        self.policy = policy
        self.config = config
        self.limiter = limiter
        self.watchdog = watchdog
        self.events = events or limiter.events
        self.estop = estop or EStop(self.events)
        self.sink = sink
        self.live_stream = live_stream
        self.clock = clock
        self.period = 1.0 / config.rate_hz
        self.stats = LoopStats(config.rate_hz)
        self._stop_requested = threading.Event()
        # waiting: by default on the stop event (a signal handler wakes it at once); tests pass a
        # fake clock's sleep, which advances that clock instead (with busy_wait_s 0: nothing spins)
        self._sleep = sleep if sleep is not None else self._stop_requested.wait
        self._stop_reason = ""
        if sink is not None:
            self.events.subscribe(sink.write_event)
        self.arbiter = Arbiter(mode, human, policy is not None, self.events, self.estop, self.request_stop)

    # -- control ---------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to end after the current period (signal-handler and thread safe)."""
        self._stop_reason = reason
        self._stop_requested.set()

    def _sleep_until(self, deadline: float) -> float:
        spin_from = deadline - self.config.busy_wait_s
        now = self.clock()
        if now < spin_from:
            self._sleep(spin_from - now)
        now = self.clock()
        while now < deadline and not self._stop_requested.is_set():
            now = self.clock()
        return now

    def _send_stop(self, why: str) -> None:
        try:
            self.robot.stop()
            self.events.record(SafetyEventKind.STOP_COMMAND, f"stop command sent ({why})")
        except Exception as exc:  # the stop must not hide the original problem
            self.events.record(SafetyEventKind.EXCEPTION, f"robot.stop() failed during {why}: {exc!r}")

    # -- main loop -------------------------------------------------------------------------
    def run(self, duration_s: float | None = None, max_steps: int | None = None) -> LoopStats:
        """Run until ``duration_s`` / ``max_steps`` / :meth:`request_stop`; returns the stats.

        The robot must be connected. The stop command is sent when the loop ends, whatever the
        reason; exceptions are re-raised after it.
        """
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be > 0 seconds or None, got {duration_s!r}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps!r}")
        if self.policy is not None:
            self.policy.reset()
        self.limiter.reset()
        # Full garbage-collector passes over everything set-up allocated (torch, the simulator)
        # took 20-40 ms and landed inside periods: freeze those objects (O(1), no collection, so
        # the loop starts at once) and passes during the run walk only what the run allocates.
        # Undone when the run ends.
        gc.freeze()
        self._last_frame_ts: float | None = None
        self._estop_step: int | None = None
        self._last_sent: np.ndarray | None = None
        self._last_write: float | None = None
        t0 = self.clock()
        end = None if duration_s is None else t0 + duration_s
        next_live = t0 + self.config.live_stats_interval_s
        slot = 0
        previous_wake: float | None = None
        previous_slot = -1
        try:
            while not self._stop_requested.is_set():
                slot_time = t0 + slot * self.period
                if end is not None and slot_time > end:
                    self.stats.stop_reason = f"duration {duration_s} s reached"
                    break
                wake = self._sleep_until(slot_time)
                if self._stop_requested.is_set():
                    break
                self.stats.lateness.append(wake - slot_time)
                if previous_wake is not None and slot == previous_slot + 1:
                    self.stats.period_jitter.append(wake - previous_wake - self.period)
                previous_wake, previous_slot = wake, slot
                try:
                    self._step(slot, slot_time, wake)
                except RobotError as exc:
                    if not self._is_link_loss(exc):
                        raise
                    self._recover_link(exc)
                done = self.clock()
                if max_steps is not None and self.stats.steps >= max_steps:
                    self.stats.stop_reason = f"{max_steps} steps done"
                    break
                next_slot = slot + 1
                if done > t0 + next_slot * self.period:
                    # overran: skip every slot whose start already passed (never burst)
                    skip_to = math.floor((done - t0) / self.period) + 1
                    missed = skip_to - next_slot
                    self.stats.deadline_misses += missed
                    self.events.record(
                        SafetyEventKind.DEADLINE_MISS,
                        f"step {self.stats.steps - 1} took {(done - wake) * 1e3:.1f} ms; "
                        f"skipped {missed} slot(s)",
                        done,
                    )
                    next_slot = skip_to
                slot = next_slot
                if self.live_stream is not None and self.config.live_stats_interval_s > 0 and done >= next_live:
                    print(self.stats.status_line(), file=self.live_stream, flush=True)
                    next_live = done + self.config.live_stats_interval_s
            if self._stop_requested.is_set():
                self.stats.stop_reason = self._stop_reason
                self.events.record(SafetyEventKind.STOP_REQUESTED, self._stop_reason)
        except BaseException as exc:
            self.stats.stop_reason = self._with_estop(f"{type(exc).__name__}: {exc}")
            self.events.record(SafetyEventKind.EXCEPTION, f"{type(exc).__name__}: {exc}")
            self._send_stop("exception handling")
            raise
        finally:
            gc.unfreeze()
        self._poll_robot_estop()  # a hand-over in the last step shows in the summary too
        self.stats.stop_reason = self._with_estop(self.stats.stop_reason)
        self._send_stop("shutdown")
        return self.stats

    def _poll_robot_estop(self) -> None:
        """Latch the e-stop when the robot side asks for it (button, pilot, failsafe, hand-over)."""
        if self.robot.estop_requested():
            self.estop.trigger(self.robot.estop_detail())
            if self._estop_step is None:
                self._estop_step = self.stats.steps

    def _with_estop(self, reason: str) -> str:
        """The run's end reason, led by the e-stop when one was latched (it decided the run)."""
        if self._estop_step is None:
            return reason
        return f"e-stop latched at step {self._estop_step} ({self.estop.reason}); run ended: {reason}"

    def _step(self, step_slot: int, slot_time: float, wake: float) -> None:
        robot = self.robot
        self._poll_robot_estop()
        obs = robot.read()
        now = self.clock()
        human = self.arbiter.poll(now, self._last_sent)
        fresh = self.watchdog.check(obs.timestamp, now)
        command = sent = applied = neurons = None
        dt: float | None = None
        if self.estop.is_set:
            state = StepState.ESTOP
        elif not fresh:
            state = StepState.WATCHDOG
        elif self._last_frame_ts is not None and obs.timestamp <= self._last_frame_ts:
            state = StepState.HOLD
        else:
            state = StepState.RUN
        if state == StepState.ESTOP and self._estop_step is None:
            self._estop_step = self.stats.steps
        if state == StepState.RUN:
            dt = self.period if self._last_frame_ts is None else obs.timestamp - self._last_frame_ts
            self._last_frame_ts = obs.timestamp
            if self.policy is not None:  # also while a human drives: its command is logged (DAgger)
                command, neurons = self._act(obs, dt)
        source = self.arbiter.choose(human, state in (StepState.ESTOP, StepState.WATCHDOG))
        if source == CommandSource.HUMAN:
            assert human is not None  # the arbiter picks the human only with a sample
            sent = self.limiter.limit(human.values, self._since_write())
            applied = robot.write(sent)
            self._last_sent = sent
            self.stats.human_steps += 1
        elif source == CommandSource.POLICY and command is not None:
            sent = self.limiter.limit(command, self._since_write())
            applied = robot.write(sent)
            self._last_sent = sent
        elif source == CommandSource.POLICY and self._last_sent is not None:  # no new frame: hold
            sent = self._last_sent
            applied = robot.write(sent)
        else:  # safety stop, dead-man released, or nothing to hold since a stop / reconnect
            if source == CommandSource.STOP:  # (holding with nothing to hold is counted as a hold)
                self.stats.stop_steps += 1
            source = CommandSource.STOP
            robot.stop()
            sent = self.limiter.neutral.astype(np.float32)
            self.limiter.reset()  # resume from neutral, not from the pre-stop command
            self._last_sent = None
        if state == StepState.HOLD:
            self.stats.hold_steps += 1
        write_time = self.clock()
        self._last_write = write_time
        self.stats.watchdog_trips = self.watchdog.trips
        self.stats.latency.append(write_time - obs.timestamp)
        self.stats.compute.append(write_time - wake)
        record = StepRecord(
            step=self.stats.steps,
            slot_time=slot_time,
            wake_time=wake,
            frame_timestamp=obs.timestamp,
            frame_index=obs.frame_index,
            state=state,
            dt=dt,
            command=command,
            sent=sent,
            applied=None if applied is None else np.asarray(applied, np.float32),
            write_time=write_time,
            latency=write_time - obs.timestamp,
            compute_time=write_time - wake,
            neurons=neurons,
            image=obs.image,
            extras=dict(obs.extras),
            episode=robot.episodes_finished,
            source=source.value,
            human=human,
        )
        self.stats.steps += 1
        if self.sink is not None:
            self.sink.write_step(record)

    def _act(self, obs: Observation, dt: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Step the policy on a new frame: its raw command and neuron activity (if it reports any)."""
        assert self.policy is not None
        command = np.asarray(self.policy.act(observation_dict(obs), dt), np.float32)
        self.stats.policy_steps += 1
        self.stats.policy_dt.append(dt)
        activity = getattr(self.policy, "neuron_activity", None)
        neurons = None if activity is None else np.asarray(activity(), np.float32).reshape(-1)
        return command, neurons

    def _since_write(self) -> float:
        return self.period if self._last_write is None else self.clock() - self._last_write

    def _is_link_loss(self, error: RobotError) -> bool:
        """LinkLostError, or any RobotError while the robot reports ``link_ok() == False``."""
        if isinstance(error, LinkLostError):
            return True
        try:
            return not self.robot.link_ok()
        except Exception:  # noqa: BLE001 - a robot that cannot even answer has lost its link
            return True

    def _recover_link(self, error: RobotError) -> None:
        self.events.record(SafetyEventKind.LINK_LOST, str(error))
        self._send_stop("link loss")
        failures: list[str] = []
        for attempt in range(1, self.config.max_reconnect_attempts + 1):
            self._sleep(self.config.reconnect_backoff_s)
            if self._stop_requested.is_set():
                return
            try:
                self.robot.disconnect()
                self.robot.connect()
            except (RobotError, OSError) as exc:
                failures.append(f"attempt {attempt}: {exc}")
                continue
            self.stats.reconnects += 1
            self.events.record(SafetyEventKind.RECONNECTED, f"reconnected on attempt {attempt}")
            self.limiter.reset()
            self._last_sent = None
            # the link is back, the robot is not re-engaged: only the operator resumes motion
            self.estop.trigger("link restored after a loss; motion stays stopped until the operator starts a new run")
            return
        raise LinkLostError(
            f"link lost ({error}); {self.config.max_reconnect_attempts} reconnect attempt(s) failed"
            + (": " + "; ".join(failures) if failures else "")
            + ". Check the cable / radio and the robot's power, then start the run again."
        ) from error


def install_stop_signals(loop: ControlLoop) -> Callable[[], None]:
    """Make SIGINT and SIGTERM end ``loop`` cleanly (stop command sent); returns an undo function."""
    import signal

    previous = {}

    def handler(signum: int, frame: object) -> None:
        loop.request_stop(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
