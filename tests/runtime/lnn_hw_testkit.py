"""Real parts for the hardware-adapter tests: a small video file camera, the car emulator process,
and a bounded condition wait (no fixed sleeps)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lnn_control.runtime.hardware.cameras import VideoFileCamera

H, W = 24, 32


def wait_until(predicate: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> object:
    """Poll ``predicate`` every few ms until it returns something truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        pause.wait(0.005)


def video_camera(tmp_path: Path, n_frames: int = 20) -> VideoFileCamera:
    """A looping, non-realtime video file camera: every read decodes a fresh frame."""
    path = tmp_path / "cam.avi"
    if not path.exists():
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (W, H))
        for k in range(n_frames):
            frame = np.full((H, W, 3), (k * 12) % 255, np.uint8)
            writer.write(frame)
        writer.release()
    return VideoFileCamera(path, realtime=False, loop=True)


@dataclass
class EmulatorProcess:
    process: subprocess.Popen
    port: str
    record: Path

    def events(self, kind: str | None = None) -> list[dict]:
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line being written right now
                continue
            if kind is None or event["event"] == kind:
                out.append(event)
        return out

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL) and release its stdout pipe."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process.stdout.close()


def start_car_emulator(tmp_path: Path, *args: str, name: str = "emu") -> EmulatorProcess:
    """``python -m lnn_control.runtime.emulators.car --pty`` in a subprocess; waits for READY."""
    record = tmp_path / f"{name}.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "lnn_control.runtime.emulators.car", "--pty", "--record", str(record), *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    emulator = EmulatorProcess(process, "", record)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = process.stdout.readline().strip() if selector.select(timeout=20) else "(nothing within 20 s)"
    if not line.startswith("READY /dev/"):
        emulator.stop()
        raise AssertionError(f"car emulator did not print 'READY /dev/...': {line}")
    emulator.port = line.split(" ", 1)[1]
    return emulator
