"""Chessboard calibration on views a known lens took (PNG files and MJPG / MP4 videos written with
cv2.VideoWriter): the lens comes back, too few views and wrong boards are clear errors, and the CLI
writes the calibration file and points a launch file at it."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from lnn_camera_testkit import BOARD, TRUE, chessboard_views, write_pngs, write_video

from lnn_control.camera.chessboard import Board, NotEnoughViewsError, calibrate_chessboard
from lnn_control.camera.model import Intrinsics, load_calibration
from lnn_control.camera.rectify import undistort_points
from lnn_control.cli import main
from lnn_control.runtime.launch import load_launch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    return chessboard_views()


@pytest.fixture(scope="module")
def png_folder(views: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pngs(views, tmp_path_factory.mktemp("calib") / "views")


def lens_error_px(found: Intrinsics, truth: Intrinsics = TRUE) -> float:
    """Largest pixel distance, over the whole image, between where the two models put the same ray."""
    grid = np.stack(np.meshgrid(np.linspace(0, 639, 33), np.linspace(0, 479, 25)), -1).reshape(-1, 1, 2)
    rays = np.concatenate([undistort_points(grid, truth).reshape(-1, 2), np.ones((grid.shape[0], 1))], 1)
    projected, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), found.camera_matrix(), found.dist_coeffs())
    return float(np.abs(projected.reshape(-1, 2) - grid.reshape(-1, 2)).max())


def check_recovered(found: Intrinsics, rms_px: float) -> None:
    assert found.size == (640, 480)
    assert found.fx == pytest.approx(TRUE.fx, rel=0.004) and found.fy == pytest.approx(TRUE.fy, rel=0.004)
    assert found.cx == pytest.approx(TRUE.cx, abs=1.5) and found.cy == pytest.approx(TRUE.cy, abs=1.5)
    assert found.distortion[0] == pytest.approx(TRUE.distortion[0], abs=0.01)  # k1
    assert found.distortion[1] == pytest.approx(TRUE.distortion[1], abs=0.02)  # k2
    assert lens_error_px(found) < 1.0
    assert rms_px < 0.2


def test_calibration_from_png_views_recovers_the_lens(png_folder: Path) -> None:
    result = calibrate_chessboard(png_folder, BOARD)
    assert (result.views_found, result.views_tried, len(result.used)) == (15, 15, 15)
    check_recovered(result.intrinsics, result.rms_px)
    assert max(result.view_rms_px) < 0.3


@pytest.mark.parametrize("fourcc, suffix", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_calibration_from_a_video(views: list[np.ndarray], tmp_path: Path, fourcc: str, suffix: str) -> None:
    frames = [view for view in views for _ in range(3)]  # each pose held for 3 frames, as a hand would
    video = write_video(frames, tmp_path / f"board{suffix}", fourcc)
    result = calibrate_chessboard(video, BOARD, video_step=3)
    assert result.views_tried == 15 and result.views_found == 15
    assert result.used[1] == f"board{suffix}#3"
    check_recovered(result.intrinsics, result.rms_px)


def test_too_few_views_is_a_clear_error(png_folder: Path, tmp_path: Path) -> None:
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted(png_folder.iterdir())[:7]:
        shutil.copy(path, few / path.name)
    with pytest.raises(NotEnoughViewsError, match=r"9x6 chessboard was found in 7 of 7 views .* needs at least 10"):
        calibrate_chessboard(few, BOARD)
    with pytest.raises(NotEnoughViewsError, match=r"counts INNER corners \(a board of 10 x 7 squares is 9x6\)"):
        calibrate_chessboard(few, Board(7, 5, 25.0))


def test_bad_inputs_name_the_problem(png_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be COLSxROWS inner corners, e.g. 9x6"):
        Board.parse("9 by 6", 25.0)
    with pytest.raises(ValueError, match=r"square size must be > 0 mm, got -1.0"):
        Board.parse("9x6", -1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty holds no images"):
        calibrate_chessboard(tmp_path / "empty", BOARD)
    mixed = tmp_path / "mixed"
    shutil.copytree(png_folder, mixed)
    cv2.imwrite(str(mixed / "zz_small.png"), np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(ValueError, match=r"zz_small.png is 320x240 px but the first view is 640x480"):
        calibrate_chessboard(mixed, BOARD)


def test_cli_writes_the_calibration_and_points_a_launch_file_at_it(
    png_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    launch = tmp_path / "my_car.yaml"
    shutil.copy(REPO / "launch" / "car_serial.yaml", launch)
    before = launch.read_text()
    argv = ["camera", "calibrate", "--images", str(png_folder), "--board", "9x6", "--square-mm", "25",
            "--out", "calib.yaml", "--task", "lane-keeping", "--mount-pitch-deg", "12", "--launch", str(launch),
            "--json", "calib.json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "board 9x6 found in 15 of 15 views" in out and "RMS reprojection error" in out
    assert "my_car.yaml: robot.camera.calibration now points at calib.yaml" in out
    calibration = load_calibration(tmp_path / "calib.yaml")
    check_recovered(calibration.intrinsics, calibration.quality.rms_px if calibration.quality else 9.9)
    assert calibration.sim_view.task == "lane-keeping" and calibration.sim_view.vertical_fov_deg == 50.0
    assert calibration.mount_pitch_deg == 12.0
    # one line added, every comment kept; the launch file loads with the calibration section
    added = [line for line in launch.read_text().splitlines() if line not in before.splitlines()]
    assert added == ['    calibration: {file: "calib.yaml"}   # lnn-control camera calibrate']
    camera = load_launch(launch).robot.camera
    assert camera is not None and camera.calibration is not None and camera.calibration.file == "calib.yaml"
    # again: already there, nothing changes
    text = launch.read_text()
    assert main(argv) == 0 and launch.read_text() == text
    # a launch file that cannot take it fails before anything is written
    sim_launch = tmp_path / "sim.yaml"
    shutil.copy(REPO / "launch" / "sim_lane_keeping.yaml", sim_launch)
    argv_sim = [*argv[:8], "--out", "other.yaml", "--task", "lane-keeping", "--launch", str(sim_launch)]
    assert main(argv_sim) == 2
    assert "has no robot.camera section" in capsys.readouterr().err
    assert not (tmp_path / "other.yaml").exists()
    assert yaml.safe_load((tmp_path / "calib.json").read_text())["quality"]["views_used"] == 15


def test_cli_without_a_simulator_view_says_what_to_give(png_folder: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["camera", "calibrate", "--images", str(png_folder), "--board", "9x6", "--square-mm", "25",
            "--out", str(tmp_path / "c.yaml")]
    assert main(argv) == 2
    assert "--task lane-keeping|drone-forest (needs the [sim] extra), or --vertical-fov-deg" in capsys.readouterr().err
    assert main([*argv, "--vertical-fov-deg", "50", "--sim-pitch-deg", "20"]) == 0
    assert load_calibration(tmp_path / "c.yaml").sim_view.task == "custom"
