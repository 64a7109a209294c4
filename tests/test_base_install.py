"""The robot install: a fresh virtual environment with only ``pip install lnn-control`` (the base
dependencies: numpy, OpenCV, onnxruntime, pyserial, pymavlink, mcap, PyYAML) drives the serial
car emulator on a real pseudo-terminal with an exported ONNX policy through ``lnn-control run``,
and never imports torch, MuJoCo, PyBullet or Gymnasium. Commands that need an extra name it."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "mujoco", "pybullet", "gymnasium", "numba", "matplotlib", "safetensors")
RUN_AND_REPORT = """
import json, sys
from lnn_control.cli import main
report, heavy, argv = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
rc = main(argv)
json.dump({"rc": rc, "modules": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}, open(report, "w"))
"""


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding this checkout's wheel and what pip resolves for its base dependencies only."""
    root = tmp_path_factory.mktemp("base_install")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"), str(REPO)],
        check=True, capture_output=True, timeout=600,
    )
    wheel = next((root / "dist").glob("lnn_control-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr
    return python


def car_onnx_policy(directory: Path) -> Path:
    """A small steering policy (FLU frame, speed extra) exported to ONNX with this environment's torch."""
    import torch

    from lnn_control.export.onnx import export_onnx
    from lnn_control.nn.baselines import BASELINE_CORES
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

    torch.manual_seed(0)
    perception = PerceptionConfig(image_height=24, image_width=32, conv_channels=(4, 4), kernel_sizes=(3, 3),
                                  strides=(2, 2), features=4)
    core = BASELINE_CORES["ctrnn"](5, 6, 1)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((24, 32, 3), ("speed",), ("m/s",)),
        action_spec=ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU),
        control_rate_hz=20.0,
    )
    directory.mkdir(parents=True, exist_ok=True)
    return export_onnx(Policy(config, core=core).eval(), directory / "car.onnx")


def start_emulator(python: Path, record: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [str(python), "-m", "lnn_control.runtime.emulators.car", "--pty", "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = process.stdout.readline().split() if selector.select(timeout=60) else []
    if not line or line[0] != "READY":
        process.kill()
        raise AssertionError(f"car emulator in the base venv did not start: {line} {process.communicate()}")
    return process, line[1]


@pytest.mark.slow
def test_base_install_drives_the_car_with_an_onnx_policy_without_torch_or_simulators(
    tmp_path: Path, base_python: Path
) -> None:
    found = "import sys, importlib.util as u; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    missing = subprocess.run([str(base_python), "-c", found, *HEAVY], capture_output=True, text=True, check=True)
    assert missing.stdout.strip() == "[]", f"the base install pulled in {missing.stdout}"
    clip = tmp_path / "road.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    for k in range(40):
        frame = np.full((48, 64, 3), 70, np.uint8)
        cv2.line(frame, (20 + k % 10, 47), (32, 10), (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    policy = car_onnx_policy(tmp_path / "policy")
    emulator, port = start_emulator(base_python, tmp_path / "mcu.jsonl")
    try:
        launch = tmp_path / "car.yaml"
        launch.write_text(yaml.safe_dump({
            "policy": str(policy), "engine": "onnx", "rate_hz": 20,
            "robot": {"kind": "serial_car", "camera": {"kind": "video_file", "source": str(clip), "loop": True},
                      "settings": {"port": port, "actions": "steering", "include_speed": True}},
            "watchdog": {"max_frame_age_s": 0.2},
        }))
        report = tmp_path / "report.json"
        run = subprocess.run(
            [str(base_python), "-c", RUN_AND_REPORT, str(report), ",".join(HEAVY), "run", "--launch", str(launch), "--duration", "1.5",
             "--log", str(tmp_path / "run.mcap"), "--quiet"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        result = json.loads(report.read_text())
        assert result == {"rc": 0, "modules": []}
        assert "stop reason: duration 1.5 s reached" in run.stdout
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.communicate(timeout=30)
    events = [json.loads(line) for line in (tmp_path / "mcu.jsonl").read_text().splitlines()]
    drives = [e for e in events if e["event"] == "drive"]
    assert len(drives) >= 15  # the ONNX policy steered the car at 20 Hz
    last_drive = max(i for i, e in enumerate(events) if e["event"] == "drive")
    assert any(e["event"] == "stop" for e in events[last_drive:])


DISTRIBUTION_OF_IMPORT = {"zenoh": "eclipse-zenoh"}
"""Import names whose PyPI distribution is named otherwise."""


@pytest.mark.slow
@pytest.mark.parametrize("command, extra", [
    (["train", "--launch", "lane_keeping", "--out", "x"], "train"),
    (["eval", "lane_keeping_ncp19", "--task", "lane-keeping", "--episodes", "1"], "train"),
    (["run", "--launch", "sim_lane_keeping", "--engine", "onnx", "--policy", "ONNX", "--duration", "1"], "sim"),
    (["run", "--launch", "car_serial", "--duration", "1"], "train"),  # a torch bundle
])
def test_commands_that_need_an_extra_name_it(tmp_path: Path, base_python: Path, command: list[str], extra: str) -> None:
    if "ONNX" in command:
        command = [str(car_onnx_policy(tmp_path)) if part == "ONNX" else part for part in command]
    result = subprocess.run([str(base_python), "-m", "lnn_control", *command], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"the [{extra}] extra installs: pip install 'lnn-control[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_base_dependencies_are_what_the_robot_path_imports() -> None:
    """pyproject's base list, the extras and lnn_control.extras agree (one source per package)."""
    import tomllib

    from lnn_control.extras import EXTRA_OF_PACKAGE

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {d.split(">")[0].split("<")[0].split("=")[0] for d in project["dependencies"]}
    assert base == {"numpy", "opencv-python-headless", "onnxruntime", "pyserial", "pymavlink", "mcap", "pyyaml"}
    extras = project["optional-dependencies"]
    for package, extra in EXTRA_OF_PACKAGE.items():
        distribution = DISTRIBUTION_OF_IMPORT.get(package, package)
        assert any(d.startswith(distribution) for d in extras[extra]), f"{package} is not in the [{extra}] extra"
    assert extras["all"] == ["lnn-control[sim,train,ray,teleop,ros2,lerobot]"]
