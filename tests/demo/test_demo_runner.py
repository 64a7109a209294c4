"""`lnn-control demo`: the shipped policies drive, and the video holds the overlays (and the drone's map)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

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


@pytest.mark.slow
@pytest.mark.parametrize(("task", "backend", "map_width"), [("lane-keeping", "mujoco", 0), ("drone-forest", "pybullet", 360)])
def test_demo_writes_a_video_of_the_shipped_policy(tmp_path: Path, capsys, task: str, backend: str, map_width: int) -> None:
    out = tmp_path / "demo.mp4"
    assert main(["demo", task, "--backend", backend, "--condition", "fog:2", "--max-steps", "12", "--out", str(out)]) == 0
    assert "stopped after 12 steps" in capsys.readouterr().out
    frames = _frames(out)
    assert len(frames) == 12
    assert frames[0].shape == (360, 480 + map_width + PANEL_WIDTH, 3)
    if map_width:  # the map shows the target's red ring
        top_down = frames[-1][:, 480:480 + map_width]
        red = (top_down[..., 2] > 180) & (top_down[..., 1] < 90) & (top_down[..., 0] < 90)  # BGR
        assert red.sum() > 20


def test_demo_refuses_an_unknown_policy(tmp_path: Path, capsys) -> None:
    code = main(["demo", "lane-keeping", "--policy", "no_such_policy", "--max-steps", "1", "--out", str(tmp_path / "x.mp4")])
    assert code != 0
    assert "policy 'no_such_policy' not found" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
