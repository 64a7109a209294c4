"""The base Robot's context-manager contract: stop, then disconnect, whatever happened."""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.runtime.core.robot import LinkLostError, Observation, Robot
from lnn_control.spec import ActionSpec, ObservationSpec


class LinkDropsOnStop(Robot):
    """A robot whose link is gone by the time the ``with`` block ends: stop() cannot be sent."""

    def __init__(self) -> None:
        self.observation_spec = ObservationSpec((4, 4, 3))
        self.action_spec = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",))
        self.calls: list[str] = []
        self._connected = False

    def connect(self) -> None:
        self.calls.append("connect")
        self._connected = True

    def read(self) -> Observation:
        return Observation(np.zeros((4, 4, 3), np.uint8), 0.0)

    def write(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, np.float32)

    def stop(self) -> None:
        self.calls.append("stop")
        raise LinkLostError("serial port vanished")

    def disconnect(self) -> None:
        self.calls.append("disconnect")
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected


def test_failed_stop_does_not_replace_the_blocks_exception() -> None:
    robot = LinkDropsOnStop()
    with pytest.raises(ZeroDivisionError) as caught:
        with robot:
            1 / 0  # noqa: B018 - the block's own failure
    assert robot.calls == ["connect", "stop", "disconnect"]
    assert any("robot.stop() on exit also failed" in note for note in getattr(caught.value, "__notes__", []))


def test_failed_stop_after_a_clean_block_is_raised() -> None:
    robot = LinkDropsOnStop()
    with pytest.raises(LinkLostError, match="serial port vanished"):
        with robot:
            pass
    assert robot.calls == ["connect", "stop", "disconnect"]
