"""One PyBullet physics client per backend: DIRECT (headless, banner silenced) or GUI on request.

Each backend owns its :class:`PyBulletClient`, so several envs live in one process without
sharing PyBullet's global state.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pybullet as p
from pybullet_utils.bullet_client import BulletClient

from lnn_control.envs.common import require_display


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence the C-level banner PyBullet prints on every connection (it would break progress bars)."""
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured / replaced stdout: nothing to silence
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class PyBulletClient:
    """A lazily opened PyBullet connection: DIRECT until :meth:`request_gui`, GUI after it."""

    def __init__(self) -> None:
        self.client: BulletClient | None = None
        self.gui = False

    def connect(self) -> BulletClient:
        """The open client, connecting first if needed."""
        if self.client is None:
            if self.gui:
                self.client = BulletClient(connection_mode=p.GUI)
            else:
                with quiet_stdout():
                    self.client = BulletClient(connection_mode=p.DIRECT)
        return self.client

    def request_gui(self) -> bool:
        """Switch to a GUI connection from the next :meth:`connect`; True when an open DIRECT client
        was closed (the caller rebuilds its world). Raises ``RuntimeError`` without a display."""
        if self.gui:
            return False
        if sys.platform.startswith("linux"):
            require_display("PyBullet")
        self.gui = True
        return self.disconnect()

    def disconnect(self) -> bool:
        """Close the connection if open; True when one was open."""
        if self.client is None:
            return False
        try:
            self.client.disconnect()
        finally:
            self.client = None
        return True
