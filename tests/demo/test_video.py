"""Demo frames compose correctly and videos are real files OpenCV can read back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lnn_control.demo.overlay import PANEL_WIDTH, NeuronGroups, compose_frame
from lnn_control.demo.video import VideoWriter


def test_compose_frame_places_camera_and_bars() -> None:
    scene = np.zeros((240, 320, 3), np.uint8)
    onboard = np.full((64, 128, 3), 200, np.uint8)
    activity = np.linspace(-1, 1, 19)
    frame = compose_frame(scene, onboard, ["steering +0.10"], activity, NeuronGroups((("motor", 1), ("command", 6), ("inter", 12))))
    assert frame.shape == (240, 320 + PANEL_WIDTH, 3)
    assert (frame[:, :320] == 0).all()
    # the onboard frame is scaled into the top of the panel
    assert (frame[10, 330:330 + 100] == 200).all()
    # positive and negative bars use different colours somewhere below the text
    lower = frame[150:, 320:]
    assert (lower == np.array([80, 180, 255], np.uint8)).all(axis=-1).any()
    assert (lower == np.array([255, 120, 80], np.uint8)).all(axis=-1).any()


def test_video_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "demo.mp4"
    with VideoWriter(path, fps=20) as video:
        for i in range(10):
            video.write(np.full((48, 64, 3), (i * 20, 0, 0), np.uint8))
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        frames += 1
    capture.release()
    assert frames == 10
    assert not list(tmp_path.glob(".*partial*"))


def test_interrupted_video_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, fps=20) as video:
            video.write(np.zeros((48, 64, 3), np.uint8))
            raise KeyboardInterrupt
    assert not path.exists() and not list(tmp_path.iterdir())


def test_bad_video_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end in"):
        VideoWriter(tmp_path / "demo.gif", fps=20)
    with VideoWriter(tmp_path / "a.avi", fps=10) as video:
        video.write(np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match="frame size"):
            video.write(np.zeros((9, 8, 3), np.uint8))
