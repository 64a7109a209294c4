"""Contact sheet: one row per image corruption, columns clean + severities 1..5, labelled.

``contact_sheet(frame, names, seed, scale)`` returns the RGB ``uint8`` grid; ``sheet_size`` gives
its (height, width) without drawing it. ``synthetic_road_frame`` draws a road-like camera frame
for machines where no simulator frame is available.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lnn_control.envs.wrappers.corruptions import CORRUPTIONS, SEVERITIES, check_image
from lnn_control.envs.wrappers.image import stream_rng

#: Layout in output pixels: left label column, header row, gap between cells.
LABEL_WIDTH = 96
HEADER_HEIGHT = 22
GAP = 4
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def synthetic_road_frame(height: int = 64, width: int = 128) -> np.ndarray:
    """A forward-camera-like RGB frame: sky, tree line, grass, a grey road in perspective with
    white edge lines and a dashed yellow-white centre line. Deterministic; ``uint8 (height, width, 3)``."""
    if height < 16 or width < 16:
        raise ValueError(f"synthetic frame must be at least 16×16, got {height}×{width}")
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(0.38 * height)
    sky = np.linspace(150, 215, horizon, dtype=np.float32)[:, None]
    img[:horizon] = np.stack([sky * 0.62, sky * 0.8, sky], axis=-1).astype(np.uint8)
    img[horizon:] = (70, 128, 52)  # grass
    # tree line on the horizon
    for x in range(0, width, max(2, width // 20)):
        top = horizon - int((0.06 + 0.05 * ((x * 7919) % 5) / 4) * height)
        cv2.rectangle(img, (x, top), (x + max(1, width // 24), horizon), (34, 82, 30), -1)
    cx = width / 2.0
    vanish = (cx, horizon)

    def edge(offset_bottom: float) -> tuple[tuple[int, int], tuple[int, int]]:
        return (int(cx + offset_bottom * 0.02), horizon), (int(cx + offset_bottom), height - 1)

    road = np.array(
        [[vanish[0] - width * 0.02, horizon], [vanish[0] + width * 0.02, horizon],
         [cx + 0.75 * width, height - 1], [cx - 0.75 * width, height - 1]],
        np.int32,
    )
    cv2.fillPoly(img, [road], (96, 96, 100))
    line = max(1, width // 96)
    for offset in (-0.7 * width, 0.7 * width):
        cv2.line(img, *edge(offset), (235, 235, 235), line)
    (x0, y0), (x1, y1) = edge(0.0)
    for t0 in np.arange(0.0, 1.0, 0.2):
        t1 = t0 + 0.1
        p0 = (int(x0 + (x1 - x0) * t0 ** 1.5), int(y0 + (y1 - y0) * t0 ** 1.5))
        p1 = (int(x0 + (x1 - x0) * t1 ** 1.5), int(y0 + (y1 - y0) * t1 ** 1.5))
        cv2.line(img, p0, p1, (240, 220, 120), line)
    return img


def sheet_size(rows: int, frame_shape: tuple[int, ...], scale: int) -> tuple[int, int]:
    """(height, width) in pixels of a sheet with ``rows`` rows of ``frame_shape`` frames × ``scale``."""
    cell_h, cell_w = frame_shape[0] * scale, frame_shape[1] * scale
    columns = 1 + len(SEVERITIES)
    return (
        HEADER_HEIGHT + rows * (cell_h + GAP) + GAP,
        LABEL_WIDTH + columns * (cell_w + GAP) + GAP,
    )


def _put(sheet: np.ndarray, text: str, x: int, y: int, size: float = 0.45) -> None:
    cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, size, TEXT, 1, cv2.LINE_AA)


def contact_sheet(
    frame: np.ndarray, names: Sequence[str] | None = None, seed: int = 0, scale: int = 2
) -> np.ndarray:
    """Grid of ``frame`` under each corruption in ``names`` (default: all) at severities 1..5.

    Row ``i``, column 0 is the clean frame; column ``s`` is severity ``s``, drawn with a generator
    seeded from ``seed`` and the corruption's name (so the sheet is reproducible). ``scale`` ≥ 1
    enlarges every frame (nearest neighbour, so pixels stay visible). Returns RGB ``uint8``.
    """
    check_image(frame, "frame")
    names = list(CORRUPTIONS) if names is None else list(names)
    if not names:
        raise ValueError("names must list at least one image corruption")
    for name in names:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown image corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 8:
        raise ValueError(f"scale must be an integer in 1..8, got {scale!r}")
    height, width = sheet_size(len(names), frame.shape, scale)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    cell_h, cell_w = frame.shape[0] * scale, frame.shape[1] * scale

    def cell_x(column: int) -> int:
        return LABEL_WIDTH + GAP + column * (cell_w + GAP)

    for column, title in enumerate(["clean", *(f"severity {s}" for s in SEVERITIES)]):
        _put(sheet, title, cell_x(column) + 2, HEADER_HEIGHT - 7)
    for row, name in enumerate(names):
        y = HEADER_HEIGHT + GAP + row * (cell_h + GAP)
        _put(sheet, name, 6, y + cell_h // 2 + 5, 0.5)
        rng = stream_rng(seed, name)
        images = [frame] + [CORRUPTIONS[name](frame, s, rng) for s in SEVERITIES]
        for column, image in enumerate(images):
            big = cv2.resize(image, (cell_w, cell_h), interpolation=cv2.INTER_NEAREST) if scale > 1 else image
            sheet[y : y + cell_h, cell_x(column) : cell_x(column) + cell_w] = big
    return sheet


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB ``uint8`` image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("OpenCV failed to PNG-encode the image")
    return data.tobytes()
