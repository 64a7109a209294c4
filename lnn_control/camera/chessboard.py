"""OpenCV chessboard calibration from a folder of images or a video file.

``cv2.findChessboardCorners`` (adaptive threshold, normalised image, fast check) finds the board in
each view, ``cv2.cornerSubPix`` refines the corners (window scaled to the board's corner spacing),
and ``cv2.calibrateCamera`` fits the pinhole + distortion model (k1 k2 p1 p2 k3, or k3 fixed at 0)
to every view at once. The board is described by its **inner** corners, as OpenCV counts them: a
printed board of 10 × 7 squares is ``9x6``. The square size only scales the board poses, never the
intrinsics, but it is recorded.

Usage::

    board = Board.parse("9x6", square_mm=25.0)
    result = calibrate_chessboard(Path("calib_images"), board)   # or a video file
    result.intrinsics.fx, result.rms_px
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lnn_control.camera.model import Intrinsics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files a calibration folder may hold (case-insensitive)."""

DEFAULT_MIN_VIEWS = 10
"""Fewest views with the board found that a calibration accepts (OpenCV's guidance: 10 or more)."""

VIDEO_FRAMES_TRIED = 60
"""A video is sampled evenly so that about this many frames are searched for the board."""


class NotEnoughViewsError(ValueError):
    """The board was found in too few images; the message says how many and what to check."""


@dataclass(frozen=True)
class Board:
    """cols × rows inner corners of a chessboard with square_mm squares."""

    cols: int
    rows: int
    square_mm: float

    def __post_init__(self) -> None:
        if self.cols < 3 or self.rows < 3 or self.cols == self.rows == 3:
            raise ValueError(
                f"board must have at least 3 inner corners each way (and not 3x3), got {self.cols}x{self.rows}"
            )
        if not (math.isfinite(self.square_mm) and self.square_mm > 0):
            raise ValueError(f"square size must be > 0 mm, got {self.square_mm}")

    @classmethod
    def parse(cls, text: str, square_mm: float) -> Board:
        """``"9x6"`` (inner corners COLSxROWS) and the square size in millimetres."""
        parts = text.lower().replace("×", "x").split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(
                f"board {text!r} must be COLSxROWS inner corners, e.g. 9x6 for a board of 10 x 7 squares"
            )
        return cls(int(parts[0]), int(parts[1]), float(square_mm))

    @property
    def pattern_size(self) -> tuple[int, int]:
        """(cols, rows) as ``cv2.findChessboardCorners`` takes it."""
        return (self.cols, self.rows)

    def object_points(self) -> np.ndarray:
        """(cols·rows, 3) float32 corner positions on the board plane (z = 0), millimetres, in the
        order OpenCV returns the corners (row by row)."""
        grid = np.zeros((self.rows * self.cols, 3), np.float32)
        grid[:, :2] = np.mgrid[0 : self.cols, 0 : self.rows].T.reshape(-1, 2) * self.square_mm
        return grid

    def __str__(self) -> str:
        return f"{self.cols}x{self.rows}"


@dataclass(frozen=True)
class CalibrationResult:
    """intrinsics: the fitted model; rms_px: RMS reprojection error over every corner (pixels);
    view_rms_px: per used view; used: names of the views in the fit; missed: views without the
    board; views_found / views_tried: views with the board / all views searched."""

    intrinsics: Intrinsics
    rms_px: float
    view_rms_px: tuple[float, ...]
    used: tuple[str, ...]
    missed: tuple[str, ...]
    views_found: int
    views_tried: int


def iter_views(source: Path, video_step: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR or gray image) for each image file of folder ``source`` (sorted by name) or each
    ``video_step``-th frame of video ``source`` (default: about :data:`VIDEO_FRAMES_TRIED` frames)."""
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"OpenCV cannot read image {path} (corrupt or unsupported format)")
            yield path.name, image
        return
    if not source.is_file():
        raise ValueError(f"--images {source} is neither a folder of images nor a video file")
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"OpenCV cannot open video {source}; pass a folder of images or an MJPG/AVI or mp4v/MP4 file")
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        step = video_step or max(1, count // VIDEO_FRAMES_TRIED if count > 0 else 10)
        index = 0
        while capture.grab():
            if index % step == 0:
                ok, frame = capture.retrieve()
                if ok and frame is not None:
                    yield f"{source.name}#{index}", frame
            index += 1
        if index == 0:
            raise ValueError(f"video {source} holds no decodable frame")
    finally:
        capture.release()


def find_corners(image: np.ndarray, board: Board) -> np.ndarray | None:
    """Sub-pixel inner corners (cols·rows, 1, 2) float32 of ``board`` in ``image``, or None."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    found, corners = cv2.findChessboardCorners(gray, board.pattern_size, flags=flags)
    if not found or corners is None:
        return None
    grid = corners.reshape(board.rows, board.cols, 2)
    spacing = min(
        float(np.linalg.norm(np.diff(grid, axis=1), axis=2).min()),
        float(np.linalg.norm(np.diff(grid, axis=0), axis=2).min()),
    )
    half = int(np.clip(spacing * 0.4, 2, 11))  # the window must not reach the next corner
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    refined = cv2.cornerSubPix(gray, corners, (half, half), (-1, -1), criteria)
    return np.asarray(refined, np.float32).reshape(-1, 1, 2)  # OpenCV 5 returns (N, 2), 4.x (N, 1, 2)


def calibrate_chessboard(
    source: Path,
    board: Board,
    min_views: int = DEFAULT_MIN_VIEWS,
    fix_k3: bool = False,
    video_step: int | None = None,
    max_views: int = 40,
    progress: Callable[[str], None] = lambda _: None,
) -> CalibrationResult:
    """Find ``board`` in every view of ``source`` (folder or video) and calibrate.

    min_views: fewer views with the board found raise :class:`NotEnoughViewsError`.
    fix_k3: keep k3 at 0 (narrow lenses, or too few views to pin it down).
    max_views: at most this many views (evenly spread over those found) go into the fit.
    """
    import cv2

    if min_views < 3:
        raise ValueError(f"min_views must be >= 3 (OpenCV needs several views), got {min_views}")
    if max_views < min_views:
        raise ValueError(f"max_views ({max_views}) must be >= min_views ({min_views})")
    found: list[tuple[str, np.ndarray]] = []
    missed: list[str] = []
    size: tuple[int, int] | None = None
    for name, image in iter_views(source, video_step):
        this_size = (image.shape[1], image.shape[0])
        if size is None:
            size = this_size
        elif this_size != size:
            raise ValueError(
                f"{name} is {this_size[0]}x{this_size[1]} px but the first view is {size[0]}x{size[1]}: "
                "calibrate one capture size at a time"
            )
        corners = find_corners(image, board)
        if corners is None:
            missed.append(name)
        else:
            found.append((name, corners))
        progress(f"{name}: {'board found' if corners is not None else 'no board'}")
    tried = len(found) + len(missed)
    if len(found) < min_views:
        shown = ", ".join(missed[:5]) + (f" (+{len(missed) - 5} more)" if len(missed) > 5 else "")
        raise NotEnoughViewsError(
            f"the {board} chessboard was found in {len(found)} of {tried} views from {source}; calibration "
            f"needs at least {min_views}. Check that --board counts INNER corners (a board of 10 x 7 squares "
            f"is 9x6), that the whole board is in view, sharp and evenly lit, and tilt and move it between "
            f"views. No board in: {shown or 'none'}"
        )
    views_found = len(found)
    if len(found) > max_views:
        keep = np.linspace(0, len(found) - 1, max_views).round().astype(int)
        found = [found[i] for i in keep]
    assert size is not None
    objects = [board.object_points() for _ in found]
    images = [corners for _, corners in found]
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
    rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(objects, images, size, None, None, flags=flags, criteria=criteria)
    view_rms = []
    for obj, img, rvec, tvec in zip(objects, images, rvecs, tvecs):
        projected, _ = cv2.projectPoints(obj, rvec, tvec, k, dist)
        view_rms.append(float(np.sqrt(((projected - img) ** 2).sum(axis=2).mean())))
    distortion = tuple(float(v) for v in np.asarray(dist).ravel()[:5])
    intrinsics = Intrinsics(
        size[0], size[1], float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), distortion
    )
    return CalibrationResult(
        intrinsics, float(rms), tuple(view_rms), tuple(n for n, _ in found), tuple(missed), views_found, tried
    )
