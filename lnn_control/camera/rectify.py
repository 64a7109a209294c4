"""Turn a real camera frame into the view the policy's simulator camera had.

One virtual pinhole camera is placed at the real camera's optical centre: square pixels, principal
point at the image centre, the simulator's vertical field of view over the policy's image height,
turned from the measured mount pitch to the simulator's pitch. For every pixel of that view the
source pixel in the real (distorted) frame is computed once, with
``cv2.initUndistortRectifyMap(K, dist, R, K_virtual, ...)``; each frame then costs one
``cv2.remap`` (into the virtual view at about the real camera's pixel density, an integer multiple of
the output size) and one ``cv2.resize`` with area averaging down to the output size.

Limits of the pitch correction: it is a pure rotation about the optical centre (a homography
K·R·K⁻¹ of the undistorted image), exact for every direction, so the horizon and distant objects
land where the simulator put them. It cannot move the camera: a mount higher, lower or further
back than the simulator's (lane car: 0.20 m high, 0.10 m ahead; drone: 0.02 m up, 0.14 m ahead)
shows near ground at another scale (parallax), and a roll or yaw of the mount is not corrected.
Turning the view also turns it towards the edge of the real image, so less of the view may be
covered.

Parts of the simulator's view that the real camera does not see (a lens narrower than the
simulator's 86°-wide lane view, or a large pitch correction) are black; :attr:`RectifyMaps.coverage`
says what fraction of the output is real image. Directions beyond the edge of the real image,
where a radial distortion polynomial folds back, are never sampled.

numpy + OpenCV only: this module runs on the robot.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from lnn_control.camera.model import CalibrationRef, CameraCalibration, Intrinsics

log = logging.getLogger(__name__)

MAX_OVERSAMPLE = 8
"""Largest integer factor between the remapped view and the output size (bounds per-frame cost)."""

LOW_COVERAGE = 0.98
"""Below this fraction of real pixels in the output, building the maps logs a warning."""


def level_from_camera(pitch_rad: float) -> np.ndarray:
    """3×3 rotation taking camera-frame vectors (OpenCV: x right, y down, z forward) to the level
    frame of a camera pitched ``pitch_rad`` down (> 0) from level."""
    c, s = math.cos(pitch_rad), math.sin(pitch_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def rectification_rotation(mount_pitch_deg: float, sim_pitch_deg: float) -> np.ndarray:
    """``R`` for ``cv2.initUndistortRectifyMap``: OpenCV maps each virtual-view ray ``r`` to the real
    camera's ray ``R⁻¹ r``; a virtual camera pitched ``sim_pitch_deg`` on a real camera pitched
    ``mount_pitch_deg`` sees level-forward where the simulator does."""
    sim = level_from_camera(math.radians(sim_pitch_deg))
    mount = level_from_camera(math.radians(mount_pitch_deg))
    return sim.T @ mount


def virtual_camera_matrix(vertical_fov_deg: float, height: int, width: int) -> np.ndarray:
    """K of a ``height``×``width`` pinhole with square pixels, the principal point at the centre and
    ``vertical_fov_deg`` across the full image height (the simulators' GL projection)."""
    f = (height / 2.0) / math.tan(math.radians(vertical_fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def valid_radius(intrinsics: Intrinsics) -> float:
    """Largest undistorted normalised radius (tan of the angle off the optical axis) the calibration
    describes: the farthest point of the real image's border, cut at the first radius where the
    radial polynomial stops growing (beyond it the model folds back and is meaningless)."""

    width, height = intrinsics.size
    steps = np.linspace(0.0, 1.0, 65)
    xs, ys = steps * width - 0.5, steps * height - 0.5  # the image's outer edge
    border = np.concatenate([
        np.stack([xs, np.full_like(xs, -0.5)], 1), np.stack([xs, np.full_like(xs, height - 0.5)], 1),
        np.stack([np.full_like(ys, -0.5), ys], 1), np.stack([np.full_like(ys, width - 0.5), ys], 1),
    ]).reshape(-1, 1, 2)
    undistorted = undistort_points(border, intrinsics).reshape(-1, 2)
    radius = float(np.sqrt((undistorted**2).sum(axis=1)).max())
    coeffs = list(intrinsics.distortion) + [0.0] * (14 - len(intrinsics.distortion))
    k1, k2, k3, k4, k5, k6 = coeffs[0], coeffs[1], coeffs[4], coeffs[5], coeffs[6], coeffs[7]
    r = np.linspace(1e-6, radius * 1.02, 2048)
    r2 = r * r
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    growing = np.diff(r * radial) > 0
    if not growing.all():
        radius = min(radius, float(r[int(np.argmin(growing))]))
    return radius


def undistort_points(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Normalised undistorted coordinates (x/z, y/z) of pixel ``points`` (N, 1, 2), iterated to
    convergence (OpenCV's default stops after 5 iterations: visible error in wide-lens corners)."""
    import cv2

    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    k, dist = intrinsics.camera_matrix(), intrinsics.dist_coeffs()
    points = np.ascontiguousarray(points, np.float64).reshape(-1, 1, 2)
    if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4.x
        return np.asarray(cv2.undistortPointsIter(points, k, dist, None, None, criteria))
    return np.asarray(cv2.undistortPoints(points, k, dist, None, None, None, criteria))  # OpenCV 5


@dataclass(frozen=True)
class RectifyMaps:
    """Precomputed tables for one input size.

    input_size: (width, height) of the frames they apply to, pixels.
    output_shape: (height, width) of the result; view_shape: (height, width) of the remapped view,
        an integer multiple ``oversample`` of output_shape.
    map1, map2: ``cv2.remap`` tables (CV_16SC2 + CV_16UC1 fixed point).
    coverage: fraction of output pixels that see the real image (the rest is black).
    outline: (N, 2) float32 source-pixel coordinates (x, y) of the view's border, where it lies
        inside the real image (for drawing what the policy sees).
    """

    input_size: tuple[int, int]
    output_shape: tuple[int, int]
    view_shape: tuple[int, int]
    oversample: int
    map1: np.ndarray
    map2: np.ndarray
    coverage: float
    outline: np.ndarray

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Rectified, FOV-matched frame: (H, W[, C]) uint8 at ``input_size`` → output_shape (+ C)."""
        import cv2

        if (image.shape[1], image.shape[0]) != self.input_size:
            raise ValueError(
                f"frame is {image.shape[1]}x{image.shape[0]} px, these maps are for "
                f"{self.input_size[0]}x{self.input_size[1]}"
            )
        view = cv2.remap(image, self.map1, self.map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if self.oversample == 1:
            return view
        height, width = self.output_shape
        return cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA)


def build_maps(
    intrinsics: Intrinsics,
    vertical_fov_deg: float,
    output_shape: tuple[int, int],
    pitch_correction_deg: float = 0.0,
    sim_pitch_deg: float = 0.0,
) -> RectifyMaps:
    """Tables that turn ``intrinsics``' frames into a ``vertical_fov_deg`` view of ``output_shape``
    (height, width), turned down by ``pitch_correction_deg`` (= sim pitch − mount pitch).
    ``sim_pitch_deg`` only fixes the frame the rotation is expressed in (the result depends on the
    difference alone)."""
    import cv2

    height, width = (int(v) for v in output_shape)
    if height < 1 or width < 1:
        raise ValueError(f"output_shape must be (height, width) > 0 px, got {output_shape!r}")
    if not 0 < vertical_fov_deg < 170:
        raise ValueError(f"vertical_fov_deg must be in (0, 170), got {vertical_fov_deg}")
    f_out = (height / 2.0) / math.tan(math.radians(vertical_fov_deg) / 2.0)
    oversample = int(min(MAX_OVERSAMPLE, max(1, round(min(intrinsics.fx, intrinsics.fy) / f_out))))
    view_h, view_w = height * oversample, width * oversample
    k_view = virtual_camera_matrix(vertical_fov_deg, view_h, view_w)
    rotation = rectification_rotation(sim_pitch_deg - pitch_correction_deg, sim_pitch_deg)
    map_x, map_y = cv2.initUndistortRectifyMap(
        intrinsics.camera_matrix(), intrinsics.dist_coeffs(), rotation, k_view, (view_w, view_h), cv2.CV_32FC1
    )
    # directions the real camera does not see: behind it, or beyond the calibrated field
    cols, rows = np.meshgrid(np.arange(view_w, dtype=np.float64), np.arange(view_h, dtype=np.float64))
    rays = np.stack([cols, rows, np.ones_like(cols)], -1) @ np.linalg.inv(k_view).T @ rotation  # R⁻¹ r = Rᵀ r
    ahead = rays[..., 2] > 1e-9
    safe_z = np.where(ahead, rays[..., 2], 1.0)
    radius = np.hypot(rays[..., 0] / safe_z, rays[..., 1] / safe_z)
    in_image = (map_x >= -0.5) & (map_x <= intrinsics.image_width - 0.5) & (map_y >= -0.5) & (
        map_y <= intrinsics.image_height - 0.5
    )
    valid = ahead & (radius <= valid_radius(intrinsics)) & in_image
    map_x = np.where(valid, map_x, -10.0).astype(np.float32)
    map_y = np.where(valid, map_y, -10.0).astype(np.float32)
    coverage = float(cv2.resize(valid.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA).mean())
    border = np.concatenate([
        np.stack([map_x[0, :], map_y[0, :]], 1), np.stack([map_x[:, -1], map_y[:, -1]], 1),
        np.stack([map_x[-1, ::-1], map_y[-1, ::-1]], 1), np.stack([map_x[::-1, 0], map_y[::-1, 0]], 1),
    ])
    outline = border[border[:, 0] > -5].astype(np.float32)
    map1, map2 = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return RectifyMaps(intrinsics.size, (height, width), (view_h, view_w), oversample, map1, map2, coverage, outline)


class FrameRectifier:
    """Callable ``image -> image`` that gives a camera frame the simulator's view.

    calibration: the saved numbers; output_shape: (height, width) the policy takes.
    Frames of the calibrated size use maps built here; another size of the same aspect ratio
    (a driver that picked another mode) gets its own maps on its first frame, built once; another
    aspect ratio raises ValueError saying which sizes fit.
    """

    def __init__(self, calibration: CameraCalibration, output_shape: tuple[int, int]) -> None:
        self.calibration = calibration
        self.output_shape = (int(output_shape[0]), int(output_shape[1]))
        self._maps: dict[tuple[int, int], RectifyMaps] = {}
        self.maps = self.maps_for(*calibration.intrinsics.size)

    def maps_for(self, width: int, height: int) -> RectifyMaps:
        """The tables for ``width``×``height`` frames (built on first use)."""
        key = (int(width), int(height))
        if key not in self._maps:
            calibration = self.calibration
            maps = build_maps(
                calibration.intrinsics.scaled_to(*key), calibration.sim_view.vertical_fov_deg,
                self.output_shape, calibration.pitch_correction_deg(), calibration.sim_view.pitch_deg,
            )
            if maps.coverage < LOW_COVERAGE:
                log.warning(
                    "camera view correction: %.0f %% of the policy's %dx%d view lies outside this camera's "
                    "image and stays black (simulator view %.0f° vertical, pitch correction %+.1f°); a wider "
                    "lens or a mount pitch closer to the simulator's fills it",
                    100 * (1 - maps.coverage), self.output_shape[1], self.output_shape[0],
                    calibration.sim_view.vertical_fov_deg, calibration.pitch_correction_deg(),
                )
            self._maps[key] = maps
        return self._maps[key]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(H, W[, C]) uint8 frame → (out_h, out_w[, C]) view the simulator camera would have seen."""
        return self.maps_for(image.shape[1], image.shape[0]).apply(image)

    def describe(self) -> str:
        """One line: sizes, field of view, pitch correction, coverage."""
        calibration, maps = self.calibration, self.maps
        width, height = maps.input_size
        return (
            f"{width}x{height} → {self.output_shape[1]}x{self.output_shape[0]} px, "
            f"{calibration.sim_view.vertical_fov_deg:g}° vertical FOV ({calibration.sim_view.task}), "
            f"pitch correction {calibration.pitch_correction_deg():+.2f}°, view {maps.view_shape[1]}x"
            f"{maps.view_shape[0]} px, {100 * maps.coverage:.1f} % covered by the real image"
        )


def rectifier_from_ref(ref: CalibrationRef, output_shape: tuple[int, int]) -> FrameRectifier:
    """The rectifier a launch file's ``robot.camera.calibration`` section describes."""
    return FrameRectifier(ref.load(), output_shape)
