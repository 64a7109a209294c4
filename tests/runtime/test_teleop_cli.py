"""`lnn-control teleop` and `lnn-control run --takeover keyboard` as processes whose stdin is a real
pseudo-terminal: keys typed into the master end drive the serial car emulator (real pty, real
pyserial, a real video file camera) and the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnn_hw_testkit import EmulatorProcess, start_car_emulator, video_camera, wait_until
from lnn_runtime_testkit import DOT_ENV_ID
from lnn_teleop_testkit import STICK, Background, Pad, steps_of, switch_delay

from lnn_control.runtime.inputs.config import AxisBinding
from lnn_control.runtime.inputs.evdev_events import ABS_CODES, BUTTON_CODES, EV_ABS, EV_KEY
from lnn_control.runtime.inputs.gamepad import GamepadInput
from lnn_control.runtime.launch import load_launch
from lnn_control.runtime.logs.runlog import read_run_log
from lnn_control.runtime.session import run_launch
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

# end to end, each test drives a robot through the CLI on a pty in real time: outside `make test-fast`, still run by `make test`
pytestmark = pytest.mark.slow

pytest.importorskip("serial")


class Terminal:
    """A process running with a pseudo-terminal as its stdin (like a user's shell over SSH)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=cwd, env=env)
        os.close(slave)
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def type(self, keys: bytes, every_s: float = 0.0) -> float:
        """Type ``keys`` (one at a time, ``every_s`` apart); returns the monotonic time of the last."""
        last = time.monotonic()
        for i in range(len(keys)):
            os.write(self.master, keys[i : i + 1])
            last = time.monotonic()
            if every_s:
                time.sleep(every_s)
        return last

    def wait_for(self, text: str, timeout_s: float = 30.0) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the process ended ({self.process.returncode}): {''.join(self.stderr)}")
            return any(text in line for line in self.stderr)

        wait_until(seen, timeout_s, f"{text!r} on stderr")

    def finish(self, timeout_s: float = 30.0) -> str:
        try:
            out, _ = self.process.communicate(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)
        self._reader.join(5)
        return out


@pytest.fixture
def car(tmp_path: Path):
    emulator = start_car_emulator(tmp_path)
    yield emulator
    emulator.stop()


def car_launch(tmp_path: Path, port: str) -> Path:
    clip = video_camera(tmp_path).path
    data = {
        "policy": "lane_keeping_ncp19",  # not loaded by teleop
        "rate_hz": 20,
        "robot": {
            "kind": "serial_car",
            "camera": {"kind": "video_file", "source": str(clip), "loop": True, "realtime": False},
            "settings": {"port": port, "actions": "steering_throttle", "include_speed": True},
        },
        "limits": {"max_rate_per_s": [20.0, 20.0]},
        "watchdog": {"max_frame_age_s": 0.5},
        "log": {"dir": str(tmp_path / "runs")},
        "teleop": {"image_shape": [24, 32], "keyboard": {"hold_s": 0.3}},
    }
    path = tmp_path / "car.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_keyboard_teleop_drives_the_serial_car_and_the_deadman_stops_it(tmp_path: Path, car: EmulatorProcess) -> None:
    launch = car_launch(tmp_path, car.port)
    log_path = tmp_path / "car.mcap"
    term = Terminal([sys.executable, "-m", "lnn_control", "teleop", "--launch", str(launch), "--log", str(log_path)],
                    tmp_path)
    term.wait_for("keyboard: a+steering")  # the key layout is logged once the keys are bound
    wait_until(lambda: car.events("stop"), 20, "the stop commands of a released dead-man")
    last_key = term.type(b"awawawawaw", every_s=0.03)  # steer left 0.5, throttle 0.5
    wait_until(lambda: time.monotonic() > last_key + 0.8, what="the dead-man to release")
    term.type(b"q")
    out = term.finish()
    assert term.process.returncode == 0, "".join(term.stderr)
    assert "stop reason: keyboard quit control" in out and "human" in out

    drives = car.events("drive")
    assert drives and drives[-1]["steer_milli"] == -500 and drives[-1]["throttle_milli"] == 500  # wire: + = right
    hold_end = last_key + 0.3
    late = [d for d in drives if d["t"] > hold_end + 0.05 + 0.02]
    assert not late, f"drive commands after the dead-man released: {late}"
    stop = next(e for e in car.events("stop") if e["t"] > drives[-1]["t"])
    delay = stop["t"] - hold_end
    print(f"serial car: STOP at the MCU {delay * 1e3:.1f} ms after the hold window ended (period 50 ms)")
    assert delay <= 0.05 + 0.02  # one period (+ key stamp and serial transit)

    log = read_run_log(log_path)
    assert log.mode == "teleop" and log.metadata["robot_kind"] == "serial_car"
    sources = [m.payload["source"] for m in log.topic("/commands/sent")]
    assert sources[0] == "stop" and "human" in sources and sources[-1] == "stop"
    assert len(log.topic("/commands/human")) == len(log.topic("/loop/timing"))
    assert any("REC " in line and "HUMAN" in line for line in term.stderr)  # the status line


def test_teleop_without_a_terminal_says_what_to_do(tmp_path: Path, car: EmulatorProcess) -> None:
    launch = car_launch(tmp_path, car.port)
    result = subprocess.run([sys.executable, "-m", "lnn_control", "teleop", "--launch", str(launch), "--no-log"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "keyboard: keyboard input reads keys from a terminal" in result.stderr and "ssh -t" in result.stderr
    assert not car.events("drive") and not car.events("heartbeat")  # the car was never connected


class SteadyCarPolicy:
    """A policy with the car's specs that always commands steering +0.2 (left), throttle 0.3."""

    observation_spec = ObservationSpec((24, 32, 3), ("speed",), ("m/s",))
    action_spec = ActionSpec(("steering", "throttle"), (-1.0, -1.0), (1.0, 1.0), ("normalized", "normalized"),
                             ActionFrame.FLU)

    def reset(self) -> None:
        return None

    def act(self, observation: dict, dt: float) -> np.ndarray:
        return np.array([0.2, 0.3], np.float32)


def test_gamepad_takeover_of_the_serial_car(tmp_path: Path, car: EmulatorProcess) -> None:
    from dataclasses import replace

    fifo = tmp_path / "pad.fifo"
    os.mkfifo(fifo)
    config = load_launch(car_launch(tmp_path, car.port))
    gamepad = replace(config.teleop.gamepad, device=str(fifo),  # the shipped xbox mapping + the FIFO's ranges
                      axes={"steering": AxisBinding("ABS_X", invert=True, range=STICK),
                            "throttle": AxisBinding("ABS_RY", invert=True, range=STICK)})
    config = replace(config, teleop=replace(config.teleop, gamepad=gamepad))
    pad = GamepadInput(config.teleop.gamepad)
    log_path = tmp_path / "takeover.mcap"
    run = Background(run_launch, config, "test", duration_s=1.8, log_path=log_path, policy=SteadyCarPolicy(),
                     handle_signals=False, keyboard_estop=False, takeover=pad)
    writer = Pad(fifo, pad)
    try:
        wait_until(lambda: car.events("drive"), 20, "the policy to drive")
        time.sleep(0.2)
        X, RY, TR = ABS_CODES["ABS_X"], ABS_CODES["ABS_RY"], BUTTON_CODES["BTN_TR"]
        grabbed = writer.send((EV_ABS, X, 32767), (EV_ABS, RY, 0), (EV_KEY, TR, 1))  # RB, full right, no throttle
        time.sleep(0.5)
        released = writer.send((EV_KEY, TR, 0))
        run.join()
    finally:
        writer.close()
    drives = car.events("drive")
    policy = [d for d in drives if d["t"] < grabbed]
    human = [d for d in drives if grabbed + 0.05 + 0.01 < d["t"] < released]
    back = [d for d in drives if d["t"] > released + 0.05 + 0.01]
    assert policy and {(d["steer_milli"], d["throttle_milli"]) for d in policy} == {(-200, 300)}
    assert human and {(d["steer_milli"], d["throttle_milli"]) for d in human} == {(1000, 0)}  # wire: + = right
    assert back and {(d["steer_milli"], d["throttle_milli"]) for d in back} == {(-200, 300)}
    steps = steps_of(read_run_log(log_path))
    taken = switch_delay(steps, grabbed - 0.2, grabbed, "policy", "human", 0.05)
    returned = switch_delay(steps, grabbed, released, "human", "policy", 0.05)
    print(f"serial car takeover: human {taken * 1e3:.1f} ms after RB, policy {returned * 1e3:.1f} ms after release")


def test_run_takeover_keyboard_marks_the_human_segment(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from lnn_control.nn.baselines import BASELINE_CORES
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.bundle import save_policy
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.spec import ActionSpec, ObservationSpec

    torch.manual_seed(0)
    perception = PerceptionConfig(image_height=32, image_width=48, conv_channels=(4, 4), kernel_sizes=(3, 3),
                                  strides=(2, 2), features=4)
    core = BASELINE_CORES["ctrnn"](5, 6, 1)
    config = PolicyConfig(perception=perception, core=core.config(),
                          observation_spec=ObservationSpec((32, 48, 3), ("speed",), ("m/s",)),
                          action_spec=ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",)), control_rate_hz=50.0)
    bundle = save_policy(Policy(config, core=core).eval(), tmp_path / "dot", {"command": "test fixture"})
    launch = tmp_path / "dot.yaml"
    launch.write_text(yaml.safe_dump({
        "policy": str(bundle), "rate_hz": 50, "watchdog": {"max_frame_age_s": 0.2},
        "robot": {"kind": "sim", "sim": {"env_id": f"lnn_runtime_testkit:{DOT_ENV_ID}", "pacing": "lockstep"}},
        "log": {"dir": str(tmp_path / "runs")}, "teleop": {"keyboard": {"hold_s": 0.2}},
    }))
    log_path = tmp_path / "takeover.mcap"
    stats = tmp_path / "stats.json"
    term = Terminal([sys.executable, "-m", "lnn_control", "run", "--launch", str(launch), "--takeover", "keyboard",
                     "--log", str(log_path), "--stats-json", str(stats)], tmp_path)
    term.wait_for("keyboard: w+action_0")  # the generic env names its action action_0: keys w / s
    time.sleep(0.5)  # the policy drives
    term.type(b"wwwwww", every_s=0.03)  # takes over and steers left
    time.sleep(0.6)  # released: the policy drives again
    term.type(b"q")
    out = term.finish(60)
    assert term.process.returncode == 0, "".join(term.stderr)
    assert "stop reason: keyboard quit control" in out
    summary = json.loads(stats.read_text())
    log = read_run_log(log_path)
    assert log.mode == "run" and log.takeover == "keyboard"
    sources = [m.payload["source"] for m in log.topic("/commands/sent")]
    first, last = sources.index("human"), len(sources) - 1 - sources[::-1].index("human")
    assert set(sources[:first]) == {"policy"} and set(sources[first : last + 1]) == {"human"}
    assert "policy" in sources[last + 1 :] and summary["human_steps"] == last + 1 - first
    policy_steps = {m.sequence for m in log.topic("/commands/policy")}
    human_steps = [m.sequence for m in log.topic("/commands/sent") if m.payload["source"] == "human"]
    assert len(policy_steps & set(human_steps)) >= len(human_steps) - 2  # the policy's command in human steps
