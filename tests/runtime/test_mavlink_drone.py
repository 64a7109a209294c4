"""MavlinkDrone against the pymavlink autopilot emulator on loopback UDP (a random free port)."""

from __future__ import annotations

import numpy as np
import pytest
from lnn_hw_testkit import video_camera, wait_until

from lnn_control.runtime.autopilot_emulator import AutopilotConfig, AutopilotEmulator, Px4Mode
from lnn_control.runtime.mavlink_drone import (
    TYPE_MASK_VELOCITY_YAW_RATE,
    MavlinkDrone,
    MavlinkDroneConfig,
    StopAction,
)
from lnn_control.runtime.robot import LinkLostError, RobotError

ARM_DISARM, SET_MODE = 400, 176


@pytest.fixture
def autopilot():
    with AutopilotEmulator(AutopilotConfig(heartbeat_hz=20.0)) as emulator:
        yield emulator


def make_drone(tmp_path, autopilot, **overrides) -> MavlinkDrone:
    settings = {"link_timeout_s": 0.5, "connect_timeout_s": 3.0, **overrides}
    config = MavlinkDroneConfig(connection=f"udpout:127.0.0.1:{autopilot.address[1]}", **settings)
    return MavlinkDrone(video_camera(tmp_path), config)


def test_type_mask_bits():
    ignored = {"x": 1, "y": 2, "z": 4, "ax": 64, "ay": 128, "az": 256, "yaw": 1024}
    used = {"vx": 8, "vy": 16, "vz": 32, "yaw_rate": 2048, "force": 512}
    assert TYPE_MASK_VELOCITY_YAW_RATE == sum(ignored.values()) == 1479
    assert all(TYPE_MASK_VELOCITY_YAW_RATE & bit == 0 for bit in used.values())


def test_mode_sequence_streams_before_offboard_and_does_not_arm_unasked(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot) as drone:
        assert drone.in_offboard and autopilot.mode == Px4Mode.OFFBOARD
        request = next(c for c in autopilot.commands if c.command == SET_MODE)
        before = [s for s in autopilot.setpoints if s.t < request.t]
        assert len(before) >= 10 and request.t - before[0].t >= 0.45  # pre_stream_s 0.5, less arrival jitter
        assert all((s.vx, s.vy, s.vz, s.yaw_rate) == (0, 0, 0, 0) for s in before)
        assert not [c for c in autopilot.commands if c.command == ARM_DISARM]
        assert not autopilot.armed and not drone.armed
        beats = wait_until(lambda: len(autopilot.heartbeats_received) >= 2 and autopilot.heartbeats_received,
                           what="our heartbeats")
        assert all(mav_type == 18 for _, mav_type in beats)  # MAV_TYPE_ONBOARD_CONTROLLER


def test_arms_after_offboard_when_configured(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, arm=True) as drone:
        assert drone.armed and autopilot.armed
        arm = next(c for c in autopilot.commands if c.command == ARM_DISARM)
        offboard = next(m for m in autopilot.mode_changes if m.mode == Px4Mode.OFFBOARD)
        assert arm.params[0] == 1.0 and arm.t >= offboard.t


def test_setpoint_stream_rate_type_mask_frame_and_values(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, setpoint_rate_hz=40.0, extras=("speed", "altitude"), arm=True) as drone:
        sent = drone.write(np.array([3.0, -0.5, 0.25, -2.0]))  # vx and yaw_rate beyond the limits
        np.testing.assert_allclose(sent, [2.0, -0.5, 0.25, -1.0])
        match = wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 2.0], what="set-point at the autopilot")
        s = match[0]
        assert (s.type_mask, s.frame) == (1479, 8)  # MAV_FRAME_BODY_NED
        assert (s.vy, s.vz) == (-0.5, 0.25) and s.yaw_rate == pytest.approx(-1.0)
        # idle: the thread keeps streaming at the configured rate (zero once the command is stale)
        start = autopilot.setpoints[-1].t
        wait_until(lambda: autopilot.setpoints[-1].t - start >= 1.0, what="1 s of stream")
        gaps = np.diff([p.t for p in autopilot.setpoints if start <= p.t <= start + 1.0])
        # 40 Hz (0.025 s), told apart from the 20 Hz default; the wide upper bound allows a
        # loaded machine (exact rates are the benchmark's business)
        assert 0.022 <= float(np.median(gaps)) <= 0.045
        assert gaps.max() < 0.45  # inside PX4's 0.5 s offboard-loss timeout
        assert all(p.type_mask == 1479 and p.frame == 8 for p in autopilot.setpoints)
        obs = drone.read()
        assert obs.image.shape == (64, 128, 3) and set(obs.extras) == {"speed", "altitude"}
        assert obs.extras["altitude"] > 1.0


def test_stale_command_becomes_zero_velocity_not_a_repeat(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, command_timeout_s=0.2) as drone:
        drone.write(np.array([1.0, 0.0, 0.0, 0.5]))
        written = wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 1.0], what="command")[0].t
        zero = wait_until(
            lambda: [s for s in autopilot.setpoints if s.t > written and s.vx == 0.0], what="zero set-point"
        )[0]
        assert 0.1 <= zero.t - written < 1.0  # command_timeout_s 0.2, arrival times jitter
        fresh = [s for s in autopilot.setpoints if written <= s.t < zero.t]
        assert len(fresh) >= 2 and all(s.vx == 1.0 for s in fresh)  # streamed while fresh...
        assert all(s.vx == 0.0 for s in autopilot.setpoints if s.t >= zero.t)  # ...then never again
        assert drone.watchdog_zeroes == 1 and autopilot.mode == Px4Mode.OFFBOARD  # stream kept alive


@pytest.mark.parametrize("action, mode", [(StopAction.HOLD, Px4Mode.HOLD), (StopAction.LAND, Px4Mode.LAND)])
def test_safe_stop_zero_velocity_then_hold_or_land(tmp_path, autopilot, action, mode):
    with make_drone(tmp_path, autopilot, stop_action=action, arm=True) as drone:
        drone.write(np.array([1.5, 0.0, 0.0, 0.0]))
        drone.stop()
        drone.stop()  # the loop calls stop() every period: one mode request only
        change = wait_until(lambda: [m for m in autopilot.mode_changes if m.mode == mode], what="stop mode")[0]
        moving = next(s for s in autopilot.setpoints if s.vx == 1.5)
        zero = next(s for s in autopilot.setpoints if s.t > moving.t and s.vx == 0.0)
        assert zero.t <= change.t and change.cause == "command"
        assert len([c for c in autopilot.commands if c.command == SET_MODE]) == 2  # OFFBOARD, then stop mode
        assert not drone.estop_requested()
        # the watchdog cleared and the loop writes again: the vehicle stays in its stop mode
        seen = len(autopilot.setpoints)
        assert drone.write(np.array([1.0, 0.0, 0.0, 0.0])).tolist() == [0.0, 0.0, 0.0, 0.0]
        wait_until(lambda: len(autopilot.setpoints) >= seen + 3, what="the stream going on after the write")
        assert not [s for s in autopilot.setpoints if s.t > zero.t and s.vx != 0.0]
        assert autopilot.mode == mode


def test_stop_action_none_stays_in_offboard(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, stop_action="none") as drone:
        drone.stop()
        wait_until(lambda: autopilot.setpoints[-1].vx == 0.0, what="zero set-point")
    assert not [m for m in autopilot.mode_changes if m.mode != Px4Mode.OFFBOARD]


def test_pilot_takeover_is_an_estop(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot) as drone:
        assert not drone.estop_requested()
        autopilot.pilot_switch_mode(Px4Mode.POSCTL)
        wait_until(drone.estop_requested, what="e-stop after pilot takeover")


def test_autopilot_failsafe_when_the_stream_stops(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot)
    drone.connect()
    drone.disconnect()  # the stream ends without a stop: PX4 falls back on its own
    change = wait_until(lambda: [m for m in autopilot.mode_changes if m.cause == "failsafe"], what="failsafe")[0]
    assert change.mode == Px4Mode.HOLD
    assert 0.5 < change.t - autopilot.setpoints[-1].t < 2.0  # the emulator's offboard_timeout_s 0.5


def test_offboard_refused_without_stream():
    from pymavlink import mavutil

    with AutopilotEmulator(AutopilotConfig(heartbeat_hz=20.0)) as autopilot:
        conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{autopilot.address[1]}", source_system=1)
        try:
            conn.mav.command_long_send(1, 1, SET_MODE, 0, 1, 6, 0, 0, 0, 0, 0)
            ack = conn.recv_match(type="COMMAND_ACK", blocking=True, timeout=3)
            assert ack is not None and ack.result == mavutil.mavlink.MAV_RESULT_TEMPORARILY_REJECTED
            assert autopilot.mode == Px4Mode.POSCTL
        finally:
            conn.close()


def test_link_loss_and_bounded_reconnect(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot, connect_timeout_s=0.3)
    drone.connect()
    try:
        assert drone.link_ok()
        autopilot.close()  # the link goes silent (closing twice, at fixture teardown, is harmless)
        wait_until(lambda: not drone.link_ok(), what="link loss")
        with pytest.raises(LinkLostError, match="no autopilot heartbeat"):
            drone.read()
        with pytest.raises(LinkLostError):
            drone.write(np.zeros(4))
        with pytest.raises(RobotError, match=r"after 2 attempt\(s\).*attempt 1.*HEARTBEAT.*attempt 2"):
            drone.reconnect(2, backoff_s=0.01)
    finally:
        drone.disconnect()


def test_a_fault_in_the_io_thread_is_a_lost_link_at_once(tmp_path, autopilot, monkeypatch):
    with make_drone(tmp_path, autopilot, link_timeout_s=5.0) as drone:

        def corrupt_handler(message):
            raise RuntimeError("injected fault")

        monkeypatch.setattr(drone, "_handle", corrupt_handler)  # the next message kills the thread
        wait_until(lambda: not drone.link_ok(), timeout_s=2.0, what="link reported down (long before 5 s)")
        with pytest.raises(LinkLostError, match="I/O thread failed: RuntimeError: injected fault"):
            drone.read()
    # leaving the block still sent zero velocity and the stop mode request itself
    wait_until(lambda: autopilot.mode == Px4Mode.HOLD, what="HOLD after the with block")


def test_config_errors():
    with pytest.raises(ValueError, match="2 Hz"):
        MavlinkDroneConfig(connection="udpout:x:1", setpoint_rate_hz=1.0)
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\)"):
        MavlinkDroneConfig(connection="udpout:x:1", image_shape=(-1, 5))
    with pytest.raises(ValueError, match="command_timeout_s must be finite and > 0 seconds"):
        MavlinkDroneConfig(connection="udpout:x:1", command_timeout_s=float("inf"))
    for limits in ((2.0, 1.0, 1.0), (2.0, 1.0, 1.0, float("inf")), (2.0, 0.0, 1.0, 1.0)):
        with pytest.raises(ValueError, match="velocity_limits must be 4 finite values"):
            MavlinkDroneConfig(connection="udpout:x:1", velocity_limits=limits)
    with pytest.raises(ValueError, match="allowed"):
        MavlinkDroneConfig(connection="udpout:x:1", stop_action="crash")
    with pytest.raises(ValueError, match="pre_stream_s"):
        MavlinkDroneConfig(connection="udpout:x:1", pre_stream_s=0.1)


def test_emulator_process_serves_a_drone(tmp_path):
    import selectors
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "lnn_control.runtime.autopilot_emulator", "--port", "0", "--heartbeat-hz", "10"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "emulator did not start"
        ready = process.stdout.readline().split()
        assert ready[0] == "READY" and ready[1].startswith("udpout:127.0.0.1:")
        drone = MavlinkDrone(video_camera(tmp_path), MavlinkDroneConfig(connection=ready[1], link_timeout_s=1.0))
        with drone:
            assert drone.in_offboard
            drone.write(np.array([0.5, 0.0, 0.0, 0.0]))
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert "mode OFFBOARD (command)" in out and "mode HOLD (command)" in out
        assert int(out.strip().splitlines()[-1].split()[0]) >= 10  # "<n> set-points received"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)  # reaped, pipe closed


def test_camera_failure_never_engages_offboard(tmp_path, autopilot):
    from lnn_control.runtime.cameras import VideoFileCamera

    config = MavlinkDroneConfig(connection=f"udpout:127.0.0.1:{autopilot.address[1]}", connect_timeout_s=3.0)
    drone = MavlinkDrone(VideoFileCamera(tmp_path / "missing.avi"), config)
    with pytest.raises(RobotError, match="camera"):
        drone.connect()
    assert not drone.is_connected and autopilot.mode == Px4Mode.POSCTL
    assert not [c for c in autopilot.commands if c.command == SET_MODE]


@pytest.mark.parametrize("reengage", [False, True])
def test_reconnect_after_a_failsafe_reengages_only_when_configured(tmp_path, autopilot, reengage):
    drone = make_drone(tmp_path, autopilot, reengage_after_reconnect=reengage)
    drone.connect()
    try:
        autopilot.pilot_switch_mode(Px4Mode.HOLD)  # what PX4 does on its own after a link loss
        wait_until(drone.estop_requested, what="out of OFFBOARD")
        assert drone.reconnect(2, backoff_s=0.01) == 1
        requests = [c for c in autopilot.commands if c.command == SET_MODE]
        if reengage:
            assert len(requests) == 2 and autopilot.mode == Px4Mode.OFFBOARD and not drone.estop_requested()
        else:
            assert len(requests) == 1 and autopilot.mode == Px4Mode.HOLD and drone.estop_requested()
    finally:
        drone.disconnect()


@pytest.mark.parametrize("sender", ["gimbal", "other_vehicle"])
def test_heartbeats_of_other_components_and_vehicles_are_not_our_autopilot(tmp_path, autopilot, sender):
    """A gimbal (or camera, OSD) on the same link sends HEARTBEAT with autopilot=INVALID and
    custom_mode 0; another vehicle's PX4 on the same network has its own system id and mode.
    Neither may look like our autopilot leaving OFFBOARD nor become the command target."""
    import socket

    from pymavlink import mavutil

    mav = mavutil.mavlink
    if sender == "gimbal":
        codec = mav.MAVLink(None, srcSystem=1, srcComponent=mav.MAV_COMP_ID_GIMBAL)
        beat = codec.heartbeat_encode(mav.MAV_TYPE_GIMBAL, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE)
    else:
        codec = mav.MAVLink(None, srcSystem=2, srcComponent=1)
        beat = codec.heartbeat_encode(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4, 1, Px4Mode.POSCTL.custom_mode, 4)
    with make_drone(tmp_path, autopilot) as drone, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        seen = []

        def foreign_beats_for_a_while():
            udp.sendto(beat.pack(codec), autopilot.peer)
            seen.append((drone.px4_mode, drone.estop_requested(), drone.link_ok()))
            return len(seen) >= 50 and seen

        wait_until(foreign_beats_for_a_while, what="50 foreign heartbeats")
        assert set(seen) == {((6, 0), False, True)}  # OFFBOARD throughout, no e-stop, link fine
        drone.write(np.array([0.5, 0.0, 0.0, 0.0]))  # still addressed to our autopilot
        wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 0.5], what="set-point at the autopilot")
        assert autopilot.ignored == 0


def test_target_system_picks_the_autopilot(tmp_path, autopilot):
    with pytest.raises(RobotError, match="no autopilot HEARTBEAT"):
        make_drone(tmp_path, autopilot, target_system=2, connect_timeout_s=0.5).connect()
    with make_drone(tmp_path, autopilot, target_system=1) as drone:
        assert drone.in_offboard
    with pytest.raises(ValueError, match="target_system"):
        MavlinkDroneConfig(connection="udpout:x:1", target_system=256)
