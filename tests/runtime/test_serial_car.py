"""SerialCar against the MCU emulator in a subprocess on a real pseudo-terminal, via real pyserial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from lnn_hw_testkit import start_car_emulator, video_camera, wait_until

from lnn_control.config import ConfigError
from lnn_control.runtime.core.robot import LinkLostError, RobotError
from lnn_control.runtime.hardware.serial_car import CarActions, SerialCar, SerialCarConfig
from lnn_control.runtime.hardware.serial_protocol import (
    Ack,
    Drive,
    Error,
    ErrorCode,
    Heartbeat,
    LineSplitter,
    Telemetry,
    decode,
    encode,
)
from lnn_control.runtime.session import build_hardware_robot


@pytest.fixture
def emulator(tmp_path):
    """The MCU emulator; its failsafe (1 s) is long enough that a loaded machine does not trip it
    between a command and the check of its effect. Failsafe tests start their own."""
    emu = start_car_emulator(tmp_path, "--failsafe-ms", "1000")
    yield emu
    emu.stop()


def failsafe_modes(emu) -> list[dict]:
    return [m for m in emu.events("mode") if m["mode"] == "failsafe"]


def make_car(tmp_path: Path, port: str, **overrides) -> SerialCar:
    return SerialCar(video_camera(tmp_path), SerialCarConfig(port=port, **overrides))


def test_commands_round_trip_in_order_with_telemetry(tmp_path, emulator):
    rng = np.random.default_rng(0)
    commands = rng.uniform(-1.2, 1.2, size=(60, 2))  # some outside [-1, 1]: clamped
    commands[-1] = (0.35, 0.6)  # forward last: the wheel speed must follow
    with make_car(tmp_path, emulator.port, include_speed=True) as car:
        applied = np.array([car.write(c) for c in commands])
        np.testing.assert_allclose(applied, np.round(np.clip(commands, -1, 1) * 1000) / 1000, atol=1e-6)
        drives = wait_until(lambda: len(emulator.events("drive")) >= 60 and emulator.events("drive"), what="60 drives")
        got = np.array([[d["steer_milli"], d["throttle_milli"]] for d in drives]) / 1000
        wire = applied * [-1.0, 1.0]  # the wire steers + = right, the policy + = left
        np.testing.assert_allclose(got, wire, atol=1e-6)  # every value arrived, in order
        seqs = [d["seq"] for d in drives]
        assert seqs == sorted(seqs) and len(set(seqs)) == 60
        last = applied[-1]
        telemetry = wait_until(
            lambda: (t := car.telemetry()) is not None and (t.steer_milli, t.throttle_milli) == tuple(np.round(last * [-1000, 1000])) and t,
            what="telemetry with the last applied command",
        )
        assert isinstance(telemetry, Telemetry) and not telemetry.failsafe
        obs = car.read()
        assert obs.image.shape == car.observation_spec.image_shape == (64, 128, 3)  # resized
        wait_until(lambda: car.read().extras["speed"] > 0.1, what="wheel speed from throttle")
        assert car.stats.mcu_errors == {} and car.stats.acks >= 61


def test_heartbeat_when_idle(tmp_path, emulator):
    with make_car(tmp_path, emulator.port, heartbeat_interval_s=0.05):
        beats = wait_until(lambda: len(emulator.events("heartbeat")) >= 8 and emulator.events("heartbeat"), what="heartbeats")
    gaps = np.diff([b["t"] for b in beats[1:]])
    # about every 0.05 s; the bounds only say "paced by the interval" and "well inside the
    # 0.5 s link timeout", so a loaded machine does not fail it
    assert 0.03 < float(np.median(gaps)) < 0.4
    assert not emulator.events("drive")


def test_stop_sends_stop_and_outputs_go_neutral(tmp_path, emulator):
    with make_car(tmp_path, emulator.port) as car:
        car.write(np.array([0.5, 0.4]))
        wait_until(lambda: (t := car.telemetry()) is not None and t.throttle_milli == 400, what="driving")
        car.stop()
        wait_until(lambda: emulator.events("stop"), what="stop at the MCU")
        wait_until(lambda: (t := car.telemetry()) is not None and (t.steer_milli, t.throttle_milli) == (0, 0),
                   what="neutral telemetry")


def test_corrupt_and_replayed_lines_are_rejected_and_counted(emulator):
    port = serial.Serial(emulator.port, 115200, timeout=0.01)
    splitter, errors = LineSplitter(), []

    def collect():
        for line in splitter.feed(port.read(4096)):
            message = decode(line).message
            if isinstance(message, Error):
                errors.append(message)
        return errors

    try:
        port.write(encode(10, Drive(100, 100)))
        corrupt = bytearray(encode(11, Drive(200, 200)))
        corrupt[12] ^= 0x04  # one flipped bit in the payload
        port.write(bytes(corrupt))
        port.write(encode(10, Drive(900, 900)))  # replay of an old sequence number
        port.write(encode(9, Heartbeat()))  # older still
        port.write(encode(12, Heartbeat(), version=3))
        port.write(encode(13, Drive(300, 300)))
        wait_until(lambda: len(collect()) >= 4, what="4 error replies")
        codes = [e.code for e in errors]
        assert codes == [ErrorCode.CHECKSUM, ErrorCode.SEQUENCE, ErrorCode.SEQUENCE, ErrorCode.VERSION]
        assert errors[1].ref_seq == 10 and errors[1].last_good_seq == 10
        drives = wait_until(lambda: len(emulator.events("drive")) >= 2 and emulator.events("drive"), what="drives")
        assert [(d["seq"], d["steer_milli"]) for d in drives] == [(10, 100), (13, 300)]  # only valid ones applied
        rejected = emulator.events("rejected")
        assert [r["code"] for r in rejected] == ["CRC", "SEQ", "SEQ", "VER"]
    finally:
        port.close()


def test_a_restarted_host_resynchronises_its_sequence_numbers(tmp_path):
    """The MCU still remembers the previous host's seq (within its failsafe time): the new host's
    first heartbeat (seq 0) is refused with SEQ, and connect() continues after last_good_seq."""
    emu = start_car_emulator(tmp_path, "--failsafe-ms", "5000")
    try:
        with serial.Serial(emu.port, 115200, timeout=0.01) as previous_host:
            previous_host.write(encode(500, Heartbeat()))
            wait_until(lambda: [b for b in emu.events("heartbeat") if b["seq"] == 500], what="seq 500 accepted")
        with make_car(tmp_path, emu.port) as car:
            # refused with SEQ (once, or twice when the idle heartbeat also went out before the resync)
            assert set(car.stats.mcu_errors) == {"SEQ"} and car.stats.mcu_errors["SEQ"] <= 2
            car.write(np.array([0.1, 0.2]))
            drive = wait_until(lambda: emu.events("drive"), what="drive after resync")[0]
            assert drive["seq"] > 500 and drive["steer_milli"] == -100  # +0.1 = left = -100 on the wire
    finally:
        emu.stop()


def test_mcu_failsafe_engages_when_sender_goes_silent_heartbeats_do_not_renew(tmp_path):
    emulator = start_car_emulator(tmp_path, "--failsafe-ms", "300")
    port = serial.Serial(emulator.port, 115200, timeout=0.01)
    try:
        port.write(encode(1, Drive(500, 600)))
        wait_until(lambda: emulator.events("drive"), what="drive applied")
        seq = [1]

        def beat_until_failsafe():
            seq[0] += 1
            port.write(encode(seq[0], Heartbeat()))  # a careless sender keeps the link alive...
            port.read(4096)
            return [m for m in emulator.events("mode") if m["mode"] == "failsafe"]

        failsafe = wait_until(beat_until_failsafe, timeout_s=5.0, what="MCU failsafe")
        drive_t = emulator.events("drive")[0]["t"]
        beats = [b["t"] for b in emulator.events("heartbeat")]
        # ...but the drive expires after --failsafe-ms 300 (both times are the emulator's own
        # decision times, so the lower bound is exact); heartbeats arrived in between
        assert 0.3 < failsafe[0]["t"] - drive_t < 3.0
        assert any(drive_t < t < failsafe[0]["t"] for t in beats)
    finally:
        port.close()
        emulator.stop()


def test_host_watchdog_stops_before_the_mcu_failsafe(tmp_path):
    emu = start_car_emulator(tmp_path, "--failsafe-ms", "2000")
    try:
        with make_car(tmp_path, emu.port, command_timeout_s=0.1) as car:
            written = time.monotonic()
            car.write(np.array([0.2, 0.5]))
            wait_until(lambda: car.stats.watchdog_stops == 1, what="host watchdog stop")
            assert time.monotonic() - written >= 0.1  # not before command_timeout_s
            stop = wait_until(lambda: emu.events("stop"), what="the stop at the MCU")
            assert stop[0]["t"] >= emu.events("drive")[-1]["t"]  # after the drive it ends
            # counted right after the write, which the MCU may answer first
            wait_until(lambda: car.stats.sent.get("S") == 1, what="the stop counted")
            assert car.stats.sent["S"] == 1  # only the watchdog stopped it, once
            assert not failsafe_modes(emu)  # long before the MCU's 2 s failsafe
    finally:
        emu.stop()


@pytest.mark.slow
def test_sigint_of_the_sender_process_sends_stop(tmp_path, emulator):
    script = tmp_path / "sender.py"
    script.write_text(textwrap.dedent(f"""
        import signal, sys, threading
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even when pytest runs in a background job
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from lnn_hw_testkit import video_camera
        from pathlib import Path
        from lnn_control.runtime.hardware.serial_car import SerialCar, SerialCarConfig
        car = SerialCar(video_camera(Path({str(tmp_path)!r})), SerialCarConfig(port={emulator.port!r}))
        tick = threading.Event()
        with car:
            while True:
                car.read()
                car.write(np.array([0.3, 0.7]))
                tick.wait(0.02)
    """))
    child = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(emulator.events("drive")) >= 5, timeout_s=20, what="child driving")
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert "KeyboardInterrupt" in stderr
    finally:
        if child.poll() is None:
            child.kill()
    stops = wait_until(lambda: emulator.events("stop"), what="stop after SIGINT")
    assert stops[0]["t"] > emulator.events("drive")[-1]["t"]
    assert not failsafe_modes(emulator)


def test_link_loss_raises_and_reconnect_is_bounded(tmp_path, emulator):
    car = make_car(tmp_path, emulator.port, link_timeout_s=0.3)
    car.connect()
    try:
        car.write(np.array([0.1, 0.1]))
        assert car.link_ok()
        emulator.process.kill()
        emulator.process.wait(timeout=5)
        wait_until(lambda: not car.link_ok(), what="link loss noticed")
        with pytest.raises(LinkLostError, match="lost"):
            car.read()
        with pytest.raises(LinkLostError):
            car.write(np.array([0.1, 0.1]))
        with pytest.raises(RobotError, match=r"after 2 attempt\(s\).*attempt 1.*attempt 2"):
            car.reconnect(2, backoff_s=0.01)
        assert not car.is_connected
    finally:
        car.disconnect()


def test_silent_mcu_is_link_loss_and_reconnect_recovers(tmp_path, emulator):
    car = make_car(tmp_path, emulator.port, link_timeout_s=0.3, connect_timeout_s=1.0)
    car.connect()
    try:
        os.kill(emulator.process.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: not car.link_ok(), what="silence noticed")
            with pytest.raises(LinkLostError, match="no reply"):
                car.read()
        finally:
            os.kill(emulator.process.pid, signal.SIGCONT)
        assert car.reconnect(3, backoff_s=0.05) >= 1
        assert car.link_ok()
        # the link is back, the car does not drive by itself: nothing goes out until resume()
        drives_sent = car.stats.sent.get("D", 0)
        assert car.write(np.array([-0.4, 0.2])).tolist() == [0.0, 0.0]
        assert car.stats.sent.get("D", 0) == drives_sent
        assert car.estop_requested() and "link came back" in car.estop_detail()
        car.resume()  # an operator's decision
        car.write(np.array([-0.4, 0.2]))
        wait_until(lambda: any(d["steer_milli"] == 400 for d in emulator.events("drive")), what="drive after resume")
    finally:
        car.disconnect()


def test_a_fault_in_the_io_thread_is_a_lost_link_at_once(tmp_path, emulator, monkeypatch):
    with make_car(tmp_path, emulator.port, link_timeout_s=5.0) as car:

        def corrupt_handler(line):
            raise RuntimeError("injected fault")

        monkeypatch.setattr(car, "_handle", corrupt_handler)  # next line from the MCU kills the thread
        wait_until(lambda: not car.link_ok(), timeout_s=2.0, what="link reported down (long before 5 s)")
        with pytest.raises(LinkLostError, match="I/O thread failed: RuntimeError: injected fault"):
            car.read()
    # leaving the block sent STOP although the link counts as lost: the wire still carried it
    wait_until(lambda: emulator.events("stop"), what="stop at the MCU")


def test_mcu_estop_button_latches_until_reset(tmp_path, emulator):
    with make_car(tmp_path, emulator.port) as car:
        car.write(np.array([0.0, 0.5]))
        assert not car.estop_requested()
        os.kill(emulator.process.pid, signal.SIGUSR1)  # press: the mushroom button stays down
        wait_until(car.estop_requested, what="e-stop in telemetry")
        assert car.telemetry().throttle_milli == 0
        drives_sent = car.stats.sent.get("D", 0)
        # no drive goes out while latched, and the car reports what it does: neutral
        assert car.write(np.array([0.3, 0.5])).tolist() == [0.0, 0.0]
        assert car.stats.sent.get("D", 0) == drives_sent
        with pytest.raises(RobotError, match="refused.*EST"):
            car.reset_estop()  # the button is still down
        os.kill(emulator.process.pid, signal.SIGUSR2)  # twist it free

        def reset_accepted() -> bool:
            try:
                car.reset_estop()
            except RobotError:  # the release signal had not reached the MCU yet
                return False
            return True

        wait_until(reset_accepted, what="reset accepted once the button is up")
        assert set(car.stats.mcu_errors) == {"EST"}
        wait_until(lambda: car.telemetry() is not None and not car.estop_requested(), what="e-stop cleared")
        car.write(np.array([0.0, 0.5]))
        wait_until(lambda: (t := car.telemetry()) is not None and t.throttle_milli == 500, what="driving again")


def test_steering_only_uses_cruise_throttle(tmp_path, emulator):
    with make_car(tmp_path, emulator.port, actions=CarActions.STEERING, cruise_throttle=0.25) as car:
        assert car.action_spec.names == ("steering",)
        np.testing.assert_allclose(car.write(np.array([0.5])), [0.5])
        drive = wait_until(lambda: emulator.events("drive"), what="drive")[0]
        assert (drive["steer_milli"], drive["throttle_milli"]) == (-500, 250)  # +0.5 = left = -500 on the wire
        with pytest.raises(ValueError, match="shape"):
            car.write(np.array([0.5, 0.5]))
        with pytest.raises(ValueError, match="finite"):
            car.write(np.array([np.nan]))


def test_bad_settings_and_missing_port(tmp_path):
    with pytest.raises(ValueError, match="cruise_throttle"):
        SerialCarConfig(port="/dev/x", cruise_throttle=2.0)
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        SerialCarConfig(port="/dev/x", heartbeat_interval_s=1.0, link_timeout_s=0.5)
    with pytest.raises(ValueError, match=r"actions must be one of \['steering', 'steering_throttle'\], got 'throttle'"):
        SerialCarConfig(port="/dev/x", actions="throttle")
    assert SerialCarConfig(port="/dev/x", actions="steering").actions is CarActions.STEERING
    for bad in ({"image_shape": (64,)}, {"image_shape": (0, 128)}, {"image_shape": (64.0, 128)}):
        with pytest.raises(ValueError, match=r"image_shape must be \(height, width\)"):
            SerialCarConfig(port="/dev/x", **bad)
    for name in ("command_timeout_s", "link_timeout_s", "connect_timeout_s"):
        for value in (0.0, float("inf"), float("nan")):
            with pytest.raises(ValueError, match=f"{name} must be finite and > 0 seconds"):
                SerialCarConfig(port="/dev/x", **{name: value})
    for baudrate in (0, -9600, 115200.0):
        with pytest.raises(ValueError, match="baudrate must be a positive int"):
            SerialCarConfig(port="/dev/x", baudrate=baudrate)
    camera = video_camera(tmp_path)
    car = build_hardware_robot(SerialCar, {"port": str(tmp_path / "nope"), "actions": "steering"}, camera, "car.yaml")
    assert isinstance(car, SerialCar) and car.config.actions == CarActions.STEERING
    with pytest.raises(RobotError, match="cannot open serial port"):
        car.connect()
    with pytest.raises(ValueError, match="max_attempts must be an int >= 1, got 0"):
        car.reconnect(0)
    with pytest.raises(ConfigError, match="car.yaml.*baud"):
        build_hardware_robot(SerialCar, {"port": "/dev/x", "baud": 9600}, camera, "car.yaml")


def test_a_sender_repeating_the_last_drive_defeats_the_mcu_failsafe(tmp_path):
    """The hazard SERIAL_PROTOCOL.md describes: repeating D keeps the car driving, so the host
    (SerialCar never repeats; its watchdog and the loop's send S) must stop on its own."""
    emulator = start_car_emulator(tmp_path, "--failsafe-ms", "500")
    port = serial.Serial(emulator.port, 115200, timeout=0.01)
    try:
        seq = [0]

        def repeat_drive():
            seq[0] += 1
            port.write(encode(seq[0], Drive(300, 400)))
            port.read(4096)
            drives = emulator.events("drive")
            return len(drives) >= 2 and drives[-1]["t"] - drives[0]["t"] > 1.1  # > 2x the failsafe time

        wait_until(repeat_drive, timeout_s=10, what="1.1 s of repeated drives")
        assert not failsafe_modes(emulator)
    finally:
        port.close()
        emulator.stop()


def test_emulator_serves_an_existing_port_through_pyserial(tmp_path):
    """--port mode: the emulator opens a pty slave with pyserial; the test is a raw host on the master."""
    import selectors
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    process = subprocess.Popen(
        [sys.executable, "-m", "lnn_control.runtime.emulators.car", "--port", path, "--telemetry-hz", "5"],
        stdout=subprocess.PIPE, text=True,
    )
    selector = selectors.DefaultSelector()
    try:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=20), "emulator did not start"
        assert process.stdout.readline().strip() == f"READY {path}"
        selector.unregister(process.stdout)
        selector.register(master, selectors.EVENT_READ)
        os.write(master, encode(1, Drive(-250, 100)))
        splitter, messages = LineSplitter(), []

        def telemetry_with_the_drive():
            if selector.select(timeout=0.05):
                messages.extend(decode(line).message for line in splitter.feed(os.read(master, 4096)))
            return [m for m in messages if isinstance(m, Telemetry) and m.steer_milli == -250]

        wait_until(telemetry_with_the_drive, what="ack and telemetry from the emulator")
        assert Ack(1) in messages
    finally:
        selector.close()
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        os.close(master)
        os.close(slave)


def test_disconnect_while_driving_sends_stop(tmp_path, emulator):
    """disconnect() without a stop() first (a caller that skips the with block) still leaves the car
    commanded to STOP, not driving on until the MCU's failsafe."""
    car = make_car(tmp_path, emulator.port, command_timeout_s=5.0)  # the host watchdog stays out of it
    car.connect()
    car.write(np.array([0.2, 0.4]))
    drive = wait_until(lambda: emulator.events("drive"), what="drive")[-1]
    assert car.stats.watchdog_stops == 0
    car.disconnect()
    assert car.stats.watchdog_stops == 0 and car.stats.sent.get("S") == 1
    stop = wait_until(lambda: [e for e in emulator.events("stop") if e["t"] > drive["t"]], what="stop at the MCU")[0]
    assert stop["seq"] > drive["seq"]
    assert not [m for m in emulator.events("mode") if m["mode"] == "failsafe"]  # we stopped it, not the MCU
