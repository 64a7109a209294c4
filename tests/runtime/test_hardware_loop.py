"""`lnn-control run` driving SerialCar / MavlinkDrone through the real control loop, against the
emulators: the loop process's SIGINT and a stalled camera must end in stop commands on the link."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lnn_hw_testkit import H, W, start_car_emulator, video_camera, wait_until

from lnn_control.nn.baselines import BASELINE_CORES
from lnn_control.nn.perception import PerceptionConfig
from lnn_control.policies.bundle import save_policy
from lnn_control.policies.policy import Policy, PolicyConfig
from lnn_control.runtime.emulators.autopilot import AutopilotConfig, AutopilotEmulator, Px4Mode
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

RUN = "import sys; from lnn_control.cli import main; sys.exit(main(sys.argv[1:]))"


def make_bundle(directory: Path, action_spec: ActionSpec, extras: tuple[str, ...]) -> Path:
    torch.manual_seed(0)
    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(4, 4), kernel_sizes=(3, 3), strides=(2, 2), features=4
    )
    core = BASELINE_CORES["ctrnn"](4 + len(extras), 6, action_spec.size)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((H, W, 3), extras, ("m/s",) * len(extras)),
        action_spec=action_spec,
        control_rate_hz=20.0,
    )
    return save_policy(Policy(config, core=core).eval(), directory, {"command": "test fixture", "seed": 0})


def launch_file(tmp_path: Path, bundle: Path, robot: dict, camera_loop: bool, n_frames: int = 10) -> Path:
    video = video_camera(tmp_path, n_frames=n_frames).path
    data = {
        "policy": str(bundle),
        "rate_hz": 20,
        "robot": {**robot, "camera": {"kind": "video_file", "source": str(video), "loop": camera_loop, "fps": 30}},
        "watchdog": {"max_frame_age_s": 0.2},
        "loop": {"warm_up_steps": 1},
    }
    path = tmp_path / "launch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_process(launch: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, "run", "--launch", str(launch), "--no-log", "--quiet", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def end(process: subprocess.Popen) -> None:
    """Kill the loop process if a check failed while it ran; reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=20)


@pytest.fixture(scope="module")
def car_bundle(tmp_path_factory) -> Path:
    spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
    return make_bundle(tmp_path_factory.mktemp("bundles") / "car", spec, ("speed",))


def car_robot(port: str) -> dict:
    return {"kind": "serial_car", "settings": {"port": port, "actions": "steering", "include_speed": True,
                                               "cruise_throttle": 0.2}}


@pytest.mark.slow
def test_sigint_of_the_loop_process_sends_stop_to_the_car(tmp_path, car_bundle):
    emulator = start_car_emulator(tmp_path, "--failsafe-ms", "1000")
    try:
        process = run_process(launch_file(tmp_path, car_bundle, car_robot(emulator.port), camera_loop=True))
    except BaseException:
        emulator.stop()
        raise
    try:
        wait_until(lambda: len(emulator.events("drive")) >= 10 or process.poll() is not None, timeout_s=60,
                   what="the loop driving the car")
        assert process.poll() is None, process.communicate()
        assert all(d["throttle_milli"] == 200 for d in emulator.events("drive"))  # cruise throttle
        assert not emulator.events("stop")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        stops = wait_until(lambda: emulator.events("stop"), what="stop after SIGINT")
        assert stops[-1]["t"] > emulator.events("drive")[-1]["t"]
        assert not [m for m in emulator.events("mode") if m["mode"] == "failsafe"]  # we stopped, not the MCU
    finally:
        end(process)
        emulator.stop()


@pytest.mark.slow
def test_stalled_camera_makes_the_loop_stop_the_drone_then_sigint_ends_it(tmp_path):
    spec = ActionSpec(("vx", "vy", "vz", "yaw_rate"), (-2.0, -1.0, -1.0, -1.0), (2.0, 1.0, 1.0, 1.0),
                      ("m/s", "m/s", "m/s", "rad/s"), ActionFrame.FLU)
    bundle = make_bundle(tmp_path / "drone", spec, ())
    with AutopilotEmulator(AutopilotConfig(heartbeat_hz=10.0)) as autopilot:
        robot = {"kind": "mavlink_drone",
                 "settings": {"connection": f"udpout:127.0.0.1:{autopilot.address[1]}", "stop_action": "land"}}
        # a MAVLink router style link: the autopilot answers whoever sends (udpout from our side)
        # 75 frames at 30 fps, no looping: the camera (opened before the ~1 s offboard sequence)
        # stalls 2.5 s after connect(), leaving the policy time to fly on a loaded machine
        process = run_process(launch_file(tmp_path, bundle, robot, camera_loop=False, n_frames=75))
        try:
            wait_until(lambda: autopilot.mode == Px4Mode.LAND or process.poll() is not None, timeout_s=60,
                       what="the frame watchdog landing the drone")
            assert process.poll() is None, process.communicate()  # the watchdog did it, not the exit
            os.kill(process.pid, signal.SIGINT)
            out, err = process.communicate(timeout=20)
            assert process.returncode == 0, err
            # the watchdog's stop handed the vehicle over: the run latched its e-stop and says why
            assert "e-stop latched at step" in out and "handed the vehicle to LAND" in out
        finally:
            end(process)
        offboard = next(m for m in autopilot.mode_changes if m.mode == Px4Mode.OFFBOARD)
        land = next(m for m in autopilot.mode_changes if m.mode == Px4Mode.LAND)
        assert land.cause == "command" and land.t > offboard.t
        flown = [s for s in autopilot.setpoints if offboard.t < s.t <= land.t]
        assert flown and any(s.vx != 0 for s in flown)  # the policy flew before the stall
        last = flown[-1]
        assert (last.vx, last.vy, last.vz, last.yaw_rate) == (0, 0, 0, 0)  # zero velocity, then LAND
        assert not autopilot.armed  # never armed: arm was not requested


def test_shipped_hardware_launch_files_fit_the_robot_configs(tmp_path):
    from lnn_control.config import load_dataclass
    from lnn_control.runtime.hardware.mavlink_drone import (
        MavlinkDroneConfig,
        SetpointFrame,
        StopAction,
    )
    from lnn_control.runtime.hardware.serial_car import CarActions, SerialCarConfig
    from lnn_control.runtime.launch import load_launch

    car = load_dataclass(SerialCarConfig, load_launch("car_serial").robot.settings, "car_serial.yaml")
    assert car.actions == CarActions.STEERING and car.include_speed
    drone = load_dataclass(MavlinkDroneConfig, load_launch("drone_mavlink").robot.settings, "drone_mavlink.yaml")
    assert (drone.frame, drone.stop_action, drone.arm) == (SetpointFrame.BODY_NED, StopAction.HOLD, False)
