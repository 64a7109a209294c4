"""MP4 video files of a LeRobot v3 dataset, through PyAV: encode frames back to back, decode by time.

Encoding: H.264 (libx264) by default, or AV1 (SVT-AV1, LeRobot's own default); yuv420p, a key frame
every ``gop`` frames (LeRobot uses 2, so a loader seeks to any frame cheaply). Frame ``k`` of a
file gets the presentation time ``k / fps`` exactly, so episode ``e`` of a file spans
``[from_timestamp, to_timestamp)`` = ``[k0 / fps, (k0 + n) / fps)`` and its frame ``i`` sits at
``from_timestamp + i / fps``: where LeRobot's loader looks for it.

Decoding: :class:`VideoFrameReader` returns, for each requested time, the decoded frame nearest to
it, and raises when that frame is further than the tolerance away (a dropped or shifted frame).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.data.lerobot.layout import LeRobotFormatError

Codec = Literal["h264", "libsvtav1"]
CODECS: tuple[str, ...] = ("h264", "libsvtav1")
PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class VideoSettings:
    """codec: h264 (libx264) or libsvtav1 (AV1). crf: constant rate factor, 0 (best) .. 51 (h264) /
    63 (AV1); LeRobot records with 30. gop: frames between key frames (LeRobot: 2)."""

    codec: Codec = "h264"
    crf: int = 18
    gop: int = 2

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"video codec {self.codec!r}: allowed {list(CODECS)}")
        limit = 51 if self.codec == "h264" else 63
        if not 0 <= self.crf <= limit:
            raise ValueError(f"crf {self.crf} for {self.codec}: allowed 0 (best) .. {limit}")
        if self.gop < 1:
            raise ValueError(f"gop {self.gop}: a key frame every gop >= 1 frames")

    def options(self) -> dict[str, str]:
        options = {"g": str(self.gop), "crf": str(self.crf)}
        if self.codec == "libsvtav1":
            options["preset"] = "10"
        return options


def check_frame_size(height: int, width: int) -> None:
    """yuv420p stores colour at half resolution: both sides must be even."""
    if height % 2 or width % 2:
        raise ValueError(
            f"frames of {height}x{width} pixels cannot be stored as yuv420p video (height and width must be even); "
            "make the dataset with an even --image-size"
        )


class VideoFileEncoder:
    """Writes uint8 RGB frames [T, H, W, 3] to one MP4 file, frame k at time k / fps."""

    def __init__(self, path: Path, fps: int, height: int, width: int, settings: VideoSettings) -> None:
        import av

        check_frame_size(height, width)
        if settings.codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told: errors only
        self.path = path
        self.fps = fps
        self.frames = 0
        self.bytes = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container: Any = av.open(str(path), "w")
        try:
            stream = self._container.add_stream(settings.codec, rate=fps, options=settings.options())
            stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
            stream.codec_context.time_base = Fraction(1, fps)
        except Exception:
            self._container.close()
            raise
        self._stream = stream
        self._shape = (height, width, 3)

    def write(self, frames: np.ndarray) -> None:
        import av

        if frames.shape[1:] != self._shape or frames.dtype != np.uint8:
            raise ValueError(f"frames {frames.dtype} {frames.shape[1:]} do not fit the video's uint8 {self._shape}")
        for image in frames:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            # area-averaged chroma: the least colour bleed of swscale's filters on sharp sim frames
            frame = rgb.reformat(format=PIX_FMT, interpolation="AREA")
            frame.pts = self.frames
            frame.time_base = Fraction(1, self.fps)
            self._mux(self._stream.encode(frame))
            self.frames += 1

    def size_mb(self) -> float:
        """Compressed video muxed so far, MiB (the encoder still holds its look-ahead frames)."""
        return self.bytes / 2**20

    def close(self) -> None:
        self._mux(self._stream.encode())
        self._container.close()

    def _mux(self, packets: Any) -> None:
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)


def video_info(path: Path) -> dict[str, Any]:
    """The ``info`` LeRobot records for a video feature (``get_video_info``), read from the file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info: dict[str, Any] = {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate) if stream.base_rate else None,
            "video.channels": 3,
            "has_audio": bool(container.streams.audio),
        }
    return info


class VideoFrameReader:
    """Frames of MP4 files by presentation time, decoding forward and seeking only when needed.

    ``tolerance_s``: how far the nearest decoded frame may be from a requested time."""

    def __init__(self, tolerance_s: float) -> None:
        if tolerance_s <= 0:
            raise ValueError(f"tolerance_s {tolerance_s} must be > 0 seconds")
        self.tolerance_s = tolerance_s
        self._path: Path | None = None
        self._container: Any = None
        self._stream: Any = None
        self._decoder: Any = None
        self._prev: _Decoded | None = None
        self._next: _Decoded | None = None

    def read(self, path: Path, times: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [T, H, W, 3] nearest to ``times`` (seconds in the file, non-decreasing)."""
        out: list[np.ndarray] = []
        for t in np.asarray(times, np.float64):
            out.append(self._frame_at(path, float(t)))
        return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._decoder = self._path = None
        self._prev = self._next = None

    def __enter__(self) -> VideoFrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _frame_at(self, path: Path, t: float) -> np.ndarray:
        if self._path != path:
            self._open(path, t)
        elif self._prev is not None and t < self._prev.time - self.tolerance_s:
            self._seek(t)  # backwards
        elif self._next is not None and t > self._next.time + 1.0:
            self._seek(t)  # far ahead: skip decoding the frames in between
        while self._next is not None and self._next.time < t:
            self._advance()
        candidates = [c for c in (self._prev, self._next) if c is not None]
        if not candidates:
            raise LeRobotFormatError(f"{path}: no video frames decoded (empty or unreadable file)")
        best = min(candidates, key=lambda c: abs(c.time - t))
        if abs(best.time - t) > self.tolerance_s:
            raise LeRobotFormatError(
                f"{path}: no frame within {self.tolerance_s:.4f} s of t={t:.4f} s (nearest at {best.time:.4f} s); "
                "the episode's from_timestamp or the frame timestamps do not match the video"
            )
        return best.rgb()

    def _open(self, path: Path, t: float) -> None:
        import av

        self.close()
        if not path.is_file():
            raise LeRobotFormatError(f"{path}: video file missing")
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as exc:
            self.close()
            raise LeRobotFormatError(f"{path}: unreadable video: {exc}") from exc
        self._path = path
        self._decoder = self._container.decode(self._stream)
        self._prev, self._next = None, None
        self._advance()
        if t > 1.0:
            self._seek(t)

    def _seek(self, t: float) -> None:
        assert self._container is not None and self._stream is not None
        target = max(0.0, t - self.tolerance_s)
        self._container.seek(int(target / self._stream.time_base), stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)
        self._prev, self._next = None, None
        self._advance()
        if self._next is not None and self._next.time > target + self.tolerance_s:
            # landed past the wanted frame (a file without a key-frame index): decode from the start
            self._container.seek(0, stream=self._stream)
            self._decoder = self._container.decode(self._stream)
            self._prev, self._next = None, None
            self._advance()

    def _advance(self) -> None:
        self._prev = self._next
        frame = next(self._decoder, None)
        if frame is None:
            self._next = None
            return
        time = frame.time if frame.pts is None else frame.pts * self._stream.time_base
        self._next = _Decoded(float(time), frame)


class _Decoded:
    """A decoded frame and its time; converted to RGB once, when asked."""

    def __init__(self, time: float, frame: Any) -> None:
        self.time = time
        self._frame = frame
        self._rgb: np.ndarray | None = None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            # an explicit reformat is ~7x faster than to_ndarray(format=...) and gives the same pixels
            self._rgb = self._frame.reformat(format="rgb24", interpolation="BILINEAR").to_ndarray()
        return self._rgb
