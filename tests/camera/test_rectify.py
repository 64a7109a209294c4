"""The view correction on images a known distorted lens takes of analytic worlds: straight lines
come out straight, the output has the simulator's field of view and square pixels, the pitch
correction puts the horizon where the simulator camera has it."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from lnn_camera_testkit import (
    TRUE,
    azimuth_right_of,
    edge_column,
    elevation_above,
    render_world,
    white_rows_from_top,
)

from lnn_control.camera.model import (
    CalibrationRef,
    CameraCalibration,
    Intrinsics,
    SimView,
    load_calibration,
    save_calibration,
)
from lnn_control.camera.rectify import FrameRectifier, build_maps
from lnn_control.config import ConfigError

LANE = SimView("lane-keeping", 50.0, math.degrees(0.35))


def focal_of_view(vertical_fov_deg: float, height: int) -> float:
    return (height / 2) / math.tan(math.radians(vertical_fov_deg) / 2)


def line_fit_residual(xs: np.ndarray, ys: np.ndarray) -> float:
    """Largest distance (px) of the points from their least-squares line x = a·y + b."""
    design = np.stack([ys, np.ones_like(ys)], 1)
    coef, *_ = np.linalg.lstsq(design, xs, rcond=None)
    return float(np.abs(design @ coef - xs).max())


def test_a_camera_that_is_the_simulator_camera_passes_through_unchanged() -> None:
    f = focal_of_view(50.0, 64)
    same = Intrinsics(128, 64, f, f, 63.5, 31.5)
    maps = build_maps(same, 50.0, (64, 128))
    image = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    assert maps.oversample == 1 and maps.coverage == 1.0
    assert np.array_equal(maps.apply(image), image)


def test_undistortion_makes_straight_lines_straight() -> None:
    """A plane through the optical centre is a straight edge in any pinhole image; the barrel lens
    bends it by pixels, the rectified view has it straight to a few hundredths of a pixel."""
    rectifier = FrameRectifier(CameraCalibration(TRUE, SimView("custom", 60.0, 0.0, 240, 320)), (240, 320))
    assert rectifier.maps.coverage == 1.0
    for azimuth in (-28.0, 28.0):
        raw = render_world(azimuth_right_of(azimuth))
        rows = np.arange(20, 460, 10)
        bent = line_fit_residual(np.array([edge_column(raw, r) for r in rows]), rows.astype(float))
        view = rectifier(raw)
        rows = np.arange(4, 236, 4)
        straight = line_fit_residual(np.array([edge_column(view, r) for r in rows]), rows.astype(float))
        assert bent > 5.0, f"the test lens should bend the line visibly (got {bent:.2f} px)"
        assert straight < 0.1, f"line still bent by {straight:.3f} px after undistortion"


@pytest.mark.parametrize("task, fov, pitch_rad", [("lane-keeping", 50.0, 0.35), ("drone-forest", 60.0, 0.10)])
def test_view_has_the_simulator_vertical_fov_and_square_pixels(task: str, fov: float, pitch_rad: float) -> None:
    from lnn_control.camera.sim_view import sim_view_of_task

    view = sim_view_of_task(task)  # read from CarParams / QuadParams
    assert (view.vertical_fov_deg, view.image_height, view.image_width) == (fov, 64, 128)
    assert view.pitch_deg == pytest.approx(math.degrees(pitch_rad))
    level = CameraCalibration(TRUE, replace(view, pitch_deg=0.0))  # a level camera, no pitch
    rectifier = FrameRectifier(level, (64, 128))
    band = render_world(lambda d: np.minimum(elevation_above(-20)(d), 1 - elevation_above(20)(d)))
    rows_white = [rectifier(band)[:, c, 1].sum() / 255 for c in (20, 64, 108)]
    # ±20° elevation spans 2 f tan 20° rows, f from the field of view over the 64 rows
    f_measured = np.mean(rows_white) / (2 * math.tan(math.radians(20)))
    fov_measured = 2 * math.degrees(math.atan(32 / f_measured))
    assert fov_measured == pytest.approx(fov, abs=0.1)
    sides = render_world(lambda d: np.minimum(azimuth_right_of(-30)(d), 1 - azimuth_right_of(30)(d)))
    cols_white = rectifier(sides)[32, :, 1].sum() / 255
    assert cols_white / (2 * math.tan(math.radians(30))) == pytest.approx(f_measured, rel=0.005)  # square pixels


def test_pitch_correction_moves_the_horizon_by_the_expected_rows() -> None:
    mount = 12.0  # the real camera looks 12° down, the lane simulator's 20.05°
    frame = render_world(elevation_above(0.0), mount_pitch_deg=mount)
    f = focal_of_view(50.0, 64)
    uncorrected = FrameRectifier(CameraCalibration(TRUE, LANE), (64, 128))
    corrected = FrameRectifier(CameraCalibration(TRUE, LANE, mount_pitch_deg=mount), (64, 128))
    assert corrected.calibration.pitch_correction_deg() == pytest.approx(LANE.pitch_deg - mount)
    columns = (30, 64, 98)
    before = [white_rows_from_top(uncorrected(frame), c) for c in columns]
    after = [white_rows_from_top(corrected(frame), c) for c in columns]
    assert before == pytest.approx([31.5 - f * math.tan(math.radians(mount))] * 3, abs=0.05)
    assert after == pytest.approx([31.5 - f * math.tan(math.radians(LANE.pitch_deg))] * 3, abs=0.05)
    assert np.mean(before) - np.mean(after) == pytest.approx(
        f * (math.tan(math.radians(LANE.pitch_deg)) - math.tan(math.radians(mount))), abs=0.05
    )  # ≈ 10.5 rows up


def test_a_narrow_camera_reports_the_black_part_of_the_view(caplog: pytest.LogCaptureFixture) -> None:
    """A 65°-wide webcam cannot fill the lane simulator's 86° × 50° view: the sides stay black."""
    webcam = Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    rectifier = FrameRectifier(CameraCalibration(webcam, LANE), (64, 128))
    assert rectifier.maps.coverage == pytest.approx(0.685, abs=0.01)
    assert "lies outside this camera's image" in caplog.text
    view = rectifier(np.full((480, 640, 3), 200, np.uint8))
    assert view[:, :15].max() == 0 and view[:, -15:].max() == 0 and view[:, 40:88].min() == 200


def test_other_frame_sizes_of_the_same_aspect_scale_and_another_aspect_is_refused() -> None:
    rectifier = FrameRectifier(CameraCalibration(TRUE, LANE), (64, 128))
    big = cv2.resize(render_world(elevation_above(0.0)), (1280, 960), interpolation=cv2.INTER_LINEAR)
    small = render_world(elevation_above(0.0))
    assert white_rows_from_top(rectifier(big), 64) == pytest.approx(white_rows_from_top(rectifier(small), 64), abs=0.1)
    with pytest.raises(ValueError, match=r"1280x720 frames but the calibration is for 640x480"):
        rectifier(np.zeros((720, 1280, 3), np.uint8))


def test_calibration_file_round_trip_and_strict_loading(tmp_path: Path) -> None:
    calibration = CameraCalibration(TRUE, LANE, mount_pitch_deg=12.0)
    path = save_calibration(calibration, tmp_path / "calib.yaml")
    assert load_calibration(path) == calibration
    assert CalibrationRef(str(path), mount_pitch_deg=15.0).load().mount_pitch_deg == 15.0
    text = path.read_text()
    (tmp_path / "extra.yaml").write_text(text.replace("mount_pitch_deg: 12.0", "mount_pitch_deg: 12.0\nroll_deg: 1"))
    with pytest.raises(ConfigError, match=r"extra.yaml: unknown key\(s\) \['roll_deg'\]"):
        load_calibration(tmp_path / "extra.yaml")
    (tmp_path / "bad.yaml").write_text(text.replace("vertical_fov_deg: 50.0", "vertical_fov_deg: 190.0"))
    with pytest.raises(ConfigError, match=r"vertical_fov_deg must be in \(0, 170\) degrees, got 190.0"):
        load_calibration(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"nothing.yaml does not exist .*lnn-control camera calibrate"):
        CalibrationRef(str(tmp_path / "nothing.yaml")).load()
    with pytest.raises(ValueError, match=r"3 coefficients; OpenCV takes \[4, 5, 8, 12, 14\]"):
        Intrinsics(640, 480, 400.0, 400.0, 320.0, 240.0, (0.1, 0.0, 0.0))
