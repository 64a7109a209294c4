"""The calibration in the real camera path: a launch file's ``robot.camera.calibration`` makes the
cameras deliver rectified, simulator-view frames (real video files through OpenCV), without torch
or a simulator; ``lnn-control run`` on the serial-car emulator logs those frames, and ``camera
latency`` reads the loop's latency from the log."""

from __future__ import annotations

import base64
import json
import math
import os
import selectors
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnn_camera_testkit import TRUE, elevation_above, render_world, white_rows_from_top, write_video

from lnn_control.camera.model import CameraCalibration, SimView, save_calibration
from lnn_control.config import ConfigError, load_dataclass
from lnn_control.runtime.hardware.cameras import CameraConfig, CameraError, make_camera

MOUNT_PITCH = 12.0
LANE = SimView("lane-keeping", 50.0, math.degrees(0.35))
F_OUT = 32 / math.tan(math.radians(25))
HORIZON_SIM = 31.5 - F_OUT * math.tan(math.radians(LANE.pitch_deg))  # where the lane simulator has it


@pytest.fixture(scope="module")
def horizon_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640x480 MJPG clip of a horizon seen by the test lens mounted 12° down."""
    frame = render_world(elevation_above(0.0), mount_pitch_deg=MOUNT_PITCH)
    return write_video([frame] * 30, tmp_path_factory.mktemp("clip") / "horizon.avi", fps=20.0)


@pytest.fixture
def calibration_file(tmp_path: Path) -> Path:
    return save_calibration(CameraCalibration(TRUE, LANE, mount_pitch_deg=MOUNT_PITCH), tmp_path / "calib.yaml")


def camera_config(clip: Path, calibration: Path | None, **extra: object) -> CameraConfig:
    data: dict = {"kind": "video_file", "source": str(clip), "realtime": False, **extra}
    if calibration is not None:
        data["calibration"] = {"file": str(calibration)}
    return load_dataclass(CameraConfig, data, "launch.yaml", "robot.camera")


def test_a_calibrated_video_camera_delivers_the_simulator_view(horizon_clip: Path, calibration_file: Path) -> None:
    with make_camera(camera_config(horizon_clip, calibration_file), (64, 128)) as camera:
        frames = [camera.read() for _ in range(3)]
    with make_camera(camera_config(horizon_clip, None), (64, 128)) as plain:
        resized = plain.read().image
    for frame in frames:
        assert frame.image.shape == (64, 128, 3) and frame.image.dtype == np.uint8
        assert white_rows_from_top(frame.image, 64) == pytest.approx(HORIZON_SIM, abs=0.3)
    # without the calibration the frame is only squeezed: the horizon sits 12° down in a 60° view,
    # about row 20 instead of the simulator's 6.5
    assert abs(white_rows_from_top(resized, 64) - HORIZON_SIM) > 10


def test_calibration_errors_surface_when_the_camera_is_built(horizon_clip: Path, calibration_file: Path,
                                                             tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.yaml does not exist"):
        make_camera(camera_config(horizon_clip, tmp_path / "missing.yaml"), (64, 128))
    with pytest.raises(ConfigError, match=r"launch.yaml: unknown key\(s\) \['pitch'\] at robot.camera.calibration"):
        load_dataclass(CameraConfig, {"kind": "opencv", "source": 0, "calibration": {"file": "c.yaml", "pitch": 3}},
                       "launch.yaml", "robot.camera")
    with pytest.raises(ValueError, match=r"delivers 1280x720 frames but the calibration is for 640x480"):
        make_camera(load_dataclass(CameraConfig, {"kind": "opencv", "source": 0, "width": 1280, "height": 720,
                                                  "calibration": {"file": str(calibration_file)}}), (64, 128))
    square = write_video([np.zeros((320, 320, 3), np.uint8)] * 3, tmp_path / "square.avi")
    with make_camera(camera_config(square, calibration_file), (64, 128)) as camera:
        with pytest.raises(CameraError, match=r"320x320 frames but the calibration is for 640x480"):
            camera.read()


def test_the_run_time_path_needs_neither_torch_nor_a_simulator(horizon_clip: Path, calibration_file: Path) -> None:
    script = (
        "import sys, json\n"
        "from lnn_control.config import load_dataclass\n"
        "from lnn_control.runtime.hardware.cameras import CameraConfig, make_camera\n"
        f"config = load_dataclass(CameraConfig, {{'kind': 'video_file', 'source': {str(horizon_clip)!r}, "
        f"'realtime': False, 'calibration': {{'file': {str(calibration_file)!r}}}}})\n"
        "with make_camera(config, (64, 128)) as cam: shape = cam.read().image.shape\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mujoco', 'pybullet', 'gymnasium'))\n"
        "print(json.dumps({'shape': list(shape), 'heavy': heavy}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == {"shape": [64, 128, 3], "heavy": []}


def lane_policy(directory: Path) -> Path:
    """An untrained 64x128 steering policy (CT-RNN core; timing does not depend on weights)."""
    import torch

    from lnn_control.nn.baselines import BASELINE_CORES
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.bundle import save_policy
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

    torch.manual_seed(0)
    perception = PerceptionConfig(image_height=64, image_width=128)
    core = BASELINE_CORES["ctrnn"](perception.features + 1, 19, 1)
    config = PolicyConfig(
        perception=perception, core=core.config(),
        observation_spec=ObservationSpec((64, 128, 3), ("speed",), ("m/s",)),
        action_spec=ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU),
        control_rate_hz=20.0,
    )
    return save_policy(Policy(config, core=core).eval(), directory, {"command": "untrained test policy"})


@pytest.mark.slow
def test_run_on_the_car_emulator_logs_rectified_frames_and_its_latency(
    horizon_clip: Path, calibration_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lnn_control.cli import main
    from lnn_control.runtime.logs.runlog import decode_image, read_run_log

    emulator = subprocess.Popen(
        [sys.executable, "-m", "lnn_control.runtime.emulators.car", "--pty"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(emulator.stdout, selectors.EVENT_READ)
            line = emulator.stdout.readline().split() if selector.select(timeout=30) else []
        assert line and line[0] == "READY", line
        launch = tmp_path / "car.yaml"
        launch.write_text(yaml.safe_dump({
            "policy": str(lane_policy(tmp_path / "policy")), "rate_hz": 20,
            "robot": {"kind": "serial_car",
                      "camera": {"kind": "video_file", "source": str(horizon_clip), "loop": True,
                                 "calibration": {"file": str(calibration_file)}},
                      "settings": {"port": line[1], "actions": "steering", "include_speed": True}},
            "watchdog": {"max_frame_age_s": 0.2},
            "log": {"dir": str(tmp_path), "image_format": "png"},
        }))
        log_path = tmp_path / "run.mcap"
        assert main(["run", "--launch", str(launch), "--duration", "1.5", "--log", str(log_path), "--quiet"]) == 0
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        emulator.stdout.close()
    log = read_run_log(log_path)
    images = [decode_image(base64.b64decode(m.payload["data"])) for m in log.topic("/camera/image")]
    assert len(images) >= 10
    for image in images[:3]:
        assert image.shape == (64, 128, 3)
        assert white_rows_from_top(image, 64) == pytest.approx(HORIZON_SIM, abs=0.3)
    capsys.readouterr()
    assert main(["camera", "latency", str(log_path), "--camera-latency-ms", "60", "--json", str(tmp_path / "l.json")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "l.json").read_text())
    assert report["rate_hz"] == 20.0 and report["steps"] >= 10
    assert 0 < report["median_s"] < 0.05  # write time - capture stamp, on this machine
    assert report["steps_late"] == pytest.approx((report["median_s"] + 0.06) * 20)
    assert report["condition"] in ("delay:1", "delay:2") and f"train with condition {report['condition']}" in out
