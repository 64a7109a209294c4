"""The robot interface every real or simulated robot implements (LeRobot's shape).

Lifecycle: ``connect()`` -> loop of ``read()`` / ``write(action)`` -> ``stop()`` ->
``disconnect()``. A robot is a context manager: leaving the ``with`` block sends ``stop()``
and disconnects, also when the block raised (then a failing ``stop()`` is noted on the block's
exception instead of replacing it).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from lnn_control.spec import ActionSpec, ObservationSpec


@dataclass
class Observation:
    """One timestamped sample from a robot.

    image: uint8 RGB frame, shape (H, W, 3).
    timestamp: capture time of ``image`` in seconds on ``time.monotonic()``'s clock.
    extras: named scalar measurements in the units of the robot's ObservationSpec.
    frame_index: which frame this is, counted by robots that know (simulators), else None.
    """

    image: np.ndarray
    timestamp: float
    extras: dict[str, float] = field(default_factory=dict)
    frame_index: int | None = None


class RobotError(RuntimeError):
    """A robot failed (link lost, device missing, protocol error); the message says what to check."""


class LinkLostError(RobotError):
    """The link to the robot dropped (serial unplugged, no heartbeat, socket closed).

    Raised by ``read()`` / ``write()``; the control loop answers with ``stop()`` (best effort),
    then a bounded number of ``disconnect()`` + ``connect()`` attempts before giving up.
    """


class Robot(abc.ABC):
    """Abstract robot: camera in, bounded action out."""

    #: What ``read()`` returns and what ``write()`` accepts.
    observation_spec: ObservationSpec
    action_spec: ActionSpec
    #: Simulated robots: episodes that ended and were reset (each a pause in a run); else None.
    episodes_finished: int | None = None
    #: Simulated robots stepped in their own process: seconds per simulator step; else None.
    step_durations: Sequence[float] | None = None

    @abc.abstractmethod
    def connect(self) -> None:
        """Open links and cameras; raises :class:`RobotError` with what to check on failure."""

    @abc.abstractmethod
    def read(self) -> Observation:
        """Return the newest observation (never blocks longer than one camera frame period)."""

    @abc.abstractmethod
    def write(self, action: np.ndarray) -> np.ndarray:
        """Send ``action`` (shape (action_spec.size,)) and return the action actually applied."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Command the safe state (car: neutral steering + brake; drone: zero velocity / hold)."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close links and cameras; safe to call more than once."""

    def estop_requested(self) -> bool:
        """Whether the robot side asks for an emergency stop (e.g. a button on the car, an RC
        kill switch, an autopilot failsafe). The loop polls this every period and latches its
        e-stop when it turns True. Robots without such a trigger keep this default."""
        return False

    def link_ok(self) -> bool:
        """Whether the link to the robot is up. The loop treats a RobotError while this is False as
        link loss (stop, then bounded reconnects). Robots without a link keep this default."""
        return True

    @property
    def control_period_s(self) -> float | None:
        """Simulated seconds each ``read()`` advances (simulators: must equal the loop's period);
        None for a physical robot, whose time passes by itself."""
        return None

    def estop_detail(self) -> str:
        """Why :meth:`estop_requested` is True, in words for the run log and summary."""
        return "robot-side e-stop trigger"

    def preflight(self, rate_hz: float) -> None:
        """Checks that need no link, run before ``connect()`` (nothing reaches the robot when they
        fail): raise ``ValueError`` saying what to change if this robot cannot run a loop at
        ``rate_hz``. Robots with nothing to check keep this default."""
        return None

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Whether ``connect()`` succeeded and ``disconnect()`` has not been called."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.is_connected:
                self.stop()
        except (RobotError, OSError) as stop_error:
            if exc is None:
                raise  # nothing else went wrong: the failed stop command is the news
            # the block's own exception is the cause; a stop that failed because of it (e.g. the
            # link that just dropped) must not replace it
            if hasattr(exc, "add_note"):
                exc.add_note(f"robot.stop() on exit also failed: {stop_error!r}")
        finally:
            self.disconnect()
