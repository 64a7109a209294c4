"""``lnn-control demo --saliency``: the onboard inset shows the VisualBackProp map over the camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lnn_control.cli import main
from lnn_control.demo.overlay import PANEL_WIDTH


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_inset_colours_the_salient_pixels_only(lane_policy, lane_frames) -> None:
    from lnn_control.explain.inset import saliency_inset
    from lnn_control.explain.saliency import visual_backprop

    frame = lane_frames.frames[0]
    inset = saliency_inset(lane_policy, frame)
    level = visual_backprop(lane_policy, frame)[0]
    changed = np.abs(inset.astype(int) - frame.astype(int)).sum(axis=-1) > 0
    assert inset.shape == frame.shape and inset.dtype == np.uint8
    assert changed[level > 0.5].all()  # salient pixels are tinted
    assert not changed[level == 0].any()  # the rest is the camera image as it was


def test_demo_with_saliency_writes_the_inset(tmp_path: Path) -> None:
    plain, tinted = tmp_path / "plain.avi", tmp_path / "saliency.avi"
    args = ["demo", "lane-keeping", "--max-steps", "6", "--seed", "1002"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--saliency", "--out", str(tinted)]) == 0
    a, b = _frames(plain), _frames(tinted)
    assert len(a) == len(b) == 6
    # same drive (the inset changes nothing the policy sees), different onboard panel
    np.testing.assert_array_equal(a[-1][:, :480], b[-1][:, :480])
    panel = (slice(0, 120), slice(480, 480 + PANEL_WIDTH))
    assert np.abs(a[-1][panel].astype(int) - b[-1][panel].astype(int)).mean() > 1.0
