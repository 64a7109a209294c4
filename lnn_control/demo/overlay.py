"""Compose demo video frames: the scene, the onboard camera, and live signals.

All drawing is OpenCV on uint8 RGB arrays. A frame is laid out as::

    +-----------------------------+----------------+
    |                             | onboard camera |
    |   scene (chase camera, and  +----------------+
    |   the drone's top-down map) | text lines     |
    |                             | neuron bars    |
    +-----------------------------+----------------+
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PANEL_WIDTH = 260
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
POSITIVE = (80, 180, 255)
NEGATIVE = (255, 120, 80)


@dataclass(frozen=True)
class NeuronGroups:
    """How to label the neuron bars: ``(name, count)`` in state order (ncps order: motor first)."""

    groups: tuple[tuple[str, int], ...]


def compose_frame(
    scene: np.ndarray,
    onboard: np.ndarray,
    lines: Sequence[str],
    neurons: np.ndarray | None = None,
    groups: NeuronGroups | None = None,
) -> np.ndarray:
    """Return one RGB uint8 video frame of height ``scene.shape[0]``.

    scene: uint8 [H,W,3]; onboard: uint8 [h,w,3] camera frame (scaled to the panel width);
    lines: short text lines (e.g. ``"steering +0.12"``); neurons: activity vector [N].
    """
    import cv2

    _check_image(scene, "scene")
    _check_image(onboard, "onboard")
    height = scene.shape[0]
    panel = np.full((height, PANEL_WIDTH, 3), BACKGROUND, np.uint8)
    scale = PANEL_WIDTH / onboard.shape[1]
    cam_h = min(height // 2, int(round(onboard.shape[0] * scale)))
    panel[:cam_h] = cv2.resize(onboard, (PANEL_WIDTH, cam_h), interpolation=cv2.INTER_NEAREST)
    y = cam_h + 18
    for line in lines:
        cv2.putText(panel, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1, cv2.LINE_AA)
        y += 17
    if neurons is not None and y < height - 20:
        _draw_neuron_bars(panel, np.asarray(neurons, np.float32).reshape(-1), groups, top=y, bottom=height - 6)
    return np.concatenate([scene, panel], axis=1)


def _draw_neuron_bars(panel: np.ndarray, activity: np.ndarray, groups: NeuronGroups | None, top: int, bottom: int) -> None:
    import cv2

    n = activity.size
    if n == 0:
        return
    label_h = 14
    cv2.putText(panel, f"{n} neurons", (8, top + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, TEXT, 1, cv2.LINE_AA)
    area_top, area_bottom = top + label_h + 4, bottom
    mid = (area_top + area_bottom) // 2
    half = max(2, (area_bottom - area_top) // 2)
    bar_w = max(2, (PANEL_WIDTH - 16) // n)
    scale = max(1e-6, float(np.max(np.abs(activity))))
    for i, value in enumerate(activity):
        x0 = 8 + i * bar_w
        length = int(round(half * float(value) / scale))
        color = POSITIVE if value >= 0 else NEGATIVE
        cv2.rectangle(panel, (x0, min(mid, mid - length)), (x0 + bar_w - 2, max(mid, mid - length)), color, -1)
    cv2.line(panel, (8, mid), (8 + n * bar_w, mid), (90, 90, 90), 1)
    if groups is not None:
        x = 8
        for name, count in groups.groups:
            cv2.putText(panel, name[:3], (x, area_bottom - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, TEXT, 1, cv2.LINE_AA)
            x += count * bar_w


def _check_image(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 RGB image [H,W,3], got {image.dtype} {image.shape}")
