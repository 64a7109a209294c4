"""Teleop and takeover through the real loop and safety layer, on a real Gymnasium env behind
LockstepSimRobot: the keyboard through a real pseudo-terminal, the gamepad through a FIFO carrying
evdev records. Timing claims are checked on the steps read back from the MCAP run log."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from lnn_hw_testkit import wait_until
from lnn_runtime_testkit import DOT_ENV_ID, CenteringPolicy, H, W
from lnn_teleop_testkit import STICK, Background, Pad, steps_of, switch_delay

from lnn_control.runtime.inputs.config import (
    AxisBinding,
    GamepadConfig,
    KeyboardConfig,
    TeleopConfig,
)
from lnn_control.runtime.inputs.evdev_events import (
    ABS_CODES,
    BUTTON_CODES,
    EV_ABS,
    EV_KEY,
)
from lnn_control.runtime.inputs.gamepad import GamepadInput
from lnn_control.runtime.inputs.keyboard import KeyboardInput
from lnn_control.runtime.launch import (
    LaunchConfig,
    LoopSettings,
    RobotConfig,
    RunLogSettings,
    SimConfig,
    WatchdogConfig,
)
from lnn_control.runtime.logs.replay import replay_log
from lnn_control.runtime.logs.runlog import read_run_log
from lnn_control.runtime.session import run_launch
from lnn_control.runtime.teleop import teleop_launch
from lnn_control.spec import ActionSpec, ObservationSpec

# end to end, each test drives a real-time loop for 1-2 s: outside `make test-fast`, still run by `make test`
pytestmark = pytest.mark.slow

RATE = 50.0
PERIOD = 1.0 / RATE
X, TL, TR = ABS_CODES["ABS_X"], BUTTON_CODES["BTN_TL"], BUTTON_CODES["BTN_TR"]


def launch(tmp_path: Path, hold_s: float = 0.2) -> LaunchConfig:
    pad = GamepadConfig(device=str(tmp_path / "pad.fifo"), mapping="none",
                        axes={"action_0": AxisBinding("ABS_X", invert=True, range=STICK)})
    return LaunchConfig(
        policy="not used by teleop",
        rate_hz=RATE,
        robot=RobotConfig("sim", SimConfig(DOT_ENV_ID, seed=3, pacing="lockstep")),
        watchdog=WatchdogConfig(0.2),
        loop=LoopSettings(warm_up_steps=0, live_stats_interval_s=0.0),
        log=RunLogSettings(dir=None, image_format="png"),
        teleop=TeleopConfig(keyboard=KeyboardConfig(step=0.25, hold_s=hold_s), gamepad=pad, status_interval_s=0.2),
    )


class SpecPolicy(CenteringPolicy):
    """The test kit's centring policy with the specs ``run`` checks against the robot."""

    observation_spec = ObservationSpec((H, W, 3), ("speed",), ("",))
    action_spec = ActionSpec(("action_0",), (-1.0,), (1.0,), ("",))


class StatusLines(logging.Handler):
    """Collects the teleop status lines (they go through logging, not print)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.logger = logging.getLogger("lnn_control.runtime.teleop")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> StatusLines:
        self.logger.addHandler(self)
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


def test_keyboard_teleop_on_a_pty_drives_the_sim_and_the_deadman_stops_it(tmp_path: Path) -> None:
    master, slave = os.openpty()
    config = launch(tmp_path)
    keyboard = KeyboardInput(config.teleop.keyboard, fd=slave)
    log_path = tmp_path / "teleop.mcap"
    with StatusLines() as status:
        try:
            run = Background(teleop_launch, config, "test", keyboard, log_path=log_path, handle_signals=False)
            wait_until(lambda: log_path.exists(), what="the run log")
            time.sleep(0.2)  # the loop runs with no key: stop commands
            for _ in range(12):  # a held key autorepeats (~30 Hz)
                os.write(master, b"w")
                time.sleep(0.03)
            wait_until(lambda: keyboard.keys_seen == 12, what="12 keys")
            time.sleep(0.45)
            released_at = keyboard.last_key_time
            assert released_at is not None
            os.write(master, b"q")
            result = run.join()
        finally:
            os.close(master)
            os.close(slave)
    assert result.stats.stop_reason == "keyboard quit control" and result.stats.policy_steps == 0
    log = read_run_log(log_path)
    assert log.complete and log.mode == "teleop" and log.takeover is None and log.format_version == 2
    assert log.action_names == ("action_0",) and not log.topic("/commands/policy")
    steps = steps_of(log)
    assert all(s["human"] is not None for s in steps)  # /commands/human every step
    assert steps[0]["source"] == "stop" and steps[0]["value"] == 0.0  # no key yet: the stop command
    driving = [s for s in steps if s["source"] == "human"]
    assert len(driving) >= 10 and max(s["value"] for s in driving) == pytest.approx(1.0)  # 0.25 per press, clamped
    assert all(s["human"]["deadman"] for s in driving)
    delay = switch_delay(steps, released_at, released_at + config.teleop.keyboard.hold_s, "human", "stop", PERIOD)
    print(f"keyboard dead-man: stop {delay * 1e3:.1f} ms after the hold window ended (period {PERIOD * 1e3:.0f} ms)")
    assert steps[-1]["source"] == "stop" and steps[-1]["human"]["values"]["action_0"] == 0.0
    events = [m.payload["kind"] for m in log.topic("/safety/events")]
    assert "control_source" in events
    with pytest.raises(ValueError, match="is a teleop log: a human drove and no policy ran"):
        replay_log(log, SpecPolicy())
    lines = status.lines
    assert any(line.startswith("HUMAN  action_0 +1.00 | dead-man held") and f"REC {log_path}" in line for line in lines)
    assert any(line.startswith("STOP") and "dead-man released" in line for line in lines)
    assert len(lines) <= 2 * 2.5 / 0.2  # one per status_interval_s plus one per source change: no spam


def test_gamepad_deadman_release_stops_within_one_period(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pad.fifo")
    config = launch(tmp_path)
    pad = GamepadInput(config.teleop.gamepad)
    log_path = tmp_path / "pad.mcap"
    run = Background(teleop_launch, config, "test", pad, duration_s=1.6, log_path=log_path, handle_signals=False)
    writer = Pad(tmp_path / "pad.fifo", pad)
    try:
        time.sleep(0.2)
        pressed = writer.send((EV_ABS, X, -32768), (EV_KEY, TL, 1))  # stick full left, LB held
        time.sleep(0.5)
        released = writer.send((EV_KEY, TL, 0))  # let go of the dead-man; the stick stays left
        result = run.join()
    finally:
        writer.close()
    assert result.stats.human_steps >= 15
    steps = steps_of(read_run_log(log_path))
    taken = switch_delay(steps, pressed - 0.15, pressed, "stop", "human", PERIOD)
    stopped = switch_delay(steps, pressed, released, "human", "stop", PERIOD)
    print(f"gamepad dead-man: human {taken * 1e3:.1f} ms after press, stop {stopped * 1e3:.1f} ms after release")
    after = [s for s in steps if s["wake"] > released]
    assert all(s["human"]["values"]["action_0"] == pytest.approx(1.0) for s in after)  # stick still deflected
    assert all(s["value"] == 0.0 and not s["human"]["deadman"] for s in after)  # ... yet the robot stops


def test_gamepad_takeover_switches_source_within_one_period_and_logs_the_policy(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pad.fifo")
    config = launch(tmp_path)
    pad = GamepadInput(config.teleop.gamepad)
    log_path = tmp_path / "takeover.mcap"
    run = Background(run_launch, config, "test", duration_s=1.8, log_path=log_path, policy=SpecPolicy(),
                     handle_signals=False, keyboard_estop=False, takeover=pad)
    writer = Pad(tmp_path / "pad.fifo", pad)
    try:
        time.sleep(0.4)
        grabbed = writer.send((EV_ABS, X, 32767), (EV_KEY, TR, 1))  # RB held, stick full right
        time.sleep(0.5)
        handed_back = writer.send((EV_KEY, TR, 0))
        result = run.join()
    finally:
        writer.close()
    log = read_run_log(log_path)
    assert log.mode == "run" and log.takeover == "gamepad"
    steps = steps_of(log)
    taken = switch_delay(steps, grabbed - 0.3, grabbed, "policy", "human", PERIOD)
    back = switch_delay(steps, grabbed, handed_back, "human", "policy", PERIOD)
    print(f"gamepad takeover: human {taken * 1e3:.1f} ms after RB, policy {back * 1e3:.1f} ms after release")
    human = [s for s in steps if s["source"] == "human"]
    assert len(human) >= 15 and result.stats.human_steps == len(human)
    assert all(s["value"] == pytest.approx(-1.0) for s in human)  # stick right => action -1 (inverted)
    # the policy kept running in the human segment: its command is logged there too (DAgger labels)
    assert all(s["policy"] is not None for s in human if s["state"] == "run")
    assert len(log.topic("/commands/policy")) == result.stats.policy_steps >= len(steps) - 2
    assert all(s["human"]["takeover"] == (s["source"] == "human") for s in steps)


def test_keyboard_takeover_hands_back_after_the_hold_window_and_space_latches_the_estop(tmp_path: Path) -> None:
    master, slave = os.openpty()
    config = launch(tmp_path, hold_s=0.15)
    keyboard = KeyboardInput(config.teleop.keyboard, fd=slave, takeover_mode=True)
    log_path = tmp_path / "kb.mcap"
    try:
        run = Background(run_launch, config, "test", duration_s=1.6, log_path=log_path, policy=SpecPolicy(),
                         handle_signals=False, keyboard_estop=False, takeover=keyboard)
        wait_until(lambda: log_path.exists(), what="the run log")
        time.sleep(0.3)
        os.write(master, b"h")  # take over, holding what the policy commanded
        wait_until(lambda: keyboard.last_key_time is not None, what="the takeover")
        taken_at = keyboard.last_key_time
        time.sleep(0.5)  # no further key: hands back after hold_s
        os.write(master, b" ")
        result = run.join()
    finally:
        os.close(master)
        os.close(slave)
    assert result.stats.stop_reason.startswith("e-stop latched") and "keyboard e-stop control" in result.stats.stop_reason
    steps = steps_of(read_run_log(log_path))
    sources = [s["source"] for s in steps]
    first_human = sources.index("human")
    assert set(sources[:first_human]) == {"policy"} and steps[first_human]["wake"] > taken_at - PERIOD
    # bumpless: the human's first command is the policy's last sent command
    assert steps[first_human]["value"] == pytest.approx(steps[first_human - 1]["value"], abs=1e-6)
    assert taken_at is not None
    back = switch_delay(steps, taken_at, taken_at + 0.15, "human", "policy", PERIOD)
    print(f"keyboard takeover: policy again {back * 1e3:.1f} ms after the hold window ended")
    assert sources[-1] == "stop" and "stop" not in sources[:first_human]


def test_a_lost_gamepad_latches_the_estop(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pad.fifo")
    config = launch(tmp_path)
    pad = GamepadInput(config.teleop.gamepad)
    log_path = tmp_path / "lost.mcap"
    run = Background(teleop_launch, config, "test", pad, duration_s=1.0, log_path=log_path, handle_signals=False)
    writer = Pad(tmp_path / "pad.fifo", pad)
    writer.send((EV_KEY, TL, 1), (EV_ABS, X, -32768))
    time.sleep(0.2)
    writer.close()  # unplugged
    result = run.join()
    assert "input lost" in result.stats.stop_reason
    log = read_run_log(log_path)
    kinds = [m.payload["kind"] for m in log.topic("/safety/events")]
    assert "input_lost" in kinds and "estop" in kinds
    steps = steps_of(log)
    lost = next(i for i, s in enumerate(steps) if s["human"] is None)
    assert all(s["source"] == "stop" and s["state"] == "estop" for s in steps[lost:])
    assert np.isclose(steps[lost - 1]["value"], 1.0)
