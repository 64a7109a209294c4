"""Cameras for the real-time loop: OpenCV devices / URLs / GStreamer pipelines and video files.

Every camera returns :class:`Frame` objects: a uint8 RGB image of shape (H, W, 3), the capture
time in seconds on ``time.monotonic()``'s clock, and a frame index that increases by one for each
new frame the source delivered. ``read()`` never waits for a *new* frame: it returns the newest
one, so a stalled source shows up as a growing :meth:`Frame.age` (the loop's watchdog uses that),
while a source that failed for good raises :class:`CameraError`.

Usage::

    with OpenCVCamera(0, width=640, height=480, fps=30, output_shape=(64, 128)) as cam:
        frame = cam.read()        # Frame(image (64, 128, 3) uint8 RGB, timestamp, index)
        if frame.age() > 0.1: ...  # stale

A ``frame_transform`` (e.g. :class:`lnn_control.camera.rectify.FrameRectifier`: undistortion and the
simulator's field of view, from ``camera.calibration`` in a launch file) replaces the plain resize:
it takes the raw BGR frame and returns it at ``output_shape``.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from lnn_control.camera.model import CalibrationRef

FrameTransform = Callable[[np.ndarray], np.ndarray]
"""Raw (H, W[, C]) BGR/gray frame -> frame at the camera's output_shape (same channels)."""


class CameraError(RuntimeError):
    """A camera could not be opened or stopped delivering frames; the message says what to check."""


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    image: uint8 RGB array, shape (H, W, 3).
    timestamp: capture time in seconds on ``time.monotonic()``'s clock.
    index: 0 for the first frame the source delivered, +1 per new frame.
    """

    image: np.ndarray
    timestamp: float
    index: int

    def age(self, now: float | None = None) -> float:
        """Seconds since capture (``now`` defaults to ``time.monotonic()``)."""
        return (time.monotonic() if now is None else now) - self.timestamp


def _check_output_shape(output_shape: tuple[int, int] | None) -> tuple[int, int] | None:
    if output_shape is None:
        return None
    if len(output_shape) != 2 or any(int(v) <= 0 for v in output_shape):
        raise ValueError(
            f"output_shape must be (height, width) in pixels, both > 0, got {output_shape!r}"
        )
    return int(output_shape[0]), int(output_shape[1])


def _to_rgb(
    bgr: np.ndarray, output_shape: tuple[int, int] | None, transform: FrameTransform | None = None
) -> np.ndarray:
    """OpenCV BGR(A)/gray frame -> contiguous uint8 RGB, through ``transform`` if given (before the
    colour conversion: it shrinks the frame), resized to (height, width) if given."""
    import cv2

    if transform is not None:
        try:
            bgr = transform(bgr)
        except ValueError as exc:  # e.g. a frame size the calibration does not fit
            raise CameraError(str(exc)) from exc
    if bgr.ndim == 2:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    elif bgr.shape[2] == 4:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if output_shape is not None and rgb.shape[:2] != output_shape:
        height, width = output_shape
        shrinking = height < rgb.shape[0] or width < rgb.shape[1]
        rgb = cv2.resize(
            rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    if rgb.dtype != np.uint8:
        raise CameraError(f"camera delivered {rgb.dtype} pixels; only 8-bit sources are supported")
    return np.ascontiguousarray(rgb)


class Camera(abc.ABC):
    """A source of timestamped RGB frames; use as a context manager or call open()/close()."""

    @abc.abstractmethod
    def open(self) -> None:
        """Open the source; raises :class:`CameraError` naming the source on failure."""

    @abc.abstractmethod
    def read(self) -> Frame:
        """Return the newest frame (not necessarily a new one; compare ``index`` / ``age()``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the source; safe to call more than once."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Whether ``open()`` succeeded and ``close()`` has not been called."""

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class OpenCVCamera(Camera):
    """A camera device index, stream URL or GStreamer pipeline read by a background thread.

    source: device index (``0``), URL (``rtsp://...``, ``http://...``), file path, or a GStreamer
        pipeline (any string containing ``!``, opened with ``cv2.CAP_GSTREAMER``; end it in
        ``appsink``).
    width, height, fps: requested capture settings (the driver may pick the nearest mode).
    output_shape: (height, width) the frames are resized to, e.g. the policy's image size;
        ``None`` keeps the capture size.
    first_frame_timeout_s: how long ``read()`` waits for the very first frame.
    failure_timeout_s: after this long without a successful grab the source counts as failed and
        ``read()`` raises :class:`CameraError`. Shorter stalls only make frames stale.
    frame_transform: applied to every raw frame in the grabber thread (see the module docstring).

    The grabber thread keeps only the latest frame (no queue, so no added latency) and stamps it
    with ``time.monotonic()`` right after the driver hands it over.
    """

    def __init__(
        self,
        source: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        output_shape: tuple[int, int] | None = None,
        first_frame_timeout_s: float = 5.0,
        failure_timeout_s: float = 2.0,
        frame_transform: FrameTransform | None = None,
    ) -> None:
        if isinstance(source, bool) or not isinstance(source, (int, str)):
            raise ValueError(
                f"source must be a device index (int), URL, file path or GStreamer pipeline (str), "
                f"got {source!r}"
            )
        for name, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None (driver default), got {value!r}")
        for name, value in (
            ("first_frame_timeout_s", first_frame_timeout_s),
            ("failure_timeout_s", failure_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        self.source = source
        self.width = width
        self.height = height
        self.fps = fps
        self.output_shape = _check_output_shape(output_shape)
        self.first_frame_timeout_s = float(first_frame_timeout_s)
        self.failure_timeout_s = float(failure_timeout_s)
        self.frame_transform = frame_transform
        self._capture: Any = None  # cv2.VideoCapture once open
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._new_frame = threading.Condition()
        self._latest: Frame | None = None
        self._error: str | None = None

    @property
    def is_gstreamer(self) -> bool:
        return isinstance(self.source, str) and "!" in self.source

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def open(self) -> None:
        import cv2

        if self.is_open:
            return
        backend = cv2.CAP_GSTREAMER if self.is_gstreamer else cv2.CAP_ANY
        capture = cv2.VideoCapture(self.source, backend)
        if not capture.isOpened():
            capture.release()
            hint = (
                "check the pipeline with gst-launch-1.0 and that OpenCV was built with GStreamer"
                if self.is_gstreamer
                else "check the device index (ls /dev/video*), URL or path, and that no other "
                "process holds the camera"
            )
            raise CameraError(f"cannot open camera source {self.source!r}: {hint}")
        if not self.is_gstreamer:
            if self.width is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
            if self.height is not None:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
            if self.fps is not None:
                capture.set(cv2.CAP_PROP_FPS, float(self.fps))
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
        self._capture = capture
        self._latest = None
        self._error = None
        self._running.set()
        self._thread = threading.Thread(
            target=self._grab_loop, name=f"camera-{self.source}", daemon=True
        )
        self._thread.start()

    def _grab_loop(self) -> None:
        capture = self._capture
        index = 0
        last_success = time.monotonic()
        try:
            while self._running.is_set():
                ok, bgr = capture.read()
                now = time.monotonic()
                if not ok or bgr is None:
                    if now - last_success > self.failure_timeout_s:
                        self._error = (
                            f"camera source {self.source!r} delivered no frame for "
                            f"{now - last_success:.1f} s (unplugged, stream ended or pipeline stalled)"
                        )
                        break
                    time.sleep(0.005)  # back off before the driver is asked again
                    continue
                last_success = now
                frame = Frame(_to_rgb(bgr, self.output_shape, self.frame_transform), now, index)
                index += 1
                with self._new_frame:
                    self._latest = frame
                    self._new_frame.notify_all()
        except Exception as exc:  # reported to the reader, which raises it in the loop's thread
            self._error = f"camera source {self.source!r} failed: {exc!r}"
        finally:
            with self._new_frame:
                self._new_frame.notify_all()

    def read(self) -> Frame:
        if not self.is_open:
            raise CameraError(f"camera {self.source!r} is not open; call open() first")
        with self._new_frame:
            if self._latest is None and self._error is None:
                self._new_frame.wait_for(
                    lambda: self._latest is not None or self._error is not None,
                    timeout=self.first_frame_timeout_s,
                )
            if self._error is not None:
                raise CameraError(self._error)
            if self._latest is None:
                raise CameraError(
                    f"camera source {self.source!r} delivered no frame within "
                    f"{self.first_frame_timeout_s} s of opening"
                )
            return self._latest

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.failure_timeout_s))
            self._thread = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileCamera(Camera):
    """A video file played through OpenCV as if it were a camera (bench tests, replays, demos).

    realtime=True: frame ``k`` becomes available ``k / fps`` seconds after ``open()``; ``read()``
        returns the newest available frame stamped with that nominal capture time (frames that
        were due while nobody read are skipped, like a live camera).
    realtime=False: every ``read()`` decodes the next frame, stamped with the time it was read.
    loop: start again from the first frame at the end. Without it the last frame is returned
        forever with its original timestamp, i.e. the source stalls (``finished`` turns True).
    output_shape: (height, width) the frames are resized to; ``None`` keeps the file's size.
    fps: overrides the file's frame rate (needed when the container does not store one).
    frame_transform: applied to every decoded frame (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path,
        realtime: bool = True,
        loop: bool = False,
        output_shape: tuple[int, int] | None = None,
        fps: float | None = None,
        frame_transform: FrameTransform | None = None,
    ) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None (use the file's rate), got {fps!r}")
        self.path = Path(path)
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.output_shape = _check_output_shape(output_shape)
        self.frame_transform = frame_transform
        self._fps_override = fps
        self.fps: float = 0.0
        self.frame_count = 0
        self._capture: Any = None  # cv2.VideoCapture once open
        self._start = 0.0
        self._decoded = -1  # file-relative index of the frame in self._latest
        self._delivered = -1
        self._latest: Frame | None = None
        self._finished = False
        self._pass_start = 0  # source index at which the current pass through the file began
        self._bgr: Any = None  # the last decoded BGR frame
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    @property
    def finished(self) -> bool:
        """True once a non-looping file has shown its last frame."""
        return self._finished

    def open(self) -> None:
        import cv2

        if self.is_open:
            return
        if not self.path.is_file():
            raise CameraError(f"video file {self.path} does not exist")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"OpenCV cannot open video file {self.path}; check the codec (MJPG/AVI and "
                "mp4v/MP4 work with the pip OpenCV wheels)"
            )
        fps = self._fps_override or capture.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            capture.release()
            raise CameraError(f"video file {self.path} stores no frame rate; pass fps=")
        self.fps = float(fps)
        self.frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._capture = capture
        self._decoded = -1
        self._delivered = -1
        self._latest = None
        self._finished = False
        self._pass_start = 0
        self._start = time.monotonic()

    def _rewind(self) -> None:
        import cv2

        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._decoded = -1

    def _decode_through(self, target: int) -> bool:
        """Advance to file frame ``target`` (grab without decoding the skipped ones)."""
        while self._decoded < target - 1:
            if not self._capture.grab():
                return False
            self._decoded += 1
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            return False
        self._decoded += 1
        self._bgr = bgr
        return True

    def read(self) -> Frame:
        if not self.is_open:
            raise CameraError(f"video file camera {self.path} is not open; call open() first")
        with self._lock:
            now = time.monotonic()
            if self.realtime:
                due = int((now - self._start) * self.fps)  # source index of the newest due frame
            else:
                due = self._delivered + 1
            if self._latest is not None and (self._finished or due <= self._delivered):
                return self._latest
            file_target = due - self._pass_start
            if self.loop and self.frame_count > 0 and file_target >= self.frame_count:
                self._pass_start += (file_target // self.frame_count) * self.frame_count
                file_target = due - self._pass_start
                self._rewind()
            if not self._decode_through(file_target):
                if self.loop and self._decoded >= 0:
                    self._pass_start = due
                    self._rewind()
                    if not self._decode_through(0):
                        raise CameraError(f"video file {self.path} cannot be decoded after rewinding")
                elif self._latest is None:
                    raise CameraError(f"video file {self.path} holds no decodable frame")
                else:
                    self._finished = True
                    return self._latest
            stamp = self._start + due / self.fps if self.realtime else now
            self._delivered = due
            self._latest = Frame(_to_rgb(self._bgr, self.output_shape, self.frame_transform), stamp, due)
            return self._latest

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


CameraKind = Literal["opencv", "video_file"]


@dataclass(frozen=True)
class CameraConfig:
    """Camera settings as written in a launch file.

    kind: ``opencv`` (device index / URL / GStreamer pipeline) or ``video_file``.
    source: device index, URL, pipeline or video file path.
    width, height, fps: requested capture settings (``opencv``); fps overrides a file's rate.
    realtime, loop: playback options of ``video_file``.
    calibration: undistort and give frames the simulator camera's field of view and pitch
        (:class:`~lnn_control.camera.model.CalibrationRef`: ``{file: calib.yaml, mount_pitch_deg: 12}``,
        written by ``lnn-control camera calibrate``); without it frames are only resized.
    """

    kind: CameraKind
    source: int | str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    realtime: bool = True
    loop: bool = False
    calibration: CalibrationRef | None = None

    def __post_init__(self) -> None:
        if self.kind == "video_file" and not isinstance(self.source, str):
            raise ValueError(f"camera.source must be a video file path for kind video_file, got {self.source!r}")


def make_camera(config: CameraConfig, output_shape: tuple[int, int] | None) -> Camera:
    """Build (not open) the camera ``config`` describes, resizing frames to ``output_shape`` (with a
    ``calibration``: rectified to the simulator's view at that size; the maps are computed here)."""
    transform: FrameTransform | None = None
    if config.calibration is not None:
        from lnn_control.camera.rectify import rectifier_from_ref

        if output_shape is None:
            raise ValueError("camera.calibration needs the policy's image size (output_shape)")
        rectifier = rectifier_from_ref(config.calibration, output_shape)
        if config.width is not None and config.height is not None:
            rectifier.maps_for(config.width, config.height)  # a size it cannot fit fails before connecting
        transform = rectifier
    if config.kind == "opencv":
        return OpenCVCamera(
            config.source, config.width, config.height, config.fps, output_shape=output_shape,
            frame_transform=transform,
        )
    if config.kind == "video_file":
        return VideoFileCamera(
            str(config.source),
            realtime=config.realtime,
            loop=config.loop,
            output_shape=output_shape,
            fps=config.fps,
            frame_transform=transform,
        )
    raise ValueError(f"camera.kind is {config.kind!r}; allowed: opencv, video_file")
