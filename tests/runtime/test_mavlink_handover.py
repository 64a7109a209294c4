"""MavlinkDrone hand-over and reconnect rules against the PX4-like autopilot emulator on loopback
UDP (SITL ports, MAVLink 2): who may command the vehicle after a failsafe, a pilot switch, a dead
downlink or a reconnect, and which autopilot the drone binds to."""

from __future__ import annotations

import socket
import threading
import time
import types

import numpy as np
import pytest
from lnn_hw_testkit import wait_until
from lnn_mavlink_testkit import (
    SET_MODE,
    free_udp_port,
    make_drone,
    our_heartbeats_after,
    start_autopilot,
)

from lnn_control.runtime.core.robot import RobotError
from lnn_control.runtime.emulators.autopilot import Px4Mode
from lnn_control.runtime.hardware.mavlink_drone import (
    MavlinkDrone,
    MavlinkDroneConfig,
)

# each test flies a real OFFBOARD sequence over UDP (~1 s): end-to-end, so outside `make test-fast`
# each test flies a real OFFBOARD sequence over UDP (~1 s): end-to-end, so outside `make test-fast`
pytestmark = pytest.mark.slow


def test_camera_failure_never_engages_offboard(tmp_path, autopilot):
    from lnn_control.runtime.hardware.cameras import VideoFileCamera

    config = MavlinkDroneConfig(connection=f"udpin:127.0.0.1:{autopilot.remote[1]}", connect_timeout_s=3.0)
    drone = MavlinkDrone(VideoFileCamera(tmp_path / "missing.avi"), config)
    with pytest.raises(RobotError, match="camera"):
        drone.connect()
    assert not drone.is_connected and autopilot.mode == Px4Mode.POSCTL
    assert not [c for c in autopilot.commands if c.command == SET_MODE] and not autopilot.setpoints


def test_reconnect_after_a_failsafe_keeps_hands_off(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot)
    drone.connect()
    try:
        autopilot.trigger_failsafe(Px4Mode.HOLD)  # what PX4 does on its own after a link loss
        wait_until(drone.estop_requested, what="out of OFFBOARD")
        assert drone.reconnect(2, backoff_s=0.01) == 1
        reconnected = time.monotonic()
        drone.stop()
        our_heartbeats_after(autopilot, reconnected)
        assert len([c for c in autopilot.commands if c.command == SET_MODE]) == 1  # only our OFFBOARD
        assert autopilot.mode == Px4Mode.HOLD and drone.estop_requested() and not drone.streaming
        assert not [s for s in autopilot.setpoints if s.t > reconnected]
    finally:
        drone.disconnect()


def test_reconnect_while_still_in_offboard_keeps_control_for_our_stop(tmp_path):
    autopilot = start_autopilot(offboard_timeout_s=5.0)  # a link blip shorter than PX4's loss timeout
    try:
        drone = make_drone(tmp_path, autopilot)
        drone.connect()
        try:
            drone.write(np.array([1.0, 0.0, 0.0, 0.0]))
            assert drone.reconnect(1, backoff_s=0.0) == 1
            # the link is back and the vehicle still in our OFFBOARD: zero velocity only, for good
            assert drone.streaming and drone.estop_requested() and "link came back" in drone.estop_detail()
            assert drone.write(np.array([1.0, 0.0, 0.0, 0.0])).tolist() == [0.0] * 4
            with pytest.raises(RobotError, match="will not re-engage"):
                drone.engage()
            drone.stop()  # a stop we initiate while we hold OFFBOARD may hand it to HOLD
            wait_until(lambda: autopilot.mode == Px4Mode.HOLD, what="HOLD")
            assert autopilot.mode_changes[-1].cause == "command" and autopilot.overrides == []
        finally:
            drone.disconnect()
    finally:
        autopilot.close()


@pytest.mark.parametrize("sender", ["gimbal", "camera", "other_vehicle"])
def test_heartbeats_of_other_components_and_vehicles_are_not_our_autopilot(tmp_path, autopilot, sender):
    """A gimbal on the same link sends HEARTBEAT with autopilot=INVALID and custom_mode 0; many
    third-party cameras say autopilot GENERIC; another vehicle's PX4 on the same network has its own
    system id and mode. None may look like our autopilot leaving OFFBOARD nor become the target."""
    from pymavlink.dialects.v20 import common as mav

    if sender == "gimbal":
        codec = mav.MAVLink(None, srcSystem=1, srcComponent=mav.MAV_COMP_ID_GIMBAL)
        beat = codec.heartbeat_encode(mav.MAV_TYPE_GIMBAL, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE)
    elif sender == "camera":
        codec = mav.MAVLink(None, srcSystem=1, srcComponent=mav.MAV_COMP_ID_CAMERA)
        beat = codec.heartbeat_encode(mav.MAV_TYPE_CAMERA, mav.MAV_AUTOPILOT_GENERIC, 0, 0, mav.MAV_STATE_ACTIVE)
    else:
        codec = mav.MAVLink(None, srcSystem=2, srcComponent=1)
        beat = codec.heartbeat_encode(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4, 1, Px4Mode.POSCTL.custom_mode, 4)
    with make_drone(tmp_path, autopilot) as drone, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        seen = []

        def foreign_beats_for_a_while():
            udp.sendto(beat.pack(codec), ("127.0.0.1", autopilot.remote[1]))
            seen.append((drone.px4_mode, drone.estop_requested(), drone.link_ok()))
            return len(seen) >= 50 and seen

        wait_until(foreign_beats_for_a_while, what="50 foreign heartbeats")
        assert set(seen) == {((6, 0), False, True)}  # OFFBOARD throughout, no e-stop, link fine
        drone.write(np.array([0.5, 0.0, 0.0, 0.0]))  # still addressed to our autopilot
        wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 0.5], what="set-point at the autopilot")
        assert autopilot.ignored == 0


def test_target_system_picks_the_autopilot(tmp_path, autopilot):
    with pytest.raises(RobotError, match="no PX4 autopilot HEARTBEAT"):
        make_drone(tmp_path, autopilot, target_system=2, connect_timeout_s=0.5).connect()
    with make_drone(tmp_path, autopilot, target_system=1) as drone:
        assert drone.in_offboard
    with pytest.raises(ValueError, match="target_system"):
        MavlinkDroneConfig(connection="udpin:x:1", target_system=256)


def test_a_stop_right_after_the_pilots_switch_requests_no_mode_at_px4s_1_hz_heartbeat(tmp_path):
    """PX4 beats once a second: the operator's stop (an e-stop, the end of the run) lands while the
    last heartbeat still says OFFBOARD. The stop asks for a fresh heartbeat first and so sees the
    pilot's POSCTL: no HOLD over the pilot."""
    autopilot = start_autopilot(heartbeat_hz=1.0)
    try:
        with make_drone(tmp_path, autopilot, link_timeout_s=3.0) as drone:
            drone.write(np.array([1.0, 0.0, 0.0, 0.0]))
            autopilot.pilot_switch_mode(Px4Mode.POSCTL)
            switched = time.monotonic()
            assert drone.in_offboard  # the next regular heartbeat is up to 1 s away
            drone.stop()
            assert drone.estop_requested() and "left OFFBOARD for POSCTL" in drone.estop_detail()
        assert autopilot.mode == Px4Mode.POSCTL and autopilot.overrides == []
        assert not [c for c in autopilot.commands if c.t > switched and c.command == SET_MODE]
    finally:
        autopilot.close()


def test_no_mode_request_while_the_downlink_is_dead(tmp_path, autopilot):
    """Nothing comes from the vehicle (its radio downlink failed) while the pilot switches: the stop
    sends zero velocity but no mode request, because it cannot confirm the vehicle is in OFFBOARD."""
    with make_drone(tmp_path, autopilot) as drone:
        autopilot.set_muted(True)
        autopilot.pilot_switch_mode(Px4Mode.POSCTL)
        switched = time.monotonic()
        wait_until(lambda: not drone.link_ok(), what="the silence noticed")
        drone.stop()
        our_heartbeats_after(autopilot, switched)
        assert not [c for c in autopilot.commands if c.t > switched and c.command == SET_MODE]
        assert autopilot.overrides == []
        autopilot.set_muted(False)


def test_a_refused_hold_falls_back_to_land(tmp_path, autopilot):
    """PX4 refuses AUTO.LOITER without a valid position estimate: the stop then asks for LAND."""
    with make_drone(tmp_path, autopilot, arm=True) as drone:
        autopilot.set_estimates(False)
        drone.stop()
        wait_until(lambda: autopilot.mode == Px4Mode.LAND, what="LAND")
        requests = [(Px4Mode.from_custom_mode((int(c.params[1]) << 16) | (int(c.params[2]) << 24)), c.result)
                    for c in autopilot.commands if c.command == SET_MODE]
        assert requests[-2:] == [(Px4Mode.HOLD, 2), (Px4Mode.LAND, 0)]  # DENIED, then ACCEPTED
        assert autopilot.overrides == []


def test_only_a_px4_autopilot_is_flown(tmp_path):
    """ArduPilot numbers its modes differently (DO_SET_MODE 6 is RTL there): refuse it before any
    command, fast, with a message that says why."""
    from pymavlink.dialects.v20 import common as mav

    port = free_udp_port()
    codec = mav.MAVLink(None, srcSystem=1, srcComponent=1)
    beat = codec.heartbeat_encode(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_ARDUPILOTMEGA, 1, 0, 3).pack(codec)
    received: list[str] = []
    stop = threading.Event()

    def ardupilot() -> None:
        parser = mav.MAVLink(None)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.02)
            while not stop.is_set():
                udp.sendto(beat, ("127.0.0.1", port))
                try:
                    data = udp.recv(4096)
                except TimeoutError:
                    continue
                received.extend(m.get_type() for m in parser.parse_buffer(data) or [])

    sender = threading.Thread(target=ardupilot, daemon=True)
    sender.start()
    try:
        drone = make_drone(tmp_path, types.SimpleNamespace(remote=("127.0.0.1", port)))
        start = time.monotonic()
        with pytest.raises(RobotError, match="system 1 is ArduPilot, not PX4"):
            drone.connect()
        assert time.monotonic() - start < 2.0
    finally:
        stop.set()
        sender.join(timeout=5)
    assert set(received) <= {"HEARTBEAT"}


def test_the_hand_over_waits_for_a_periodic_heartbeat_when_the_firmware_ignores_requests(tmp_path):
    """Firmware without MAV_CMD_REQUEST_MESSAGE: the stop waits (up to one PX4 heartbeat period plus
    the ACK timeout) for the regular 1 Hz heartbeat instead, then hands over."""
    autopilot = start_autopilot(heartbeat_hz=1.0, answer_requests=False)
    try:
        with make_drone(tmp_path, autopilot, link_timeout_s=3.0) as drone:
            drone.write(np.array([0.5, 0.0, 0.0, 0.0]))
            drone.stop()
            assert autopilot.mode == Px4Mode.HOLD or wait_until(lambda: autopilot.mode == Px4Mode.HOLD, what="HOLD")
            assert drone.estop_requested() and "handed the vehicle to HOLD" in drone.estop_detail()
        assert autopilot.overrides == [] and {c.result for c in autopilot.commands if c.command == 512} == {3}
    finally:
        autopilot.close()
