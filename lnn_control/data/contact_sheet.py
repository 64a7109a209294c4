"""``lnn-control dataset contact-sheet``: a PNG grid of frames sampled evenly over a dataset.

Frame ``k`` of ``n`` is the dataset's step ``round(k * (S - 1) / (n - 1))`` of its ``S`` steps
counted over all episodes in order, so the sheet covers the whole dataset. Each cell shows the
frame enlarged ``scale`` times (nearest neighbour: pixels stay visible) above a two-line caption:
episode, seconds since the episode's first frame and source; the label (action values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.summary import episode_length

#: Layout in output pixels: header row, caption under each cell, gap between cells.
HEADER_HEIGHT = 22
CAPTION_HEIGHT = 30
GAP = 4
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


@dataclass(frozen=True)
class SheetLayout:
    """frames: cells drawn; columns: cells per row; scale: integer enlargement (1..8)."""

    frames: int = 24
    columns: int = 6
    scale: int = 2

    def __post_init__(self) -> None:
        for name, low, high in (("frames", 1, 1000), ("columns", 1, 100), ("scale", 1, 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"contact sheet {name} must be an integer in {low}..{high}, got {value!r}")


def sheet_size(cells: int, columns: int, frame_shape: tuple[int, ...], scale: int) -> tuple[int, int]:
    """(height, width) in pixels of a sheet of ``cells`` frames of ``frame_shape``, ``columns`` a row."""
    columns = min(columns, cells)
    rows = math.ceil(cells / columns)
    cell_h, cell_w = frame_shape[0] * scale, frame_shape[1] * scale
    return HEADER_HEIGHT + rows * (cell_h + CAPTION_HEIGHT + GAP) + GAP, GAP + columns * (cell_w + GAP)


def sample_indices(total_steps: int, frames: int) -> list[int]:
    """Evenly spaced global step indices (at most ``total_steps``, distinct, in order)."""
    count = min(frames, total_steps)
    if count <= 1:
        return [0][:count]
    return sorted({int(round(k * (total_steps - 1) / (count - 1))) for k in range(count)})


def _put(sheet: np.ndarray, text: str, x: int, y: int, size: float = 0.38) -> None:
    import cv2

    cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, size, TEXT, 1, cv2.LINE_AA)


def _label_text(names: tuple[str, ...], values: np.ndarray) -> str:
    return " ".join(f"{name} {value:+.2f}" for name, value in zip(names, values))


def dataset_contact_sheet(root: str | Path, layout: SheetLayout | None = None) -> np.ndarray:
    """The sheet of the dataset at ``root`` as RGB ``uint8`` (H, W, 3); see :func:`sheet_size`."""
    import cv2

    layout = layout or SheetLayout()
    dataset = EpisodeDataset(root)
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.root} has no episodes; nothing to draw")
    lengths = [episode_length(path) for path in dataset.paths]
    starts = np.cumsum([0, *lengths])
    chosen = sample_indices(int(starts[-1]), layout.frames)
    shape = dataset.manifest.observation_spec.image_shape
    names = dataset.manifest.action_spec.names
    height, width = sheet_size(len(chosen), layout.columns, shape, layout.scale)
    columns = min(layout.columns, len(chosen))
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    _put(sheet, f"{dataset.root.name}: {len(dataset)} episodes, {int(starts[-1])} steps; "
                f"{len(chosen)} frames evenly spaced", GAP, HEADER_HEIGHT - 7, 0.45)
    cell_h, cell_w = shape[0] * layout.scale, shape[1] * layout.scale
    for episode_index in range(len(dataset)):
        wanted = [g for g in chosen if starts[episode_index] <= g < starts[episode_index + 1]]
        if not wanted:
            continue
        episode = dataset[episode_index]
        source = str(episode.metadata.get("source") or episode.metadata.get("mode") or "")
        for g in wanted:
            cell = chosen.index(g)
            step = g - int(starts[episode_index])
            x = GAP + (cell % columns) * (cell_w + GAP)
            y = HEADER_HEIGHT + (cell // columns) * (cell_h + CAPTION_HEIGHT + GAP)
            frame = episode.image[step]
            if layout.scale > 1:
                frame = cv2.resize(frame, (cell_w, cell_h), interpolation=cv2.INTER_NEAREST)
            sheet[y : y + cell_h, x : x + cell_w] = frame
            seconds = float(episode.timestamp[step] - episode.timestamp[0])
            _put(sheet, f"ep {episode_index} t {seconds:.2f}s {source}", x + 1, y + cell_h + 12)
            _put(sheet, _label_text(names, episode.label[step]), x + 1, y + cell_h + 25)
    return sheet


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an RGB ``uint8`` image as PNG, atomically."""
    import cv2

    from lnn_control.atomic import atomic_write_bytes

    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any valid uint8 image
        raise RuntimeError(f"OpenCV could not PNG-encode a {image.shape} image for {path}")
    return atomic_write_bytes(path, data.tobytes())
