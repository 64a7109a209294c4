"""Write RGB frames to a video file through OpenCV (MP4 with the mp4v codec, or AVI/MJPG)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import cv2

_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


class VideoWriter:
    """Context manager: ``write(frame)`` RGB uint8 [H,W,3] frames of one size at ``fps``.

    Frames go to a temporary file that is renamed to ``path`` on a clean close, so an
    interrupted demo never leaves a truncated video under the requested name.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise ValueError(f"video file {self.path} must end in one of {sorted(_CODECS)}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"video frames must be uint8 RGB [H,W,3], got {frame.dtype} {frame.shape}")
        size = (frame.shape[1], frame.shape[0])
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter.fourcc(*_CODECS[self.path.suffix.lower()])
            self._writer = writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, size)
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {self.path.suffix} video here; try --out FILE.avi")
            self._size = size
        elif size != self._size:
            raise ValueError(f"frame size {size} differs from the video's {self._size}")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if keep and self.frames:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(keep=exc_type is None)
