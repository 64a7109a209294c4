"""A PNG of what the policy sees from the real camera, next to what it saw in the simulator.

Three panels of equal height, each under a one-line caption, and a footer line:

1. the real camera frame, with the border of the policy's view drawn on it (green);
2. the rectified, FOV-matched frame at the policy's size, enlarged ``scale``× (nearest pixel, so
   the pixels the policy gets are visible);
3. a simulator frame of the task at the same size and scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lnn_control.camera.rectify import FrameRectifier

CAPTION_PX = 26
"""Height of the caption bar above each panel and of the footer (pixels)."""
GAP_PX = 8
"""Gap between panels (pixels)."""


def preview_size(input_size: tuple[int, int], output_shape: tuple[int, int], scale: int) -> tuple[int, int]:
    """(height, width) of the preview PNG for a camera frame of ``input_size`` (width, height) and
    a policy view of ``output_shape`` (height, width) enlarged ``scale``×."""
    panel_h = output_shape[0] * scale
    camera_w = round(input_size[0] * panel_h / input_size[1])
    return (CAPTION_PX + panel_h + CAPTION_PX, camera_w + 2 * output_shape[1] * scale + 2 * GAP_PX)


def _captioned(panel: np.ndarray, caption: str) -> np.ndarray:
    import cv2

    bar = np.full((CAPTION_PX, panel.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, caption, (6, CAPTION_PX - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, panel])


def compose_preview(
    frame_bgr: np.ndarray, rectifier: FrameRectifier, sim_rgb: np.ndarray, sim_caption: str, scale: int = 4
) -> np.ndarray:
    """The preview image (BGR uint8, :func:`preview_size`) for camera frame ``frame_bgr``
    (H, W, 3) and simulator frame ``sim_rgb`` (any size; shown at the policy's size)."""
    import cv2

    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    out_h, out_w = rectifier.output_shape
    panel_h, panel_w = out_h * scale, out_w * scale
    maps = rectifier.maps_for(frame_bgr.shape[1], frame_bgr.shape[0])
    view = maps.apply(frame_bgr)
    camera_w = round(frame_bgr.shape[1] * panel_h / frame_bgr.shape[0])
    zoom = panel_h / frame_bgr.shape[0]
    camera = cv2.resize(frame_bgr, (camera_w, panel_h), interpolation=cv2.INTER_AREA)
    if len(maps.outline):
        points = np.round((maps.outline + 0.5) * zoom - 0.5).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(camera, [points], True, (0, 255, 0), 1, cv2.LINE_AA)
    policy = cv2.resize(view, (panel_w, panel_h), interpolation=cv2.INTER_NEAREST)
    sim_small = cv2.resize(sim_rgb, (out_w, out_h), interpolation=cv2.INTER_AREA)
    sim = cv2.resize(cv2.cvtColor(sim_small, cv2.COLOR_RGB2BGR), (panel_w, panel_h), interpolation=cv2.INTER_NEAREST)
    gap = np.full((CAPTION_PX + panel_h, GAP_PX, 3), 255, np.uint8)
    width, height = maps.input_size
    row = np.hstack([
        _captioned(camera, f"camera {width}x{height} (green: policy's view)"), gap,
        _captioned(policy, f"policy sees {out_w}x{out_h} ({100 * maps.coverage:.0f} % real image)"), gap,
        _captioned(sim, sim_caption),
    ])
    footer = np.full((CAPTION_PX, row.shape[1], 3), 255, np.uint8)
    ascii_line = rectifier.describe().replace("→", "->").replace("°", " deg")  # Hershey fonts are ASCII
    cv2.putText(footer, ascii_line, (6, CAPTION_PX - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (40, 40, 40), 1,
                cv2.LINE_AA)
    return np.vstack([row, footer])


def read_frame(path: Path, frame_index: int = 0) -> np.ndarray:
    """BGR frame ``frame_index`` of a video, or the image at ``path``; ValueError names the file."""
    import cv2

    if not path.is_file():
        raise ValueError(f"--input {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return image
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"OpenCV reads {path} neither as an image nor as a video")
        for _ in range(frame_index):
            if not capture.grab():
                raise ValueError(f"video {path} has fewer than {frame_index + 1} frames")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise ValueError(f"video {path} has no decodable frame {frame_index}")
        return frame
    finally:
        capture.release()
