"""ROS 2 over Zenoh test kit: loopback endpoints on free ports, a recording node, a camera thread.

Every session is a peer with explicit ``tcp/127.0.0.1:<free port>`` endpoints and multicast
scouting off, so tests never see each other (or a real ROS graph on this computer).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lnn_control.bench.ros2 import free_port
from lnn_control.runtime.ros2 import messages
from lnn_control.runtime.ros2.attachment import Attachment
from lnn_control.runtime.ros2.camera_publisher import (
    CameraPublisher,
    CameraPublisherConfig,
    synthetic_frame,
)
from lnn_control.runtime.ros2.config import ZenohConfig
from lnn_control.runtime.ros2.node import Received, Ros2Node
from lnn_control.runtime.ros2.twist import Twist
from lnn_control.runtime.ros2.zenoh_wire import DEFAULT_QOS, SENSOR_DATA_QOS


def endpoint(port: int) -> str:
    return f"tcp/127.0.0.1:{port}"


def peer(listen: tuple[int, ...] = (), connect: tuple[int, ...] = ()) -> ZenohConfig:
    """A peer session on loopback: listens on / connects to these ports only."""
    return ZenohConfig(connect=tuple(endpoint(p) for p in connect), listen=tuple(endpoint(p) for p in listen))


@dataclass(frozen=True)
class Command:
    arrival: float  # monotonic s
    twist: Twist
    frame_id: str
    stamp_ns: int
    attachment: Attachment | None
    key_expr: str

    @property
    def zero(self) -> bool:
        return self.twist == Twist()


class Recorder:
    """A node of its own that records the robot's TwistStamped commands and the camera's frames."""

    def __init__(self, zenoh: ZenohConfig, camera_type: str = messages.IMAGE, name: str = "test_recorder") -> None:
        self.node = Ros2Node(zenoh, 0, name)
        self.node.open()
        self.lock = threading.Lock()
        self.commands: list[Command] = []
        self.frames: list[tuple[float, int]] = []  # (arrival monotonic, header stamp ns)
        self._camera_type = camera_type
        self.node.subscription("/cmd_vel", messages.TWIST_STAMPED, DEFAULT_QOS, self._on_command)
        self.node.subscription("/camera/image_raw", camera_type, SENSOR_DATA_QOS, self._on_frame)

    def _on_command(self, received: Received) -> None:
        message = messages.from_cdr(received.payload, messages.TWIST_STAMPED)
        command = Command(received.arrival_monotonic, messages.twist_from_message(message), message.header.frame_id,
                          messages.header_ns(message), received.attachment, received.key_expr)
        with self.lock:
            self.commands.append(command)

    def _on_frame(self, received: Received) -> None:
        stamp = messages.header_ns(messages.from_cdr(received.payload, self._camera_type))
        with self.lock:
            self.frames.append((received.arrival_monotonic, stamp))

    def snapshot(self) -> tuple[list[Command], list[tuple[float, int]]]:
        with self.lock:
            return list(self.commands), list(self.frames)

    def close(self) -> None:
        self.node.close()


class CameraThread:
    """Our camera publisher on a node of its own (own Zenoh session), publishing from a thread."""

    def __init__(self, zenoh: ZenohConfig, config: CameraPublisherConfig, shape: tuple[int, int] = (64, 128),
                 source: Any = None) -> None:
        self.node = Ros2Node(zenoh, 0, "test_camera")
        self.node.open()
        self.publisher = CameraPublisher(self.node, config, source or (lambda index: synthetic_frame(index, shape)))
        self._thread = threading.Thread(target=self.publisher.run, daemon=True)

    def start(self) -> CameraThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.publisher.stop()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def close(self) -> None:
        self.stop()
        self.node.close()


def ports(n: int) -> tuple[int, ...]:
    return tuple(free_port() for _ in range(n))


@contextlib.contextmanager
def package_logging_kept() -> Iterator[None]:
    """Undo what ``lnn_control.cli.main`` does to the package logger (a handler on the stderr pytest
    captures and closes), so later tests' log records do not go to a closed stream."""
    logger = logging.getLogger("lnn_control")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(level)
