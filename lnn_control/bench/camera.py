"""``lnn-control bench camera``: per-frame cost of the real camera's view correction.

Times, on one synthetic frame of ``input_size`` (the content does not change the cost), for a
wide USB camera model (focal length 0.52 × width, barrel distortion k1 = −0.30, k2 = 0.10):

- ``rectify``: the :class:`~lnn_control.camera.rectify.FrameRectifier` call (one ``cv2.remap``
  into the oversampled view + one area ``cv2.resize`` to the policy's size);
- ``camera_path``: what a camera's grabber does per frame with a calibration (rectify + BGR→RGB);
- ``resize_only``: the same without a calibration (area resize + BGR→RGB), the old path;
- ``build_maps_ms``: the one-off cost of computing the tables.

Medians and 99th percentiles over ``frames`` calls, after ``warmup`` calls.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CameraBenchSettings:
    """input_size: (width, height) px; output_shape: (height, width) px; vertical_fov_deg and
    pitch_correction_deg of the target view; frames: timed calls per figure."""

    input_size: tuple[int, int] = (640, 480)
    output_shape: tuple[int, int] = (64, 128)
    vertical_fov_deg: float = 50.0
    pitch_correction_deg: float = 0.0
    frames: int = 500
    warmup: int = 20

    def __post_init__(self) -> None:
        if self.frames < 1 or self.warmup < 0:
            raise ValueError(f"frames must be >= 1 and warmup >= 0, got {self.frames}, {self.warmup}")
        if min(self.input_size) < 8 or min(self.output_shape) < 1:
            raise ValueError(f"input_size {self.input_size} and output_shape {self.output_shape} are too small")


def _time(call: Callable[[], object], frames: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(frames):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    return {
        "median_ms": 1e3 * statistics.median(samples),
        "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "frames": len(samples),
    }


def run_camera_bench(settings: CameraBenchSettings) -> dict[str, Any]:
    """The figures above as a JSON-ready dict."""
    import cv2

    from lnn_control.camera.model import CameraCalibration, Intrinsics, SimView
    from lnn_control.camera.rectify import FrameRectifier
    from lnn_control.runtime.hardware.cameras import _to_rgb

    width, height = settings.input_size
    focal = 0.52 * width
    intrinsics = Intrinsics(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2, (-0.30, 0.10, 0.0, 0.0, 0.0))
    view = SimView("custom", settings.vertical_fov_deg, 0.0, *settings.output_shape)
    calibration = CameraCalibration(intrinsics, view, mount_pitch_deg=-settings.pitch_correction_deg)
    started = time.perf_counter()
    rectifier = FrameRectifier(calibration, settings.output_shape)
    build_ms = 1e3 * (time.perf_counter() - started)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "input_size": [width, height],
        "output_shape": list(settings.output_shape),
        "vertical_fov_deg": settings.vertical_fov_deg,
        "pitch_correction_deg": settings.pitch_correction_deg,
        "view_shape": list(rectifier.maps.view_shape),
        "coverage": rectifier.maps.coverage,
        "build_maps_ms": build_ms,
        "rectify": _time(lambda: rectifier(frame), settings.frames, settings.warmup),
        "camera_path": _time(lambda: _to_rgb(frame, settings.output_shape, rectifier), settings.frames, settings.warmup),
        "resize_only": _time(lambda: _to_rgb(frame, settings.output_shape), settings.frames, settings.warmup),
        "opencv_threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": load[0],
    }


def format_camera_report(report: dict[str, Any]) -> str:
    width, height = report["input_size"]
    out_h, out_w = report["output_shape"]
    lines = [
        f"camera view correction {width}x{height} -> {out_w}x{out_h} ({report['vertical_fov_deg']:g} deg vertical, "
        f"view {report['view_shape'][1]}x{report['view_shape'][0]}, {100 * report['coverage']:.0f} % covered); "
        f"maps built once in {report['build_maps_ms']:.0f} ms",
        "per frame                          median ms   p99 ms",
    ]
    for key, label in (("rectify", "rectify (remap + area resize)"), ("camera_path", "camera path with calibration"),
                       ("resize_only", "camera path without (resize)")):
        figures = report[key]
        lines.append(f"{label:<34} {figures['median_ms']:9.3f} {figures['p99_ms']:8.3f}")
    lines.append(f"OpenCV threads {report['opencv_threads']}, {report['cpu_count']} CPUs, "
                 f"load average {report['load_average_1min']:.1f}")
    return "\n".join(lines)
