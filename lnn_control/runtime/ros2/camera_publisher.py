"""A ROS 2 camera of our own: a video file or a synthetic road published over rmw_zenoh at a fixed rate.

For tests, benchmarks and a dry run without a robot (``lnn-control ros2 camera-pub``). Frames go
out as ``sensor_msgs/msg/Image`` (``rgb8``) or ``CompressedImage`` (JPEG) on absolute deadlines
(frame ``k`` at ``t0 + k / rate_hz``; a late frame is sent at once and counted, never a burst),
stamped with the wall clock (``time.time_ns()``) just before each frame is encoded, the way a
camera driver stamps its capture. The publisher's QoS is rclcpp's SensorDataQoS (best effort,
keep last 5), what camera drivers use.

Synthetic frames (:func:`synthetic_frame`) are a grey road with two white lane lines that sway
with the frame index, and the index itself written into the first four pixels of row 0 (red
channel, little-endian; :func:`synthetic_index` reads it back), so a subscriber can tell exactly
which frame it got when frames travel uncompressed at their own size.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.runtime.ros2.node import Ros2Node, Ros2Publisher
from lnn_control.runtime.ros2.zenoh_wire import SENSOR_DATA_QOS

FrameSource = Callable[[int], np.ndarray]
"""Frame index -> uint8 RGB [H, W, 3]."""


def synthetic_frame(index: int, shape: tuple[int, int] = (64, 128)) -> np.ndarray:
    """The synthetic camera's frame ``index`` (uint8 RGB, ``shape`` = (height, width) >= (2, 8))."""
    height, width = shape
    if height < 2 or width < 8:
        raise ValueError(f"synthetic frames need at least 2 x 8 pixels, got {shape}")
    image = np.full((height, width, 3), (90, 90, 96), np.uint8)
    image[: height // 3] = (150, 190, 230)  # sky
    rows = np.arange(height // 3, height)
    depth = (rows - height // 3 + 1) / (height - height // 3)  # 0 at the horizon .. 1 at the bottom
    centre = width / 2 + 0.25 * width * math.sin(2 * math.pi * index / 120.0) * (1 - depth)
    for offset in (-0.35, 0.35):
        columns = np.clip((centre + offset * width * depth).astype(int), 0, width - 1)
        image[rows, columns] = 255
    image[0, :4, 0] = np.frombuffer(int(index % 2**32).to_bytes(4, "little"), np.uint8)
    return image


def synthetic_index(frame: np.ndarray) -> int:
    """The frame index :func:`synthetic_frame` wrote into ``frame`` (exact only for uncompressed frames
    at their original size)."""
    return int.from_bytes(np.ascontiguousarray(frame[0, :4, 0]).tobytes(), "little")


class VideoFrames:
    """Frames of a video file through OpenCV, as RGB, looping at the end; ``shape`` resizes (H, W)."""

    def __init__(self, path: str | Path, shape: tuple[int, int] | None = None) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} not found")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise ValueError(f"OpenCV cannot open {self.path} as a video (try an .mp4 / .avi file)")
        self.shape = shape
        self.native_fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def __call__(self, index: int) -> np.ndarray:
        import cv2

        ok, bgr = self._capture.read()
        if not ok:  # the end: start over
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
            if not ok:
                raise ValueError(f"{self.path} has no readable frames")
        if self.shape is not None and bgr.shape[:2] != tuple(self.shape):
            height, width = self.shape
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self._capture.release()


def odometry_message(stamp_ns: int, linear: tuple[float, float, float], angular: tuple[float, float, float] = (0.0, 0.0, 0.0),
                     frame_id: str = "odom", child_frame_id: str = "base_link") -> Any:
    """``nav_msgs/msg/Odometry`` with a body twist (REP-103, ``child_frame_id``; m/s, rad/s), the pose at
    the origin and zero covariances: the sensor a dry run needs for extras such as ``speed``."""
    from lnn_control.runtime.ros2.messages import header, typestore

    types = typestore().types
    vector = types["geometry_msgs/msg/Vector3"]
    pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](0.0, 0.0, 0.0),
                                           orientation=types["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0))
    twist = types["geometry_msgs/msg/Twist"](linear=vector(*linear), angular=vector(*angular))
    zeros = np.zeros(36, np.float64)
    return types["nav_msgs/msg/Odometry"](
        header=header(stamp_ns, frame_id), child_frame_id=child_frame_id,
        pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=zeros),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=zeros.copy()),
    )


@dataclass(frozen=True)
class CameraPublisherConfig:
    """topic: fully qualified topic; type: ``Image`` (rgb8) or ``CompressedImage`` (JPEG at
    ``jpeg_quality``); rate_hz: frames per second; frame_id: the header's frame.
    odometry_topic: also publish ``nav_msgs/msg/Odometry`` there with each frame (None: no), with
    body twist ``odometry_linear`` (m/s, REP-103), for policies that read ``speed`` / ``vx..vz``."""

    topic: str = "/camera/image_raw"
    type: Literal["Image", "CompressedImage"] = "Image"
    rate_hz: float = 30.0
    frame_id: str = "camera"
    jpeg_quality: int = 90
    odometry_topic: str | None = None
    odometry_linear: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.type not in ("Image", "CompressedImage"):
            raise ValueError(f"type must be 'Image' or 'CompressedImage', got {self.type!r}")
        if not 0 < self.rate_hz <= 1000:
            raise ValueError(f"rate_hz must be in (0, 1000] frames per second, got {self.rate_hz!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality!r}")

    @property
    def msgtype(self) -> str:
        return f"sensor_msgs/msg/{self.type}"


@dataclass
class PublishStats:
    """frames: published; late: frames sent after their slot had passed by more than a period;
    stamps_ns: each frame's header stamp (wall ns), in order."""

    frames: int = 0
    late: int = 0
    stamps_ns: list[int] = field(default_factory=list)


class CameraPublisher:
    """Publishes ``source`` frames on ``node`` (open) as configured; :meth:`run` blocks, :meth:`stop`
    (any thread) ends it after the current frame."""

    def __init__(self, node: Ros2Node, config: CameraPublisherConfig, source: FrameSource) -> None:
        self.node = node
        self.config = config
        self.source = source
        self.stats = PublishStats()
        self._stop = threading.Event()
        self._publisher: Ros2Publisher = node.publisher(config.topic, config.msgtype, SENSOR_DATA_QOS)
        self._odometry: Ros2Publisher | None = None
        if config.odometry_topic is not None:
            self._odometry = node.publisher(config.odometry_topic, "nav_msgs/msg/Odometry", SENSOR_DATA_QOS)

    @property
    def key_expr(self) -> str:
        """The Zenoh key expression the frames go to."""
        return self._publisher.key_expr

    def stop(self) -> None:
        self._stop.set()

    def _message(self, frame: np.ndarray, stamp_ns: int) -> Any:
        from lnn_control.runtime.ros2.messages import compressed_image_message, image_message

        if self.config.type == "Image":
            return image_message(frame, stamp_ns, self.config.frame_id)
        return compressed_image_message(frame, stamp_ns, "jpeg", self.config.jpeg_quality, self.config.frame_id)

    def run(self, duration_s: float | None = None, max_frames: int | None = None) -> PublishStats:
        """Publish until ``duration_s`` seconds / ``max_frames`` frames / :meth:`stop`."""
        period = 1.0 / self.config.rate_hz
        t0 = time.monotonic()
        index = 0
        while not self._stop.is_set():
            if max_frames is not None and index >= max_frames:
                break
            slot = t0 + index * period
            if duration_s is not None and slot - t0 >= duration_s:
                break
            now = time.monotonic()
            if slot > now:
                if self._stop.wait(slot - now):
                    break
            elif now - slot > period:
                self.stats.late += 1
            frame = self.source(index)
            stamp_ns = time.time_ns()
            self._publisher.publish(self._message(frame, stamp_ns))
            if self._odometry is not None:
                self._odometry.publish(odometry_message(stamp_ns, self.config.odometry_linear))
            self.stats.frames += 1
            self.stats.stamps_ns.append(stamp_ns)
            index += 1
        return self.stats
