"""The explain video: per policy step, saliency overlays side by side and the live wiring.

Layout of one frame (panels at ``scale`` × the camera size; the wiring panel as tall as the grid)::

    +--------------------------+--------------------------+---------------+
    | VisualBackProp, clean    | VisualBackProp, condition|  live wiring  |
    +--------------------------+--------------------------+  + time and   |
    | SmoothGrad, clean        | SmoothGrad, condition    |    actions    |
    +--------------------------+--------------------------+---------------+

Without clean twins (a clean run, a run log) the left column shows the plain frame instead.
Written with :class:`lnn_control.demo.video.VideoWriter` (temporary file renamed on a clean close).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lnn_control.explain.analysis import Analysis
from lnn_control.explain.figures import _label, overlay
from lnn_control.explain.recording import Recording
from lnn_control.explain.wiring_view import WiringView


def compose(recording: Recording, analysis: Analysis, view: WiringView, t: int, scale: int = 2) -> np.ndarray:
    """Video frame ``t`` (uint8 RGB) as in the module docstring."""
    frame = recording.frames[t]
    rows = []
    for method, label in (("visualbackprop", "VisualBackProp"), ("smoothgrad", "SmoothGrad")):
        right = _label(overlay(frame, analysis.maps[method][t], scale), f"{label} | {recording.condition}")
        if recording.clean_frames is not None and analysis.clean_maps is not None:
            left = _label(overlay(recording.clean_frames[t], analysis.clean_maps[method][t], scale), f"{label} | clean")
        else:
            left = _label(overlay(frame, np.zeros(frame.shape[:2], np.float32), scale), "camera")
        rows.append(np.concatenate([left, right], axis=1))
    grid = np.concatenate(rows, axis=0)
    actions = ", ".join(f"{name} {value:+.2f}" for name, value in zip(recording.action_names, analysis.actions[t]))
    panel = view.draw(analysis.states[t], f"t={recording.times[t]:5.2f}s  {actions}")
    if panel.shape[0] != grid.shape[0]:
        import cv2

        panel = cv2.resize(panel, (int(panel.shape[1] * grid.shape[0] / panel.shape[0]), grid.shape[0]))
    return np.concatenate([grid, panel], axis=1)


def write_video(path: str | os.PathLike[str], recording: Recording, analysis: Analysis, view: WiringView,
                fps: float, scale: int = 2) -> Path:
    """Write every step as one video frame (MP4 or AVI by suffix); returns the path."""
    from lnn_control.demo.video import VideoWriter

    writer = VideoWriter(path, fps=fps)
    try:
        for t in range(recording.steps):
            writer.write(compose(recording, analysis, view, t, scale))
    except BaseException:
        writer.close(keep=False)
        raise
    writer.close()
    return Path(path)
