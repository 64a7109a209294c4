"""The numbers a camera calibration saves, and the launch file section that points at them.

A calibration file (YAML, written by ``lnn-control camera calibrate``) holds:

- ``intrinsics``: the pinhole model and OpenCV distortion coefficients of the real camera at the
  capture size it was calibrated at;
- ``sim_view``: the simulator camera the policy was trained with (vertical field of view and pitch,
  copied from the env's config dataclass when the file was written, so the robot needs no simulator
  to read them);
- ``mount_pitch_deg``: the measured pitch of the real camera on its mount (``null``: not measured,
  no pitch correction);
- ``quality``: how the calibration went (RMS reprojection error, views used, board).

Conventions: pixels are counted from the top-left pixel's centre (OpenCV); pitch > 0 looks down
(the simulators' convention, there in radians, here in degrees); distortion coefficients are in
OpenCV's order ``k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]``.

Only numpy and PyYAML are needed here (the robot's base install).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.config import ConfigError, load_yaml_dataclass

DISTORTION_LENGTHS = (4, 5, 8, 12, 14)
"""Numbers of distortion coefficients OpenCV accepts."""


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera matrix + distortion of one real camera at one capture size.

    image_width, image_height: capture size in pixels the numbers belong to.
    fx, fy: focal lengths in pixels; cx, cy: principal point in pixels (from the top-left pixel's
        centre). distortion: OpenCV coefficients (4, 5, 8, 12 or 14 of them).
    """

    image_width: int
    image_height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("image_width", "image_height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 16384:
                raise ValueError(f"intrinsics.{name} must be an integer in [8, 16384] px, got {value!r}")
        for name in ("fx", "fy", "cx", "cy"):
            _finite(f"intrinsics.{name}", getattr(self, name))
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"intrinsics.fx and fy must be > 0 px, got fx={self.fx}, fy={self.fy}")
        if not (0 <= self.cx <= self.image_width and 0 <= self.cy <= self.image_height):
            raise ValueError(
                f"intrinsics principal point ({self.cx}, {self.cy}) px lies outside the "
                f"{self.image_width}x{self.image_height} image"
            )
        if len(self.distortion) not in DISTORTION_LENGTHS:
            raise ValueError(
                f"intrinsics.distortion has {len(self.distortion)} coefficients; OpenCV takes "
                f"{list(DISTORTION_LENGTHS)} (k1 k2 p1 p2 [k3 ...])"
            )
        for index, value in enumerate(self.distortion):
            _finite(f"intrinsics.distortion[{index}]", value)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, OpenCV's order."""
        return (self.image_width, self.image_height)

    def camera_matrix(self) -> np.ndarray:
        """3×3 float64 K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def dist_coeffs(self) -> np.ndarray:
        """Distortion coefficients as a float64 array, shape (N,)."""
        return np.asarray(self.distortion, np.float64)

    def vertical_fov_deg(self) -> float:
        """Vertical field of view of the undistorted pinhole (degrees), through the principal point."""
        return math.degrees(
            math.atan((self.cy + 0.5) / self.fy) + math.atan((self.image_height - 0.5 - self.cy) / self.fy)
        )

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera delivering ``width``×``height`` frames (a driver mode of the same aspect:
        the sensor is binned or scaled, so K scales; distortion is unchanged). A different aspect
        ratio crops the sensor in a way the numbers cannot tell: ValueError."""
        if (width, height) == self.size:
            return self
        if abs((width / height) / (self.image_width / self.image_height) - 1.0) > 0.01:
            raise ValueError(
                f"the camera delivers {width}x{height} frames but the calibration is for "
                f"{self.image_width}x{self.image_height}, another aspect ratio: set the camera's width/height "
                f"to {self.image_width}x{self.image_height} or calibrate at {width}x{height}"
            )
        sx, sy = width / self.image_width, height / self.image_height
        return Intrinsics(
            width, height, self.fx * sx, self.fy * sy,
            (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, self.distortion,
        )


@dataclass(frozen=True)
class SimView:
    """The simulator camera a policy was trained with.

    task: the task it came from (informative; ``custom`` when typed in by hand).
    vertical_fov_deg: vertical field of view, degrees, in (0, 170).
    pitch_deg: how far the simulator camera looks down from level, degrees (> 0 = down).
    image_height, image_width: the simulator frame size in pixels (the policy's input size of the
        task's shipped bundles; ``lnn-control run`` uses the policy's own size).
    """

    task: str
    vertical_fov_deg: float
    pitch_deg: float
    image_height: int = 64
    image_width: int = 128

    def __post_init__(self) -> None:
        _finite("sim_view.vertical_fov_deg", self.vertical_fov_deg)
        _finite("sim_view.pitch_deg", self.pitch_deg)
        if not 0 < self.vertical_fov_deg < 170:
            raise ValueError(f"sim_view.vertical_fov_deg must be in (0, 170) degrees, got {self.vertical_fov_deg}")
        if not -80 <= self.pitch_deg <= 80:
            raise ValueError(f"sim_view.pitch_deg must be in [-80, 80] degrees (> 0 looks down), got {self.pitch_deg}")
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 4096:
                raise ValueError(f"sim_view.{name} must be an integer in [8, 4096] px, got {value!r}")


@dataclass(frozen=True)
class CalibrationQuality:
    """How a calibration went: RMS reprojection error over all corners (px), the worst view's RMS
    (px), views the board was found in and used / images tried, the board (inner corners
    ``COLSxROWS``, square size in mm) and the images' source."""

    rms_px: float
    worst_view_rms_px: float
    views_used: int
    views_tried: int
    board: str
    square_mm: float
    source: str


@dataclass(frozen=True)
class CameraCalibration:
    """Everything the run-time view correction needs (see the module docstring)."""

    intrinsics: Intrinsics
    sim_view: SimView
    mount_pitch_deg: float | None = None
    quality: CalibrationQuality | None = None
    version: Literal[1] = 1

    def __post_init__(self) -> None:
        if self.mount_pitch_deg is not None:
            _finite("mount_pitch_deg", self.mount_pitch_deg)
            if not -80 <= self.mount_pitch_deg <= 80:
                raise ValueError(f"mount_pitch_deg must be in [-80, 80] degrees (> 0 looks down), got {self.mount_pitch_deg}")

    def pitch_correction_deg(self) -> float:
        """Degrees the view is turned down by (sim pitch − mount pitch; 0 when the mount pitch is
        not known)."""
        return 0.0 if self.mount_pitch_deg is None else self.sim_view.pitch_deg - self.mount_pitch_deg


@dataclass(frozen=True)
class CalibrationRef:
    """``robot.camera.calibration`` in a launch file.

    file: calibration YAML written by ``lnn-control camera calibrate`` (relative paths: from the
        current directory, like the launch file's other paths).
    mount_pitch_deg: the real camera's measured pitch (degrees, > 0 looks down); overrides the
        file's value, so a remounted camera needs no new calibration. ``null``: the file's.
    """

    file: str
    mount_pitch_deg: float | None = None

    def __post_init__(self) -> None:
        if not self.file:
            raise ValueError("robot.camera.calibration.file must name a calibration YAML file")
        if self.mount_pitch_deg is not None:
            _finite("robot.camera.calibration.mount_pitch_deg", self.mount_pitch_deg)

    def load(self) -> CameraCalibration:
        """The referenced calibration with this section's mount pitch applied; ConfigError names
        the file when it is missing or invalid."""
        path = Path(self.file).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"camera calibration file {path} does not exist (robot.camera.calibration.file); "
                "write it with 'lnn-control camera calibrate --out FILE'"
            )
        calibration = load_calibration(path)
        if self.mount_pitch_deg is None:
            return calibration
        try:
            return replace(calibration, mount_pitch_deg=self.mount_pitch_deg)
        except ValueError as exc:
            raise ConfigError(f"robot.camera.calibration: {exc}") from exc


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read a calibration YAML file strictly (unknown keys and bad values name the key and file)."""
    return load_yaml_dataclass(CameraCalibration, path)


def calibration_to_dict(calibration: CameraCalibration) -> dict[str, Any]:
    """Plain YAML/JSON-ready dict (tuples as lists) in the file's key order."""
    data = asdict(calibration)
    data["intrinsics"]["distortion"] = [float(v) for v in calibration.intrinsics.distortion]
    order = ("version", "intrinsics", "sim_view", "mount_pitch_deg", "quality")
    return {key: data[key] for key in order}


def save_calibration(calibration: CameraCalibration, path: str | Path) -> Path:
    """Write ``calibration`` as commented YAML, atomically; returns the path."""
    import yaml

    from lnn_control.atomic import atomic_write_text

    header = (
        "# Camera calibration written by 'lnn-control camera calibrate'.\n"
        "# intrinsics: pixels (OpenCV: from the top-left pixel's centre); distortion in OpenCV order\n"
        "#   k1 k2 p1 p2 k3. sim_view: the simulator camera the policy was trained with (degrees, pitch\n"
        "#   > 0 looks down). mount_pitch_deg: measured pitch of this camera on the robot (null: no\n"
        "#   pitch correction). Use it from a launch file:\n"
        "#   robot: {camera: {..., calibration: {file: THIS_FILE, mount_pitch_deg: null}}}\n"
    )
    body = yaml.safe_dump(calibration_to_dict(calibration), sort_keys=False, default_flow_style=False)
    return atomic_write_text(path, header + body)
