"""What the camera + link robots (SerialCar, MavlinkDrone) share: fitting camera frames to the
policy's image size, the link-health rule and the bounded reconnect."""

from __future__ import annotations

import threading
import time

import numpy as np

from lnn_control.runtime.core.robot import LinkLostError, Robot, RobotError


def check_image_shape(image_shape: object) -> None:
    """ValueError unless ``image_shape`` is (height, width) in pixels, both ints > 0."""
    if (
        not isinstance(image_shape, tuple | list)
        or len(image_shape) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in image_shape)
    ):
        raise ValueError(f"image_shape must be (height, width) in pixels, both ints > 0, got {image_shape!r}")


def check_finite_positive(config: object, names: tuple[str, ...], unit: str) -> None:
    """ValueError naming the first of ``names`` whose value on ``config`` is not finite and > 0."""
    for name in names:
        value = getattr(config, name)
        if not 0 < value < float("inf"):
            raise ValueError(f"{name} must be finite and > 0 {unit}, got {value!r}")


def fit_image(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` resized to the (height, width) of ``shape`` if it differs (INTER_AREA), else itself."""
    height, width = int(shape[0]), int(shape[1])
    if image.shape[:2] == (height, width):
        return image
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def link_alive(connected: bool, io_error: str | None, last_rx: float, timeout_s: float) -> bool:
    """The one link-health rule: connected, no I/O error, and a message from the peer within
    ``timeout_s`` seconds of now (``last_rx`` on ``time.monotonic()``)."""
    return connected and io_error is None and time.monotonic() - last_rx < timeout_s


def require_link(connected: bool, io_error: str | None, last_rx: float, timeout_s: float, *,
                 robot: str, link: str, silence: str, hint: str) -> None:
    """Raise :class:`RobotError` when not connected, :class:`LinkLostError` when :func:`link_alive`
    fails; the messages name ``robot``, ``link`` (e.g. "serial link /dev/ttyACM0"), what went
    silent (``silence``, e.g. "no reply from the MCU") and what to check (``hint``)."""
    if not connected:
        raise RobotError(f"{robot} is not connected: call connect() (or use it in a with block)")
    if not link_alive(connected, io_error, last_rx, timeout_s):
        why = io_error or f"{silence} for more than {timeout_s} s"
        raise LinkLostError(f"{link} lost: {why}; {hint}")


def reconnect(robot: Robot, max_attempts: int, backoff_s: float, link: str) -> int:
    """``robot.disconnect()`` + ``robot.connect()`` up to ``max_attempts`` times, ``backoff_s``
    seconds apart; returns the attempt that worked, else raises RobotError listing every failure
    (``link`` names the link in that message, e.g. "the car on /dev/ttyACM0")."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if not backoff_s >= 0:
        raise ValueError(f"backoff_s must be >= 0 seconds, got {backoff_s!r}")
    pause = threading.Event()  # never set: a bounded pause
    failures = []
    for attempt in range(1, max_attempts + 1):
        robot.disconnect()
        try:
            robot.connect()
            return attempt
        except RobotError as exc:
            failures.append(f"attempt {attempt}: {exc}")
        if attempt < max_attempts:
            pause.wait(backoff_s)
    raise RobotError(f"could not reconnect to {link} after {max_attempts} attempt(s): " + " | ".join(failures))
