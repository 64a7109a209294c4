"""MuJoCo's passive viewer window, tracking one body, for ``render_mode="human"``."""

from __future__ import annotations

from typing import Any

from lnn_control.envs.common import require_display


class PassiveViewer:
    """A viewer requested once and (re)launched whenever the backend compiles a new model.

    ``distance`` (m) and ``elevation`` (deg) place the tracking camera behind the body.
    """

    def __init__(self, distance: float, elevation: float) -> None:
        self.distance = distance
        self.elevation = elevation
        self.requested = False
        self._window: Any = None

    def request(self) -> None:
        """Ask for the window (``RuntimeError`` without a display); it opens at the next :meth:`launch`."""
        if not self.requested:
            require_display("MuJoCo")
            self.requested = True

    def launch(self, model: Any, data: Any, body_id: int) -> None:
        """Open (or reopen, for a new model) the window on ``model``/``data`` if requested."""
        if not self.requested:
            return
        import mujoco
        import mujoco.viewer

        if self._window is not None:
            self._window.close()
        self._window = mujoco.viewer.launch_passive(model, data, show_left_ui=False, show_right_ui=False)
        self._window.cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self._window.cam.trackbodyid = body_id
        self._window.cam.distance, self._window.cam.elevation = self.distance, self.elevation

    def sync(self) -> None:
        if self._window is not None:
            self._window.sync()

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
        self._window = None
        self.requested = False
