"""What the MavlinkDrone tests share: a PX4-like autopilot emulator on a free loopback port, a
drone set up like PX4 SITL's offboard companion, and waits on the emulator's records."""

from __future__ import annotations

import socket

from lnn_hw_testkit import video_camera, wait_until

from lnn_control.runtime.emulators.autopilot import AutopilotConfig, AutopilotEmulator
from lnn_control.runtime.hardware.mavlink_drone import MavlinkDrone, MavlinkDroneConfig

ARM_DISARM, SET_MODE = 400, 176


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_autopilot(**config) -> AutopilotEmulator:
    settings = {"heartbeat_hz": 20.0, **config}
    return AutopilotEmulator(AutopilotConfig(**settings), remote=("127.0.0.1", free_udp_port())).start()


def make_drone(tmp_path, autopilot, **overrides) -> MavlinkDrone:
    settings = {"link_timeout_s": 0.5, "connect_timeout_s": 3.0, "heartbeat_rate_hz": 20.0, "pre_stream_s": 0.5,
                "pre_stream_setpoints": 4, **overrides}
    config = MavlinkDroneConfig(connection=f"udpin:127.0.0.1:{autopilot.remote[1]}", **settings)
    return MavlinkDrone(video_camera(tmp_path), config)


def our_heartbeats_after(autopilot, t: float, count: int = 5) -> None:
    """Wait until the autopilot got ``count`` of our heartbeats after ``t``: proof the link kept
    carrying traffic for a while (so an absence of set-points or commands means something)."""
    wait_until(lambda: len([b for b in autopilot.heartbeats_received if b[0] > t]) >= count,
               what=f"{count} of our heartbeats")
