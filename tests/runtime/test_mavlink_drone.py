"""MavlinkDrone against the PX4-like autopilot emulator on loopback UDP, set up like PX4 SITL's
offboard link: the emulator listens on its own port and sends to the companion's port, where the
drone listens (``udpin``). Both speak MAVLink 2."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest
from lnn_hw_testkit import video_camera, wait_until
from lnn_mavlink_testkit import (
    ARM_DISARM,
    SET_MODE,
    free_udp_port,
    make_drone,
    our_heartbeats_after,
    start_autopilot,
)

from lnn_control.runtime.core.robot import LinkLostError, RobotError
from lnn_control.runtime.emulators.autopilot import Px4Mode
from lnn_control.runtime.hardware.mavlink_drone import (
    TYPE_MASK_VELOCITY_YAW_RATE,
    MavlinkDrone,
    MavlinkDroneConfig,
    StopAction,
    flu_to_body_ned,
    ned_velocity_to_flu,
)
from lnn_control.spec import ActionFrame

# each test flies a real OFFBOARD sequence over UDP (~1 s): end-to-end, so outside `make test-fast`
pytestmark = pytest.mark.slow


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
