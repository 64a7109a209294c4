"""Cameras against real video files written with cv2.VideoWriter and decoded through OpenCV."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lnn_control.runtime.hardware.cameras import (
    CameraConfig,
    CameraError,
    OpenCVCamera,
    VideoFileCamera,
    make_camera,
)

N_FRAMES = 12
SIZE = (48, 64)  # (height, width) of the file


def frame_colour(k: int) -> tuple[int, int, int]:
    """RGB colour of frame k: distinct, far apart so JPEG loss does not blur the identity."""
    return (20 * k + 10, 255 - 20 * k, 128 if k % 2 else 30)


def write_video(path: Path, n_frames: int = N_FRAMES, fps: float = 100.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for k in range(n_frames):
        rgb = np.zeros((*SIZE, 3), np.uint8)
        rgb[:] = frame_colour(k)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def which_frame(image: np.ndarray) -> int:
    mean = image.reshape(-1, 3).mean(axis=0)
    errors = [np.abs(mean - np.array(frame_colour(k))).max() for k in range(N_FRAMES)]
    best = int(np.argmin(errors))
    assert errors[best] < 8, f"frame colour {mean} matches no written frame"
    return best


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.avi")


def test_file_frames_in_order_rgb_and_resized(video: Path) -> None:
    with VideoFileCamera(video, realtime=False, output_shape=(24, 40)) as cam:
        assert cam.fps == pytest.approx(100.0)
        frames = [cam.read() for _ in range(N_FRAMES)]
        assert cam.finished is False
        last = cam.read()  # past the end: the source stalls on its last frame
        assert cam.finished is True
    for k, frame in enumerate(frames):
        assert frame.image.shape == (24, 40, 3) and frame.image.dtype == np.uint8
        assert frame.index == k
        assert which_frame(frame.image) == k
    # RGB order: frame 0 is (10, 255, 30) -> green channel dominant, blue low
    assert frames[0].image[..., 1].mean() > 240 and frames[0].image[..., 2].mean() < 45
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    assert last.index == N_FRAMES - 1 and last.timestamp == frames[-1].timestamp


def test_realtime_playback_follows_the_clock_and_stalls_at_the_end(video: Path) -> None:
    with VideoFileCamera(video, realtime=True) as cam:
        opened = cam._start
        seen: list = []
        deadline = time.monotonic() + 5.0
        while not cam.finished and time.monotonic() < deadline:
            frame = cam.read()
            if not seen or frame.index != seen[-1].index:
                seen.append(frame)
        assert cam.finished, "a 0.12 s clip must finish within 5 s"
        for frame in seen:
            # nominal capture time of frame k is k / fps after open, and content matches k
            assert frame.timestamp == pytest.approx(opened + frame.index / 100.0, abs=1e-9)
            assert which_frame(frame.image) == frame.index
        assert seen[0].index <= 2 and seen[-1].index == N_FRAMES - 1
        # a stalled source is detectable by age: it keeps growing while index stays put
        final = cam.read()
        assert final.index == N_FRAMES - 1
        assert final.age() >= final.age(now=final.timestamp) >= 0.0
        assert final.age() > 0.0


def test_looping_playback_wraps_to_the_first_frame(video: Path) -> None:
    with VideoFileCamera(video, realtime=False, loop=True) as cam:
        frames = [cam.read() for _ in range(2 * N_FRAMES + 3)]
        assert not cam.finished
    assert [f.index for f in frames] == list(range(2 * N_FRAMES + 3))
    assert [which_frame(f.image) for f in frames] == [k % N_FRAMES for k in range(2 * N_FRAMES + 3)]


def test_opencv_camera_grabber_thread_keeps_latest_and_reports_end(video: Path) -> None:
    cam = OpenCVCamera(str(video), output_shape=(16, 16), failure_timeout_s=0.2)
    with cam:
        first = cam.read()
        assert first.image.shape == (16, 16, 3)
        assert 0 <= first.index < N_FRAMES
        # the file ends: the grabber gives up after failure_timeout_s and read() reports it
        deadline = time.monotonic() + 5.0
        with pytest.raises(CameraError, match="delivered no frame"):
            while time.monotonic() < deadline:
                frame = cam.read()
                assert frame.index >= first.index and frame.timestamp >= first.timestamp
        assert frame.index == N_FRAMES - 1
    assert not cam.is_open


def test_bad_inputs_raise_clear_errors(tmp_path: Path, video: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        VideoFileCamera(tmp_path / "missing.avi").open()
    with pytest.raises(ValueError, match="output_shape"):
        VideoFileCamera(video, output_shape=(0, 10))
    with pytest.raises(ValueError, match="source must be"):
        OpenCVCamera(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fps must be > 0"):
        OpenCVCamera(0, fps=-1)
    with pytest.raises(CameraError, match="not open"):
        VideoFileCamera(video).read()
    with pytest.raises(CameraError, match="cannot open camera source"):
        OpenCVCamera(str(tmp_path / "no_such_device.avi")).open()
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video" * 10)
    with pytest.raises(CameraError):
        VideoFileCamera(garbage).open()


def test_make_camera_from_launch_config(video: Path) -> None:
    cam = make_camera(CameraConfig(kind="video_file", source=str(video), realtime=False), (8, 8))
    assert isinstance(cam, VideoFileCamera)
    with cam:
        assert cam.read().image.shape == (8, 8, 3)
    assert isinstance(make_camera(CameraConfig(kind="opencv", source=0), None), OpenCVCamera)
    with pytest.raises(ValueError, match="video file path"):
        CameraConfig(kind="video_file", source=3)
