"""Drive from a gamepad through Linux evdev: sticks -> actions, held buttons -> dead-man / takeover.

The device is a ``/dev/input/eventN`` character device opened with the ``evdev`` package (the
``[teleop]`` extra: device search, exclusive grab, axis ranges, re-sync after an overflow), or a FIFO
that carries the same ``struct input_event`` records (e.g. a pad on another machine:
``ssh pad-host cat /dev/input/event5 > pad.fifo``; set each axis's ``range`` then). A reader thread
drains the stream as it arrives (a slow loop must not overflow the kernel's small per-client
buffer) into a :class:`~lnn_control.runtime.inputs.evdev_events.PadState`; ``poll()`` reads the
newest complete frame. A device that disappears (unplugged: ``ENODEV``; a FIFO whose writer left)
makes ``poll()`` raise :class:`~lnn_control.runtime.core.arbiter.InputLostError`, which latches the
loop's e-stop.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.runtime.core.arbiter import HumanCommand, InputDeviceError, InputLostError
from lnn_control.runtime.inputs.config import GamepadConfig
from lnn_control.runtime.inputs.evdev_events import (
    ABS_CODES,
    BUTTON_CODES,
    EV_ABS,
    EV_KEY,
    EventParser,
    PadState,
)
from lnn_control.runtime.inputs.mapping import AxisMap, resolve_axes
from lnn_control.spec import ActionSpec

log = logging.getLogger(__name__)
_ABS_NAMES = {code: name for name, code in ABS_CODES.items()}


def find_gamepad(evdev: Any, device: str | None, deadman_code: int) -> Any:
    """Open the evdev device ``device`` names (a path, or a name substring), or the first one with
    absolute axes and the dead-man button; InputDeviceError listing what was found otherwise."""
    if device is not None and Path(device).exists():
        try:
            return evdev.InputDevice(device)
        except OSError as exc:
            raise InputDeviceError(
                f"cannot open gamepad {device}: {exc.strerror}; reading input devices needs the 'input' group "
                "(sudo usermod -aG input $USER, then log in again)"
            ) from exc
    found = []
    for path in evdev.list_devices():
        try:
            candidate = evdev.InputDevice(path)
        except OSError:
            continue
        capabilities = candidate.capabilities()
        found.append(f"{path} ({candidate.name})")
        if device is not None:
            matches = device.lower() in candidate.name.lower()
        else:
            matches = deadman_code in capabilities.get(EV_KEY, []) and bool(capabilities.get(EV_ABS))
        if matches:
            return candidate
        candidate.close()
    wanted = f"named like {device!r}" if device is not None else "with sticks and the dead-man button"
    raise InputDeviceError(
        f"no gamepad {wanted} among the readable input devices ({', '.join(found) or 'none'}); plug one in, "
        "check permissions (the user must be in the 'input' group) or set teleop.gamepad.device"
    )


class GamepadInput:
    """A :class:`~lnn_control.runtime.core.arbiter.HumanInput` on an evdev gamepad; see the module docstring."""

    name = "gamepad"

    def __init__(self, config: GamepadConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or GamepadConfig()
        self.clock = clock
        self.device_name = ""
        self._device: Any = None  # evdev.InputDevice, when the source is one
        self._fd: int | None = None
        self._is_fifo = False
        self._ranges: dict[int, tuple[int, int]] = {}
        self._buttons: set[int] | None = None  # the device's buttons, when it can say
        self._parser = EventParser()
        self._state = PadState()
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None
        self._axes: list[AxisMap] = []
        self._size = 0
        self.bytes_read = 0
        self.last_update: float | None = None  # monotonic time the newest frame was applied

    # -- HumanInput ------------------------------------------------------------------------
    def open(self) -> None:
        source = self.config.device
        path = Path(source) if source is not None else None
        if path is not None and path.exists() and not stat.S_ISCHR(path.stat().st_mode):
            if not stat.S_ISFIFO(path.stat().st_mode):
                raise InputDeviceError(
                    f"teleop.gamepad.device {source} is neither an input device nor a FIFO of input_event records"
                )
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            self._is_fifo = True
            self.device_name = f"event stream {source}"
        else:
            self._open_evdev()
        self._running.set()
        self._thread = threading.Thread(target=self._read_events, name="gamepad-input", daemon=True)
        self._thread.start()

    def _open_evdev(self) -> None:
        import evdev  # the [teleop] extra

        device = find_gamepad(evdev, self.config.device, BUTTON_CODES[self.config.deadman])
        if self.config.grab:
            try:
                device.grab()
            except OSError as exc:
                device.close()
                raise InputDeviceError(
                    f"cannot grab gamepad {device.path} ({device.name}): {exc.strerror}; another program holds it "
                    "(close it, or set teleop.gamepad.grab: false)"
                ) from exc
        capabilities = device.capabilities()
        codes = list(capabilities.get(EV_ABS, []))
        infos = {code: device.absinfo(code) for code in codes}
        self._ranges = {code: (info.min, info.max) for code, info in infos.items()}
        self._buttons = set(capabilities.get(EV_KEY, []))

        def resync() -> tuple[dict[int, int], list[int]]:
            return {code: device.absinfo(code).value for code in codes}, list(device.active_keys())

        self._state = PadState({code: info.value for code, info in infos.items()}, resync, device.active_keys())
        self._device = device
        self._fd = device.fd
        self.device_name = f"{device.path} ({device.name})"
        log.info("gamepad: %s", self.device_name)

    def bind(self, action_spec: ActionSpec, neutral: np.ndarray) -> None:
        self._axes = resolve_axes(self.config, action_spec, self._ranges)
        self._size = action_spec.size
        if self._device is not None:
            missing = [a for a in self._axes if a.code not in self._ranges]
            if missing:
                names = [f"teleop.gamepad.axes.{a.action} ({a.binding.code})" for a in missing]
                have = sorted(_ABS_NAMES.get(c, str(c)) for c in self._ranges)
                raise ValueError(f"{self.device_name} has no axis for {names}; its axes: {have}")
        if self._buttons is not None:
            for key in ("deadman", "takeover", "estop", "quit"):
                button = getattr(self.config, key)
                if button is not None and BUTTON_CODES[button] not in self._buttons:
                    raise ValueError(
                        f"teleop.gamepad.{key} is {button}, which {self.device_name} does not have; pick one of its "
                        f"buttons (evtest shows them)"
                    )
        layout = ", ".join(f"{a.action}={a.binding.code}{' inverted' if a.binding.invert else ''}" for a in self._axes)
        log.info(
            "gamepad: %s; hold %s = dead-man, %s = takeover; %s e-stop, %s quit",
            layout, self.config.deadman, self.config.takeover, self.config.estop, self.config.quit,
        )

    def poll(self, now: float, current: np.ndarray | None) -> HumanCommand:
        with self._lock:
            lost = self._lost
            snapshot = self._state.snapshot()
        if lost is not None:
            raise InputLostError(f"{self.device_name}: {lost}")
        values = np.zeros(self._size, np.float32)
        for axis in self._axes:
            values[axis.index] = axis.value(snapshot.axes.get(axis.code))
        pressed = snapshot.pressed

        def held(button: str | None) -> bool:
            return button is not None and BUTTON_CODES[button] in pressed

        config = self.config
        return HumanCommand(
            values, held(config.deadman), held(config.takeover), now, held(config.estop), held(config.quit)
        )

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._device is not None:
            try:
                if self.config.grab:
                    self._device.ungrab()
            except OSError:  # unplugged: nothing to release
                pass
            self._device.close()
            self._device = None
        elif self._fd is not None:
            os.close(self._fd)
        self._fd = None

    # -- internals -------------------------------------------------------------------------
    def _read_events(self) -> None:
        fd = self._fd
        assert fd is not None
        seen_data = False
        while self._running.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(fd, 64 * 24)
            except BlockingIOError:
                continue
            except OSError as exc:
                why = "unplugged" if exc.errno == errno.ENODEV else f"read failed: {exc.strerror}"
                with self._lock:
                    self._lost = why
                return
            if not data:
                if self._is_fifo and not seen_data:  # no writer yet: wait for one
                    self._running.wait(0.05)
                    continue
                with self._lock:
                    self._lost = "the event stream ended"
                return
            seen_data = True
            events = self._parser.feed(data)
            with self._lock:
                self.bytes_read += len(data)
                self._state.apply(events)
                self.last_update = self.clock()
