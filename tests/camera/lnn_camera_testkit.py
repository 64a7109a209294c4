"""Images a real lens with known intrinsics and distortion would take, made with OpenCV.

Every pixel of the synthetic camera gets its ray by inverting OpenCV's own distortion model
(``undistort_points``, iterated to convergence), so the images obey exactly the model
``cv2.projectPoints`` / ``cv2.calibrateCamera`` use. Two kinds of scene:

- a printed chessboard at a known pose (the ray hits the board plane; the board texture is sampled
  with ``cv2.remap``), for calibration;
- an analytic world of half-spaces through the optical centre (their edges are straight lines in
  any pinhole image), shaded with a symmetric ramp a few pixels wide, so an edge's sub-pixel position
  is the sum of a profile - for field of view, pitch and straightness checks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from lnn_control.camera.chessboard import Board
from lnn_control.camera.model import Intrinsics
from lnn_control.camera.rectify import level_from_camera, undistort_points

# a wide USB camera: 74° x 59° before distortion, strong barrel distortion (k1 < 0)
TRUE = Intrinsics(640, 480, 420.0, 415.0, 322.5, 236.0, (-0.28, 0.09, 0.0008, -0.0006, 0.0))
BOARD = Board(9, 6, 25.0)
PX_PER_SQUARE = 16  # about the image's scale: bilinear sampling does not alias the edges


@functools.lru_cache(maxsize=4)
def pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """(H, W, 3) unit rays (camera frame: x right, y down, z forward) of every pixel centre."""
    width, height = intrinsics.size
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([cols, rows], -1).reshape(-1, 1, 2)
    normalised = undistort_points(pixels, intrinsics).reshape(height, width, 2)
    rays = np.concatenate([normalised, np.ones((height, width, 1))], -1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def board_texture(board: Board = BOARD) -> tuple[np.ndarray, float]:
    """Gray texture of the printed board with a one-square white margin; returns it and the board
    coordinate (mm) of the texture's left/top edge (the same both ways)."""
    squares_x, squares_y = board.cols + 1, board.rows + 1
    texture = np.full(((squares_y + 2) * PX_PER_SQUARE, (squares_x + 2) * PX_PER_SQUARE), 235, np.uint8)
    for a in range(squares_x):
        for b in range(squares_y):
            if (a + b) % 2 == 0:
                y0, x0 = (b + 1) * PX_PER_SQUARE, (a + 1) * PX_PER_SQUARE
                texture[y0 : y0 + PX_PER_SQUARE, x0 : x0 + PX_PER_SQUARE] = 25
    return texture, -2.0 * board.square_mm


def board_pose(tilt_x_deg: float, tilt_y_deg: float, centre_mm: Sequence[float], board: Board = BOARD) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) of a board tilted about x then y, its centre at ``centre_mm`` in the camera frame."""
    rotation = cv2.Rodrigues(np.array([math.radians(tilt_x_deg), 0.0, 0.0]))[0] @ cv2.Rodrigues(
        np.array([0.0, math.radians(tilt_y_deg), 0.0])
    )[0]
    centre_board = np.array([(board.cols - 1) * board.square_mm / 2, (board.rows - 1) * board.square_mm / 2, 0.0])
    tvec = np.asarray(centre_mm, np.float64) - rotation @ centre_board
    return cv2.Rodrigues(rotation)[0], tvec


def render_board(intrinsics: Intrinsics, rvec: np.ndarray, tvec: np.ndarray, rng: np.random.Generator,
                 board: Board = BOARD) -> np.ndarray:
    """BGR uint8 view of the board at pose (rvec, tvec) through ``intrinsics``, with sensor noise."""
    rays = pixel_rays(intrinsics)
    rotation = cv2.Rodrigues(rvec)[0]
    rays_b = rays @ rotation  # Rᵀ d, row-wise
    origin_b = rotation.T @ np.asarray(tvec, np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        s = origin_b[2] / rays_b[..., 2]
    points = s[..., None] * rays_b - origin_b  # board-frame hit points (mm); z ≈ 0
    texture, edge_mm = board_texture(board)
    px_per_mm = PX_PER_SQUARE / board.square_mm
    map_x = ((points[..., 0] - edge_mm) * px_per_mm - 0.5).astype(np.float32)
    map_y = ((points[..., 1] - edge_mm) * px_per_mm - 0.5).astype(np.float32)
    behind = ~(s > 0)
    map_x[behind] = -100
    gray = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=120)
    gray = cv2.GaussianBlur(gray, (3, 3), 0.6)
    noisy = gray.astype(np.float32) + rng.normal(0.0, 2.0, gray.shape)
    return cv2.cvtColor(np.clip(noisy, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


# (tilt about x, tilt about y) degrees, board centre pixel (u, v), distance (mm): the board visits
# every part of the image, corners included, tilted both ways (what a good calibration set does)
POSES = [
    (0, 0, (320, 240), 520), (20, -25, (135, 105), 470), (-20, 25, (505, 105), 470), (25, 20, (135, 375), 470),
    (-25, -20, (505, 375), 470), (30, 0, (320, 100), 480), (-30, 0, (320, 380), 480), (0, 30, (130, 240), 480),
    (0, -30, (510, 240), 480), (-35, 15, (320, 240), 560), (35, -15, (320, 240), 560), (15, 35, (200, 170), 600),
    (-15, -35, (440, 310), 600), (10, 10, (440, 170), 440), (-10, -10, (200, 310), 440),
]


def pose_at_pixel(tilt_x: float, tilt_y: float, pixel: Sequence[float], distance_mm: float,
                  intrinsics: Intrinsics = TRUE) -> tuple[np.ndarray, np.ndarray]:
    """Board pose whose centre appears at ``pixel`` at ``distance_mm`` along the optical axis."""
    x, y = undistort_points(np.array([[pixel]], np.float64), intrinsics).ravel()
    return board_pose(tilt_x, tilt_y, (x * distance_mm, y * distance_mm, distance_mm))


def chessboard_views(count: int = len(POSES), intrinsics: Intrinsics = TRUE, seed: int = 0) -> list[np.ndarray]:
    """``count`` BGR views of the board at the poses above (sensor noise seeded)."""
    rng = np.random.default_rng(seed)
    return [render_board(intrinsics, *pose_at_pixel(tx, ty, uv, z, intrinsics), rng) for tx, ty, uv, z in POSES[:count]]


def write_pngs(views: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, view in enumerate(views):
        assert cv2.imwrite(str(folder / f"view_{index:02d}.png"), view)
    return folder


def write_video(frames: list[np.ndarray], path: Path, fourcc: str = "MJPG", fps: float = 10.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


Shade = Callable[[np.ndarray], np.ndarray]


def half_space(normal: Sequence[float], ramp_rad: float = 0.004) -> Shade:
    """White where the level-frame direction d has n·d > 0, black below, a symmetric linear ramp of
    ±``ramp_rad`` (angle from the plane) across the edge."""
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    return lambda d: np.clip(0.5 + np.arcsin(np.clip(d @ n, -1, 1)) / (2 * ramp_rad), 0.0, 1.0)


def elevation_above(angle_deg: float) -> Shade:
    """White above ``angle_deg`` elevation (level frame: y down, so "up" is −y)."""
    a = math.radians(angle_deg)
    return half_space((0.0, -math.cos(a), -math.sin(a)))


def azimuth_right_of(angle_deg: float) -> Shade:
    """White right of ``angle_deg`` azimuth (x right, z forward)."""
    a = math.radians(angle_deg)
    return half_space((math.cos(a), 0.0, -math.sin(a)))


def render_world(shade: Shade, intrinsics: Intrinsics = TRUE, mount_pitch_deg: float = 0.0) -> np.ndarray:
    """BGR uint8 image of an analytic world (``shade``: level-frame unit directions → [0, 1]) seen by
    a camera with ``intrinsics`` pitched ``mount_pitch_deg`` down."""
    rays = pixel_rays(intrinsics) @ level_from_camera(math.radians(mount_pitch_deg)).T
    gray = np.round(255.0 * shade(rays)).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def white_rows_from_top(image: np.ndarray, column: int) -> float:
    """Sub-pixel row of a white-above-black edge in ``column`` (pixel-centre coordinates)."""
    gray = image if image.ndim == 2 else image[..., 1]
    return float(gray[:, column].astype(np.float64).sum() / 255.0) - 0.5


def edge_column(image: np.ndarray, row: int) -> float:
    """Sub-pixel column of a black-left, white-right edge in ``row``."""
    gray = image if image.ndim == 2 else image[..., 1]
    return gray.shape[1] - 0.5 - float(gray[row].astype(np.float64).sum() / 255.0)
