"""Top-down map of a forest flight for demo videos: trunks to scale, start, target, flown path.

The map frames the start, the target and the path flown so far with a margin, so a 15–30 m flight
fills the picture; north (+y) is up. Drawing is OpenCV on a uint8 RGB image.
"""

from __future__ import annotations

import numpy as np

from lnn_control.envs.drone_forest.forest import Forest

GROUND = (52, 78, 44)
TRUNK = (120, 84, 52)
CANOPY = (70, 110, 60)
START = (90, 160, 255)
TARGET = (235, 40, 40)
PATH = (255, 220, 60)
DRONE = (255, 255, 255)
MARGIN_M = 4.0


def draw_top_down(forest: Forest, path_xy: np.ndarray, yaw: float, size: int = 360) -> np.ndarray:
    """The map as uint8 RGB [size, size, 3].

    path_xy: [N, 2] positions flown so far (m, world frame; N ≥ 1, the last is the drone now);
    yaw: the drone's heading (rad, counter-clockwise from +x), drawn as a line from the drone.
    """
    import cv2

    path = np.asarray(path_xy, dtype=float).reshape(-1, 2)
    if path.shape[0] < 1 or not np.all(np.isfinite(path)):
        raise ValueError(f"path_xy must be finite [N>=1, 2] positions in m, got shape {np.shape(path_xy)}")
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")
    points = np.vstack([path, forest.start_position[:2], forest.target_position[:2]])
    low, high = points.min(axis=0) - MARGIN_M, points.max(axis=0) + MARGIN_M
    span = float(max(high - low))
    centre = (low + high) / 2.0
    scale = size / span  # px per m

    def px(xy: np.ndarray) -> np.ndarray:
        rel = (np.asarray(xy, float) - centre) * scale
        return np.stack([size / 2 + rel[..., 0], size / 2 - rel[..., 1]], axis=-1).round().astype(np.int32)

    image = np.full((size, size, 3), GROUND, np.uint8)
    visible = np.all(np.abs(forest.trunk_xy - centre) <= span / 2 + forest.canopy_radius[:, None], axis=1)
    for xy, canopy in zip(forest.trunk_xy[visible], forest.canopy_radius[visible]):
        cv2.circle(image, tuple(int(v) for v in px(xy)), max(1, int(round(canopy * scale))), CANOPY, 1, cv2.LINE_AA)
    for xy, radius in zip(forest.trunk_xy[visible], forest.trunk_radius[visible]):
        cv2.circle(image, tuple(int(v) for v in px(xy)), max(2, int(round(radius * scale))), TRUNK, -1, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in px(forest.start_position[:2])), 5, START, 2, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in px(forest.target_position[:2])), max(4, int(round(1.0 * scale))),
               TARGET, 2, cv2.LINE_AA)  # the 1 m success radius
    if path.shape[0] > 1:
        cv2.polylines(image, [px(path).reshape(-1, 1, 2)], False, PATH, 2, cv2.LINE_AA)
    here = px(path[-1])
    nose = px(path[-1] + 1.5 * np.array([np.cos(yaw), np.sin(yaw)]))
    cv2.line(image, tuple(int(v) for v in here), tuple(int(v) for v in nose), DRONE, 2, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in here), 4, DRONE, -1, cv2.LINE_AA)
    cv2.putText(image, f"{span:.0f} m", (6, size - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, DRONE, 1, cv2.LINE_AA)
    return image
