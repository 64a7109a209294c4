"""MavlinkDrone against the PX4-like autopilot emulator on loopback UDP, set up like PX4 SITL's
offboard link: the emulator listens on its own port and sends to the companion's port, where the
drone listens (``udpin``). Both speak MAVLink 2."""

from __future__ import annotations

import math
import socket
import threading
import time
import types

import numpy as np
import pytest
from lnn_hw_testkit import video_camera, wait_until

from lnn_control.runtime.core.robot import LinkLostError, RobotError
from lnn_control.runtime.emulators.autopilot import AutopilotConfig, AutopilotEmulator, Px4Mode
from lnn_control.runtime.hardware.mavlink_drone import (
    TYPE_MASK_VELOCITY_YAW_RATE,
    MavlinkDrone,
    MavlinkDroneConfig,
    StopAction,
    flu_to_body_ned,
    ned_velocity_to_flu,
)
from lnn_control.spec import ActionFrame

ARM_DISARM, SET_MODE = 400, 176
# each test flies a real OFFBOARD sequence over UDP (~1 s): end-to-end, so outside `make test-fast`
pytestmark = pytest.mark.slow


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_autopilot(**config) -> AutopilotEmulator:
    settings = {"heartbeat_hz": 20.0, **config}
    return AutopilotEmulator(AutopilotConfig(**settings), remote=("127.0.0.1", free_udp_port())).start()


@pytest.fixture
def autopilot():
    emulator = start_autopilot()
    yield emulator
    emulator.close()


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


def test_type_mask_bits():
    ignored = {"x": 1, "y": 2, "z": 4, "ax": 64, "ay": 128, "az": 256, "yaw": 1024}
    used = {"vx": 8, "vy": 16, "vz": 32, "yaw_rate": 2048, "force": 512}
    assert TYPE_MASK_VELOCITY_YAW_RATE == sum(ignored.values()) == 1479
    assert all(TYPE_MASK_VELOCITY_YAW_RATE & bit == 0 for bit in used.values())


def test_frame_conversions():
    """FLU (forward, left, up, yaw CCW+) vs MAVLink body / earth NED, for every axis."""
    assert flu_to_body_ned(np.array([1.0, 0.5, 0.25, 0.75])) == (1.0, -0.5, -0.25, -0.75)
    # heading north (yaw 0): north = forward, east = right (-left), down = -up
    assert ned_velocity_to_flu(1.0, 0.0, 0.0, 0.0) == pytest.approx((1.0, 0.0, 0.0))
    assert ned_velocity_to_flu(0.0, 1.0, 0.0, 0.0) == pytest.approx((0.0, -1.0, 0.0))
    assert ned_velocity_to_flu(0.0, 0.0, 1.0, 0.0) == pytest.approx((0.0, 0.0, -1.0))
    # heading east (yaw +90 deg, clockwise from north): east is forward, north is left
    assert ned_velocity_to_flu(0.0, 1.0, 0.0, math.pi / 2) == pytest.approx((1.0, 0.0, 0.0), abs=1e-12)
    assert ned_velocity_to_flu(1.0, 0.0, 0.0, math.pi / 2) == pytest.approx((0.0, 1.0, 0.0), abs=1e-12)


def test_action_spec_names_the_flu_frame(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot)
    assert drone.action_spec.frame == ActionFrame.FLU
    assert drone.action_spec.names == ("vx", "vy", "vz", "yaw_rate")


def test_all_four_axes_reach_px4_in_body_ned_and_come_back_as_flu_extras(tmp_path):
    """The policy's left / up / counter-clockwise become MAVLink's -y / -z / -yaw_rate on the wire,
    the vehicle moves that way in the world, and the velocity extras read back in FLU."""
    autopilot = start_autopilot(initial_yaw=1.0)  # heading ~57 deg east of north: rotation matters
    try:
        with make_drone(tmp_path, autopilot, arm=True, extras=("vx", "vy", "vz")) as drone:
            sent = drone.write(np.array([1.0, 0.5, 0.25, 0.0]))  # forward, LEFT, UP
            np.testing.assert_allclose(sent, [1.0, 0.5, 0.25, 0.0])
            s = wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 1.0], what="set-point")[0]
            assert (s.type_mask, s.frame) == (1479, 8)  # MAV_FRAME_BODY_NED
            assert (s.vy, s.vz, s.yaw_rate) == (-0.5, -0.25, 0.0)  # right = -left, down = -up
            # the vehicle climbs and drifts left of its heading...
            north, east = autopilot.velocity[:2]
            left_of_heading = -(-math.sin(1.0) * north + math.cos(1.0) * east)
            assert autopilot.velocity[2] == pytest.approx(-0.25) and left_of_heading == pytest.approx(0.5)
            # ...and the drone reads its own command back as FLU velocity extras
            obs = wait_until(lambda: (o := drone.read()).extras["vx"] > 0.99 and o, what="velocity estimate")
            assert (obs.extras["vx"], obs.extras["vy"], obs.extras["vz"]) == pytest.approx((1.0, 0.5, 0.25), abs=1e-3)
            yaw_before = autopilot.yaw
            drone.write(np.array([0.0, 0.0, 0.0, 0.5]))  # yaw counter-clockwise (left)
            s = wait_until(lambda: [s for s in autopilot.setpoints if s.yaw_rate != 0.0], what="yaw set-point")[0]
            assert s.yaw_rate == pytest.approx(-0.5)  # NED: clockwise +
            wait_until(lambda: autopilot.yaw < yaw_before - 0.01, what="the heading turning left")
    finally:
        autopilot.close()


def test_mode_sequence_streams_before_offboard_and_does_not_arm_unasked(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot) as drone:
        assert drone.in_offboard and autopilot.mode == Px4Mode.OFFBOARD
        request = next(c for c in autopilot.commands if c.command == SET_MODE)
        before = [s for s in autopilot.setpoints if s.t < request.t]
        assert len(before) >= 4 and request.t - before[0].t >= 0.45  # pre_stream_s 0.5 here, less arrival jitter
        assert all((s.vx, s.vy, s.vz, s.yaw_rate) == (0, 0, 0, 0) for s in before)
        assert not [c for c in autopilot.commands if c.command == ARM_DISARM]
        assert not autopilot.armed and not drone.armed
        beats = wait_until(lambda: len(autopilot.heartbeats_received) >= 2 and autopilot.heartbeats_received,
                           what="our heartbeats")
        assert all(mav_type == 18 for _, mav_type in beats)  # MAV_TYPE_ONBOARD_CONTROLLER
    assert autopilot.mavlink1_frames == 0 and autopilot.packets_received > 10  # MAVLink 2 throughout


def test_mavlink1_frames_are_dropped_by_the_strict_autopilot(autopilot):
    from pymavlink.dialects.v10 import common as mavlink1

    codec = mavlink1.MAVLink(None, srcSystem=1, srcComponent=191)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(codec.command_long_encode(1, 1, SET_MODE, 0, 1, 6, 0, 0, 0, 0, 0).pack(codec), autopilot.address)
        wait_until(lambda: autopilot.mavlink1_frames == 1, what="the MAVLink 1 frame counted")
    assert autopilot.commands == [] and autopilot.mode == Px4Mode.POSCTL


def test_arms_after_offboard_when_configured(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, arm=True) as drone:
        assert drone.armed and autopilot.armed
        arm = next(c for c in autopilot.commands if c.command == ARM_DISARM)
        offboard = next(m for m in autopilot.mode_changes if m.mode == Px4Mode.OFFBOARD)
        assert arm.params[0] == 1.0 and arm.t >= offboard.t


def test_keepalive_fills_gaps_only_and_never_repeats_a_stale_command(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, keepalive_rate_hz=10.0, command_timeout_s=0.35) as drone:
        keepalives = drone.keepalive_setpoints
        written = time.monotonic()
        drone.write(np.array([1.0, 0.0, 0.0, 0.5]))
        first = wait_until(lambda: [s for s in autopilot.setpoints if s.vx == 1.0], what="command")[0].t
        zero = wait_until(
            lambda: [s for s in autopilot.setpoints if s.t > first and s.vx == 0.0], what="zero set-point"
        )[0]
        assert 0.25 <= zero.t - written < 1.0  # command_timeout_s 0.35, arrival times jitter
        fresh = [s for s in autopilot.setpoints if first <= s.t < zero.t]
        # the gap after the write is filled at the keep-alive's period (0.1 s), not faster
        assert 2 <= len(fresh) <= 5 and all(s.vx == 1.0 for s in fresh)
        assert np.min(np.diff([s.t for s in fresh + [zero]])) > 0.05  # ~0.1 s apart, less arrival jitter
        assert drone.keepalive_setpoints > keepalives
        assert all(s.vx == 0.0 for s in autopilot.setpoints if s.t >= zero.t)  # never the old command again
        assert drone.watchdog_zeroes == 1 and autopilot.mode == Px4Mode.OFFBOARD  # stream kept alive


def test_a_writer_at_the_loop_rate_gets_no_extra_setpoints(tmp_path, autopilot):
    """One writer, one rate: 20 Hz writes give 20 Hz set-points (the keep-alive stays quiet)."""
    with make_drone(tmp_path, autopilot) as drone:
        keepalives = drone.keepalive_setpoints
        start = time.monotonic()
        for k in range(40):
            drone.write(np.array([0.1 * (k % 5), 0.0, 0.0, 0.0]))
            threading_pause(start + (k + 1) * 0.05)
        extra = drone.keepalive_setpoints - keepalives
        assert extra <= 1  # only a write more than a keep-alive period (0.1 s) late lets it fill in
        wait_until(lambda: autopilot.setpoints[-1].t > start + 1.9, what="the last write")
        during = [s for s in autopilot.setpoints if s.t >= start]
        assert 40 <= len(during) <= 41 + extra


def threading_pause(until: float) -> None:
    import threading

    threading.Event().wait(max(0.0, until - time.monotonic()))


@pytest.mark.parametrize("action, mode", [(StopAction.HOLD, Px4Mode.HOLD), (StopAction.LAND, Px4Mode.LAND)])
def test_our_stop_in_offboard_is_zero_velocity_then_hold_or_land_then_silence(tmp_path, autopilot, action, mode):
    with make_drone(tmp_path, autopilot, stop_action=action, arm=True) as drone:
        drone.write(np.array([1.5, 0.0, 0.0, 0.0]))
        drone.stop()
        drone.stop()  # the loop calls stop() every period: one mode request only
        change = wait_until(lambda: [m for m in autopilot.mode_changes if m.mode == mode], what="stop mode")[0]
        moving = next(s for s in autopilot.setpoints if s.vx == 1.5)
        zero = next(s for s in autopilot.setpoints if s.t > moving.t and s.vx == 0.0)
        assert zero.t <= change.t and change.cause == "command"
        assert len([c for c in autopilot.commands if c.command == SET_MODE]) == 2  # OFFBOARD, then stop mode
        wait_until(lambda: not drone.streaming, what="the stream ending once the vehicle took HOLD / LAND")
        # a confirmed hand-over ends this run's flying: the loop latches its e-stop and says why
        assert drone.estop_requested() and f"handed the vehicle to {mode.name}" in drone.estop_detail()
        quiet_from = time.monotonic()
        assert drone.write(np.array([1.0, 0.0, 0.0, 0.0])).tolist() == [0.0, 0.0, 0.0, 0.0]
        drone.stop()
        our_heartbeats_after(autopilot, quiet_from)
        assert not [s for s in autopilot.setpoints if s.t > quiet_from]
        assert autopilot.mode == mode and autopilot.overrides == []


def test_stop_action_none_stays_in_offboard(tmp_path, autopilot):
    with make_drone(tmp_path, autopilot, stop_action="none") as drone:
        drone.stop()
        wait_until(lambda: autopilot.setpoints[-1].vx == 0.0, what="zero set-point")
    assert not [m for m in autopilot.mode_changes if m.mode != Px4Mode.OFFBOARD]


@pytest.mark.parametrize("takeover", ["pilot POSCTL", "failsafe LAND", "failsafe RTL"])
def test_pilot_or_failsafe_takeover_ends_the_stream_and_no_mode_is_requested(tmp_path, autopilot, takeover):
    """The pilot and the failsafe win: after the vehicle leaves OFFBOARD on its own, the companion
    stops streaming, never requests a mode (the loop's stop() every period sends nothing), and says
    why it raised its e-stop."""
    cause, name = takeover.split()
    with make_drone(tmp_path, autopilot, arm=True) as drone:
        drone.write(np.array([1.0, 0.0, 0.0, 0.0]))
        switch = time.monotonic()
        (autopilot.pilot_switch_mode if cause == "pilot" else autopilot.trigger_failsafe)(Px4Mode[name])
        wait_until(drone.estop_requested, what="the take-over noticed")
        assert not drone.streaming and "left OFFBOARD for " + name in drone.estop_detail()
        noticed = time.monotonic()
        for _ in range(5):
            drone.stop()
            assert drone.write(np.array([1.0, 0.0, 0.0, 0.0])).tolist() == [0.0] * 4
        our_heartbeats_after(autopilot, noticed)
        assert autopilot.mode == Px4Mode[name] and autopilot.overrides == []
        assert not [c for c in autopilot.commands if c.t > switch]
        # set-points stopped within a heartbeat period (0.05 s) of the switch, plus scheduling slack
        assert not [s for s in autopilot.setpoints if s.t > switch + 0.3]
        with pytest.raises(RobotError, match="will not re-engage"):
            drone.engage()
    assert autopilot.mode == Px4Mode[name] and autopilot.overrides == []  # leaving the block: nothing either


def test_autopilot_offboard_loss_failsafe_when_the_stream_stops(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot)
    drone.connect()
    drone.disconnect()  # the stream ends without a stop: PX4 falls back on its own
    change = wait_until(lambda: [m for m in autopilot.mode_changes if m.cause == "failsafe"], what="failsafe")[0]
    assert change.mode == Px4Mode.HOLD
    assert 0.5 < change.t - autopilot.setpoints[-1].t < 2.0  # the emulator's offboard_timeout_s 0.5


def test_rejected_offboard_fails_on_the_ack_not_after_the_timeout(tmp_path):
    autopilot = start_autopilot(estimates=False)  # PX4 refuses OFFBOARD without a position estimate
    try:
        drone = make_drone(tmp_path, autopilot, connect_timeout_s=5.0)
        start = time.monotonic()
        with pytest.raises(RobotError, match="refused OFFBOARD \\(DENIED\\)"):
            drone.connect()
        request = next(c for c in autopilot.commands if c.command == SET_MODE)
        assert time.monotonic() - request.t < 1.0 and time.monotonic() - start < 3.0  # not the 5 s timeout
        assert not drone.is_connected and autopilot.mode == Px4Mode.POSCTL
    finally:
        autopilot.close()


def test_unknown_estimate_is_an_error_never_a_zero(tmp_path):
    autopilot = start_autopilot(estimates=False)
    try:
        drone = make_drone(tmp_path, autopilot, extras=("vx", "vy", "vz"), connect_timeout_s=1.0)
        with pytest.raises(RobotError, match="no LOCAL_POSITION_NED / ATTITUDE.*nothing was engaged"):
            drone.connect()
        # refused before any set-point, mode or arm request reached the vehicle (only the stream requests)
        assert not autopilot.setpoints and autopilot.mode == Px4Mode.POSCTL
        assert {c.command for c in autopilot.commands} == {511}  # MAV_CMD_SET_MESSAGE_INTERVAL
        autopilot.set_estimates(True)
        with make_drone(tmp_path, autopilot, extras=("altitude", "vx")) as drone:
            assert drone.read().extras["altitude"] == pytest.approx(2.0)
            autopilot.set_estimates(False)  # the estimator loses its fix in flight
            with pytest.raises(RobotError, match="estimate is unknown: (LOCAL_POSITION_NED|ATTITUDE) .* s old"):
                wait_until(lambda: drone.read() and False, timeout_s=3.0, what="a stale-estimate error")
    finally:
        autopilot.close()


def test_link_loss_and_bounded_reconnect(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot, reconnect_timeout_s=0.3)
    drone.connect()
    try:
        assert drone.link_ok()
        autopilot.close()  # the link goes silent (closing twice, at fixture teardown, is harmless)
        wait_until(lambda: not drone.link_ok(), what="link loss")
        with pytest.raises(LinkLostError, match="no message from the autopilot"):
            drone.read()
        with pytest.raises(LinkLostError):
            drone.write(np.zeros(4))
        start = time.monotonic()
        with pytest.raises(RobotError, match=r"after 2 attempt\(s\).*attempt 1.*HEARTBEAT.*within 0.3 s.*as before.*attempt 2"):
            drone.reconnect(2, backoff_s=0.01)
        assert time.monotonic() - start < 1.5  # reconnect_timeout_s bounds each attempt
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
    # leaving the block still sent zero velocity and the stop mode request itself (we held OFFBOARD)
    wait_until(lambda: autopilot.mode == Px4Mode.HOLD, what="HOLD after the with block")


def test_config_errors():
    with pytest.raises(ValueError, match="2 Hz"):
        MavlinkDroneConfig(connection="udpin:x:1", keepalive_rate_hz=1.0)
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\)"):
        MavlinkDroneConfig(connection="udpin:x:1", image_shape=(-1, 5))
    with pytest.raises(ValueError, match="command_timeout_s must be finite and > 0 seconds"):
        MavlinkDroneConfig(connection="udpin:x:1", command_timeout_s=float("inf"))
    for limits in ((2.0, 1.0, 1.0), (2.0, 1.0, 1.0, float("inf")), (2.0, 0.0, 1.0, 1.0)):
        with pytest.raises(ValueError, match="velocity_limits must be 4 finite values"):
            MavlinkDroneConfig(connection="udpin:x:1", velocity_limits=limits)
    with pytest.raises(ValueError, match="allowed"):
        MavlinkDroneConfig(connection="udpin:x:1", stop_action="crash")
    with pytest.raises(ValueError, match="pre_stream_s"):
        MavlinkDroneConfig(connection="udpin:x:1", pre_stream_s=0.1)
    for frame in ("local_ned", "body_offset_ned"):
        with pytest.raises(ValueError, match=f"frame {frame} is not supported.*relative to the heading"):
            MavlinkDroneConfig(connection="udpin:x:1", frame=frame)
    with pytest.raises(ValueError, match="allowed: extras"):
        MavlinkDroneConfig(connection="udpin:x:1", extras=("heading",))


def test_keepalive_must_not_race_the_loop(tmp_path, autopilot):
    drone = make_drone(tmp_path, autopilot, keepalive_rate_hz=20.0)
    with pytest.raises(ValueError, match="keepalive_rate_hz 20 Hz would race.*rate_hz 20"):
        drone.preflight(20.0)
    drone.preflight(40.0)  # a 40 Hz loop leaves 20 Hz keep-alive gaps unfilled
    short = make_drone(tmp_path, autopilot, keepalive_rate_hz=5.0, command_timeout_s=0.05)
    with pytest.raises(ValueError, match="command_timeout_s 0.05 s is shorter than 1.5 loop periods"):
        short.preflight(10.0)
    assert autopilot.packets_received == 0  # a check, not a connection


def test_px4_sitl_ports_need_a_listening_companion(tmp_path, autopilot):
    """PX4 SITL sends to 14540 and listens on 14580: a companion that sends to 14540 (udpout) never
    hears it; one that listens there (udpin, the shipped default) does."""
    companion_port = autopilot.remote[1]
    wrong = MavlinkDrone(video_camera(tmp_path), MavlinkDroneConfig(
        connection=f"udpout:127.0.0.1:{companion_port}", connect_timeout_s=0.5))
    with pytest.raises(RobotError, match="no PX4 autopilot HEARTBEAT.*udpin:127.0.0.1:14540"):
        wrong.connect()
    with make_drone(tmp_path, autopilot) as drone:
        assert drone.in_offboard
    assert autopilot.peer[1] == companion_port


def test_emulator_process_serves_a_drone(tmp_path):
    import selectors
    import signal
    import subprocess
    import sys

    companion = free_udp_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lnn_control.runtime.emulators.autopilot", "--port", "0",
         "--remote-port", str(companion), "--heartbeat-hz", "10"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=20), "emulator did not start"
        ready = process.stdout.readline().split()
        assert ready == ["READY", f"udpin:127.0.0.1:{companion}"]
        drone = MavlinkDrone(video_camera(tmp_path), MavlinkDroneConfig(connection=ready[1], link_timeout_s=1.0))
        with drone:
            assert drone.in_offboard
            drone.write(np.array([0.5, 0.0, 0.0, 0.0]))
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert "mode OFFBOARD (command)" in out and "mode HOLD (command)" in out
        lines = out.strip().splitlines()
        assert lines[-2].startswith("0 mode commands overrode")
        assert int(lines[-1].split()[0]) >= 8  # "<n> set-points received"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)  # reaped, pipe closed


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
