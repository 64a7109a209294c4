"""``lnn-control camera preview``: a PNG of the camera frame, the policy's view and a simulator frame
(rendered by the real lane env), from a calibration file or a launch file; without the [sim] extra
it names the extra."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from lnn_camera_testkit import TRUE, elevation_above, render_world, write_video

from lnn_control.camera.model import CameraCalibration, SimView, save_calibration
from lnn_control.camera.preview import CAPTION_PX, preview_size
from lnn_control.cli import main

LANE = SimView("lane-keeping", 50.0, math.degrees(0.35))


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    return save_calibration(CameraCalibration(TRUE, LANE, mount_pitch_deg=12.0), tmp_path / "calib.yaml")


@pytest.fixture
def frame_png(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), render_world(elevation_above(0.0), mount_pitch_deg=12.0))
    return path


def test_preview_from_a_calibration_and_an_image(calibration: Path, frame_png: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "preview.png"
    assert main(["camera", "preview", "--calibration", str(calibration), "--input", str(frame_png),
                 "--out", str(out)]) == 0
    assert f"wrote {out} (1381x308 px)" in capsys.readouterr().out
    image = cv2.imread(str(out))
    assert image.shape[:2] == preview_size((640, 480), (64, 128), 4) == (308, 1381)
    # the middle panel is the policy's view, 4x: the horizon of the corrected view at row ≈ 6.45
    policy = image[CAPTION_PX : CAPTION_PX + 256, 341 + 8 : 341 + 8 + 512, 1]
    assert (policy[:, 100:400].astype(float).sum(axis=0) / 255 / 4 - 0.5).mean() == pytest.approx(6.45, abs=0.3)
    # the right panel is a real simulator frame: the lane world's sky is blue, its road grey
    sim = image[CAPTION_PX : CAPTION_PX + 256, -512:]
    assert sim[:20].reshape(-1, 3).mean(axis=0)[0] > sim[:20].reshape(-1, 3).mean(axis=0)[2]  # BGR: blue sky


def test_preview_from_a_launch_file_reads_its_camera(calibration: Path, tmp_path: Path) -> None:
    clip = write_video([render_world(elevation_above(0.0), mount_pitch_deg=12.0)] * 5, tmp_path / "cam.avi")
    launch = tmp_path / "car.yaml"
    launch.write_text(yaml.safe_dump({
        "policy": "lane_keeping_ncp19", "rate_hz": 20,
        "robot": {"kind": "serial_car", "camera": {"kind": "video_file", "source": str(clip),
                                                    "calibration": {"file": str(calibration)}},
                  "settings": {"port": "/dev/null"}},
        "watchdog": {"max_frame_age_s": 0.2},
    }))
    out = tmp_path / "p.png"
    assert main(["camera", "preview", "--launch", str(launch), "--out", str(out), "--scale", "2"]) == 0
    assert cv2.imread(str(out)).shape[:2] == preview_size((640, 480), (64, 128), 2)


def test_preview_refuses_a_task_the_calibration_was_not_made_for(calibration: Path, frame_png: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["camera", "preview", "--calibration", str(calibration), "--input", str(frame_png),
                 "--task", "drone-forest", "--out", str(tmp_path / "x.png")]) == 2
    assert "matches the lane-keeping camera; --task drone-forest would compare other cameras" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_preview_without_the_sim_extra_names_it(calibration: Path, frame_png: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "class NoGym:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'gymnasium':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoGym())\n"
        "from lnn_control.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "camera", "preview", "--calibration", str(calibration), "--input",
         str(frame_png), "--out", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "the [sim] extra installs: pip install 'lnn-control[sim]'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()


def test_preview_size_formula() -> None:
    assert preview_size((1280, 720), (64, 128), 4) == (CAPTION_PX * 2 + 256, round(1280 * 256 / 720) + 1024 + 16)
    assert np.isclose(preview_size((640, 480), (32, 64), 1)[1], round(640 * 32 / 480) + 128 + 16)
