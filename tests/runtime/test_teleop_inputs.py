"""Human input devices on real parts: the evdev event stream parsed from recorded bytes, a gamepad
through a FIFO carrying those bytes, the keyboard through a real pseudo-terminal, and the launch
file's teleop mapping validated strictly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from lnn_hw_testkit import wait_until

from lnn_control.config import ConfigError
from lnn_control.runtime.core.arbiter import InputDeviceError, InputLostError
from lnn_control.runtime.inputs.config import AxisBinding, GamepadConfig, KeyboardConfig
from lnn_control.runtime.inputs.evdev_events import (
    ABS_CODES,
    BUTTON_CODES,
    EV_ABS,
    EV_KEY,
    EV_SYN,
    INPUT_EVENT,
    SYN_DROPPED,
    SYN_REPORT,
    EventParser,
    InputEvent,
    PadState,
)
from lnn_control.runtime.inputs.gamepad import GamepadInput
from lnn_control.runtime.inputs.keyboard import KeyboardInput, KeyDecoder
from lnn_control.runtime.inputs.mapping import resolve_axes, resolve_keys
from lnn_control.runtime.launch import load_launch
from lnn_control.spec import ActionSpec

CAR = ActionSpec(("steering", "throttle"), (-1.0, -1.0), (1.0, 1.0), ("normalized", "normalized"))
DRONE = ActionSpec(("vx", "vy", "vz", "yaw_rate"), (-2.0, -1.0, -1.0, -1.0), (2.0, 1.0, 1.0, 1.0),
                   ("m/s", "m/s", "m/s", "rad/s"))
STICK = (-32768, 32767)
X, RY, TL, TR, EAST = ABS_CODES["ABS_X"], ABS_CODES["ABS_RY"], BUTTON_CODES["BTN_TL"], BUTTON_CODES["BTN_TR"], BUTTON_CODES["BTN_EAST"]


def frame(t: float, *events: tuple[int, int, int]) -> bytes:
    """The bytes a kernel writes for one evdev frame: the events, then SYN_REPORT."""
    records = [InputEvent(t, kind, code, value) for kind, code, value in events]
    records.append(InputEvent(t, EV_SYN, SYN_REPORT, 0))
    return b"".join(r.pack() for r in records)


# A recording of an Xbox pad (xpad driver layout): left stick pushed right, LB pressed, stick back, LB
# released. struct input_event = (sec, usec, type, code, value) in the native layout.
FRAMES = [
    frame(100.000, (EV_ABS, X, 16384), (EV_ABS, RY, -32768)),
    frame(100.010, (EV_KEY, TL, 1)),
    frame(100.020, (EV_KEY, TL, 2)),  # autorepeat: no change
    frame(100.030, (EV_ABS, X, 0)),
    frame(100.040, (EV_KEY, TL, 0)),
]
RECORDING = b"".join(FRAMES)


# ------------------------------------------------------------------ evdev stream parsing
def test_recorded_event_bytes_parse_into_frames_even_when_split_anywhere() -> None:
    assert INPUT_EVENT.size == 24  # 64-bit Linux: two longs, two u16, one s32
    whole = EventParser().feed(RECORDING)
    assert len(whole) == 11 and whole[0] == InputEvent(100.0, EV_ABS, X, 16384)
    assert whole[2] == InputEvent(100.0, EV_SYN, SYN_REPORT, 0)
    parser = EventParser()
    pieces = [RECORDING[i : i + 7] for i in range(0, len(RECORDING), 7)]  # records split mid-way
    split = [event for piece in pieces for event in parser.feed(piece)]
    assert split == whole and parser.pending_bytes == 0
    assert EventParser().feed(RECORDING[:30]) == whole[:1]  # a partial record waits for its tail

    state = PadState()
    steps = []
    for event in whole:
        state.apply([event])
        steps.append(state.snapshot())
    # nothing is visible until the frame's SYN_REPORT arrives
    assert steps[0].axes == {} and steps[2].axes == {X: 16384, RY: -32768}
    after_press, after_repeat, after_release = steps[4], steps[6], steps[10]
    assert TL in after_press.pressed and TL in after_repeat.pressed
    assert after_release.pressed == frozenset() and after_release.axes[X] == 0 and after_release.frames == 5


def test_syn_dropped_discards_the_partial_frame_and_releases_buttons_without_resync() -> None:
    state = PadState()
    state.apply(EventParser().feed(frame(1.0, (EV_KEY, TL, 1), (EV_ABS, X, 100))))
    dropped = InputEvent(1.1, EV_SYN, SYN_DROPPED, 0).pack() + InputEvent(1.1, EV_ABS, X, 999).pack()
    state.apply(EventParser().feed(dropped + frame(1.2, (EV_ABS, X, 555))))
    snap = state.snapshot()
    assert snap.dropped == 1 and snap.pressed == frozenset()  # dead-man let go: the safe side
    assert snap.axes[X] == 100  # the frame after the drop is discarded up to its SYN_REPORT

    resynced = PadState(resync=lambda: ({X: 4242}, [TL]))
    resynced.apply(EventParser().feed(dropped + frame(1.2)))
    assert resynced.snapshot().axes[X] == 4242 and resynced.snapshot().pressed == {TL}


def test_event_codes_are_the_kernels() -> None:
    ecodes = pytest.importorskip("evdev.ecodes")
    for name, code in {**ABS_CODES, **BUTTON_CODES}.items():
        assert getattr(ecodes, name) == code, name
    assert (ecodes.EV_SYN, ecodes.EV_KEY, ecodes.EV_ABS, ecodes.SYN_DROPPED) == (EV_SYN, EV_KEY, EV_ABS, SYN_DROPPED)


def _uinput_usable() -> str | None:
    if not os.path.exists("/dev/uinput"):
        return "/dev/uinput does not exist on this machine (no uinput module / not exposed to the container)"
    if not os.access("/dev/uinput", os.W_OK):
        return "/dev/uinput is not writable by this user"
    return None


@pytest.mark.skipif(_uinput_usable() is not None, reason=str(_uinput_usable()))
def test_virtual_gamepad_through_uinput() -> None:
    pytest.importorskip("evdev")
    from evdev import AbsInfo, UInput
    from evdev import ecodes as e

    stick = AbsInfo(value=0, min=-32768, max=32767, fuzz=16, flat=128, resolution=0)
    caps = {e.EV_KEY: [e.BTN_SOUTH, e.BTN_EAST, e.BTN_TL, e.BTN_TR, e.BTN_START],
            e.EV_ABS: [(e.ABS_X, stick), (e.ABS_Y, stick), (e.ABS_RX, stick), (e.ABS_RY, stick)]}
    with UInput(caps, name="lnn-control test pad") as pad:
        time.sleep(0.3)  # udev creates the node
        gamepad = GamepadInput(GamepadConfig(device=pad.device.path))
        gamepad.open()
        try:
            gamepad.bind(CAR, np.zeros(2))
            pad.write(e.EV_ABS, e.ABS_X, -32768)
            pad.write(e.EV_KEY, e.BTN_TL, 1)
            pad.syn()
            command = wait_until(lambda: (c := gamepad.poll(time.monotonic(), None)).deadman and c, what="LB held")
            assert command.values[0] == pytest.approx(1.0)  # stick full left = steer left (+)
        finally:
            gamepad.close()


# ------------------------------------------------------------------ mapping
def test_xbox_mapping_binds_car_and_drone_actions_with_flu_signs() -> None:
    car = resolve_axes(GamepadConfig(), CAR, {X: STICK, RY: STICK})
    assert [(a.action, a.binding.code) for a in car] == [("steering", "ABS_X"), ("throttle", "ABS_RY")]
    steering, throttle = car
    assert steering.value(-32768) == pytest.approx(1.0)  # stick left => steer left (+, FLU)
    assert steering.value(32767) == pytest.approx(-1.0)
    assert steering.value(2000) == 0.0  # inside the 10 % dead zone
    assert steering.value(None) == 0.0  # never reported: rest
    assert throttle.value(-32768) == pytest.approx(1.0)  # stick up (negative raw) => forward
    drone = resolve_axes(GamepadConfig(), DRONE, {c: STICK for c in ABS_CODES.values()})
    assert [a.binding.code for a in drone] == ["ABS_RY", "ABS_RX", "ABS_Y", "ABS_X"]  # RC mode 2
    assert drone[0].value(-32768) == pytest.approx(2.0)  # vx full forward = the action's bound
    trigger = resolve_axes(
        GamepadConfig(mapping="none", axes={"steering": AxisBinding("ABS_X"),
                                            "throttle": AxisBinding("ABS_RZ", kind="trigger", scale=0.5,
                                                                    range=(0, 1023))}),
        CAR, {X: STICK},
    )[1]
    assert trigger.value(0) == 0.0 and trigger.value(1023) == pytest.approx(0.5)


def test_keyboard_keys_default_by_action_name() -> None:
    assert resolve_keys(KeyboardConfig(), CAR) == {"a": (0, 1.0), "d": (0, -1.0), "w": (1, 1.0), "s": (1, -1.0)}
    drone = resolve_keys(KeyboardConfig(), DRONE)
    assert drone["w"] == (0, 1.0) and drone["a"] == (1, 1.0) and drone["r"] == (2, 1.0) and drone["j"] == (3, 1.0)
    generic = ActionSpec(("action_0", "action_1"), (-1.0, -1.0), (1.0, 1.0), ("", ""))
    assert set(resolve_keys(KeyboardConfig(), generic)) == {"w", "s", "a", "d"}
    custom = resolve_keys(KeyboardConfig(axes={"steering": ("left", "right")}), CAR)
    assert custom["a"] == (0, 1.0)  # arrows are aliases of w s a d


def _launch(tmp_path: Path, teleop: dict) -> Path:
    data = {"policy": "lane_keeping_ncp19", "rate_hz": 20, "watchdog": {"max_frame_age_s": 0.1},
            "robot": {"kind": "sim", "sim": {"env_id": "lnn_control/LaneKeeping-v0"}}, "teleop": teleop}
    path = tmp_path / "launch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("teleop", "names"),
    [
        ({"gamepad": {"deadman": "BTN_FOO"}}, ["teleop.gamepad.deadman", "'BTN_FOO'", "BTN_TL"]),
        ({"gamepad": {"takeover": "BTN_TL"}}, ["teleop.gamepad.takeover", "teleop.gamepad.deadman"]),
        ({"gamepad": {"axes": {"steering": {"code": "ABS_Q"}}}}, ["teleop.gamepad.axes.steering.code", "ABS_X"]),
        ({"gamepad": {"axes": {"steering": {"code": "ABS_X", "deadzone": 0.7}}}},
         ["teleop.gamepad.axes.steering.deadzone", "[0, 0.5)"]),
        ({"gamepad": {"axes": {"steering": {"code": "ABS_X", "gain": 2}}}},
         ["unknown key(s) ['gain']", "teleop.gamepad.axes.steering"]),
        ({"gamepad": {"mapping": "ps5"}}, ["teleop.gamepad.mapping", "xbox"]),
        ({"gamepad": {"dead_man": "BTN_TL"}}, ["unknown key(s) ['dead_man']", "teleop.gamepad"]),
        ({"keyboard": {"axes": {"steering": ["q", "d"]}}}, ["teleop.keyboard.axes.steering[0]", "quit"]),
        ({"keyboard": {"axes": {"steering": ["a", "a"]}}}, ["teleop.keyboard.axes.steering[1]", "already bound"]),
        ({"keyboard": {"hold_s": 0}}, ["teleop.keyboard.hold_s", "0.05 to 5 s"]),
    ],
)
def test_launch_file_teleop_errors_name_the_key(tmp_path: Path, teleop: dict, names: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        load_launch(_launch(tmp_path, teleop))
    message = str(error.value)
    assert str(tmp_path / "launch.yaml") in message
    for name in names:
        assert name in message


def test_binding_errors_name_the_key_and_the_robots_actions() -> None:
    with pytest.raises(ValueError, match=r"teleop.gamepad.axes names \['speed'\].*\['steering', 'throttle'\]"):
        resolve_axes(GamepadConfig(axes={"speed": AxisBinding("ABS_Z")}), CAR, {X: STICK, RY: STICK})
    generic = ActionSpec(("action_0",), (-1.0,), (1.0,), ("",))
    with pytest.raises(ValueError, match=r"action 'action_0' has no gamepad axis.*teleop.gamepad.axes.action_0"):
        resolve_axes(GamepadConfig(), generic, {X: STICK})
    with pytest.raises(ValueError, match=r"teleop.gamepad.axes.throttle: the device reports no range for ABS_RY"):
        resolve_axes(GamepadConfig(), CAR, {X: STICK})
    same = GamepadConfig(axes={"throttle": AxisBinding("ABS_X")})
    with pytest.raises(ValueError, match=r"teleop.gamepad.axes.throttle.code is ABS_X, already driving action 'steering'"):
        resolve_axes(same, CAR, {X: STICK})
    with pytest.raises(ValueError, match=r"key 'a' would drive both 'steering' and 'throttle'"):
        resolve_keys(KeyboardConfig(axes={"throttle": ("a", "z")}), CAR)


# ------------------------------------------------------------------ gamepad through a FIFO
def test_gamepad_reads_recorded_bytes_from_a_fifo_and_reports_a_lost_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "pad.fifo"
    os.mkfifo(fifo)
    axes = {"steering": AxisBinding("ABS_X", invert=True, range=STICK),
            "throttle": AxisBinding("ABS_RY", invert=True, range=STICK)}
    pad = GamepadInput(GamepadConfig(device=str(fifo), axes=axes))
    pad.open()
    try:
        pad.bind(CAR, np.zeros(2))
        first = pad.poll(time.monotonic(), None)
        assert not first.deadman and not first.takeover and first.values.tolist() == [0.0, 0.0]
        writer = os.open(fifo, os.O_WRONLY)
        os.write(writer, FRAMES[0] + FRAMES[1])  # stick half right + full up, then LB down
        held = wait_until(lambda: (c := pad.poll(time.monotonic(), None)).deadman and c, what="LB held")
        assert held.values[0] == pytest.approx(-(0.5 - 0.1) / 0.9, abs=1e-3)  # half right => steer right
        assert held.values[1] == pytest.approx(1.0) and not held.takeover and not held.estop
        os.write(writer, b"".join(FRAMES[2:]))
        released = wait_until(lambda: not (c := pad.poll(time.monotonic(), None)).deadman and c, what="LB up")
        assert released.values[0] == 0.0
        os.write(writer, frame(101.0, (EV_KEY, EAST, 1), (EV_KEY, TR, 1)))
        both = wait_until(lambda: (c := pad.poll(time.monotonic(), None)).takeover and c, what="RB held")
        assert both.estop and pad.last_update is not None
        os.close(writer)  # the stream ends: the pad is gone

        def lost() -> bool:
            try:
                pad.poll(time.monotonic(), None)
            except InputLostError as exc:
                return "the event stream ended" in str(exc)
            return False

        wait_until(lost, what="the lost stream to be reported")
    finally:
        pad.close()


def test_gamepad_refuses_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "pad.bin"
    path.write_bytes(RECORDING)
    with pytest.raises(InputDeviceError, match="neither an input device nor a FIFO"):
        GamepadInput(GamepadConfig(device=str(path))).open()


# ------------------------------------------------------------------ keyboard through a pty
def test_key_decoder_handles_arrows_split_across_reads() -> None:
    decoder = KeyDecoder()
    assert decoder.feed(b"aW\x1b[") == ["a", "w"]
    assert decoder.feed(b"D\x1bOA\x03") == ["left", "up", "ctrl-c"]
    assert decoder.feed(b"\x1b[1;5C x\xc3\xa9") == [" ", "x"]  # ctrl+right and UTF-8 dropped
    assert decoder.feed(b"\x1b") == [] and decoder.feed(b"q") == ["esc", "q"]


@pytest.fixture
def terminal():
    """A real pseudo-terminal: (master fd the test types into, slave fd the keyboard reads)."""
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def test_keyboard_on_a_pty_steps_holds_and_releases(terminal) -> None:
    import termios

    master, slave = terminal
    before = termios.tcgetattr(slave)
    keyboard = KeyboardInput(KeyboardConfig(step=0.1, hold_s=0.2), fd=slave)
    keyboard.open()
    try:
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # key at a time
        keyboard.bind(CAR, np.zeros(2))
        os.write(master, b"aa\x1b[A")  # steer left twice, throttle up once (arrow)
        wait_until(lambda: keyboard.keys_seen == 3, what="three keys")
        held = keyboard.poll(time.monotonic(), None)
        assert held.deadman and not held.takeover and held.values == pytest.approx([0.2, 0.1])  # teleop
        typed = time.monotonic()
        os.write(master, b"h")  # hold: no change
        wait_until(lambda: keyboard.keys_seen == 4, what="the hold key")
        assert keyboard.poll(time.monotonic(), None).values == pytest.approx([0.2, 0.1])
        wait_until(lambda: time.monotonic() > typed + 0.25, what="the hold window")
        released = keyboard.poll(time.monotonic(), None)
        assert not released.deadman and released.values.tolist() == [0.0, 0.0]  # back to neutral
        # a press after a release starts from the command the robot last got (takeover: no jump)
        os.write(master, b"d")
        wait_until(lambda: keyboard.keys_seen == 5, what="d")
        resumed = keyboard.poll(time.monotonic(), np.array([0.5, 0.3], np.float32))
        assert resumed.values == pytest.approx([0.4, 0.3])
        os.write(master, b" ")
        wait_until(lambda: keyboard.keys_seen == 6, what="space")
        stopped = keyboard.poll(time.monotonic(), None)
        assert not stopped.deadman and not stopped.estop and stopped.values.tolist() == [0.0, 0.0]
        os.write(master, b"eq")
        wait_until(lambda: keyboard.keys_seen == 8, what="e q")
        last = keyboard.poll(time.monotonic(), None)
        assert last.estop and last.quit
    finally:
        keyboard.close()
    assert termios.tcgetattr(slave) == before  # the terminal is restored


def test_keyboard_takeover_mode_reports_takeover_and_space_latches_the_estop(terminal) -> None:
    master, slave = terminal
    keyboard = KeyboardInput(KeyboardConfig(), fd=slave, takeover_mode=True)
    keyboard.open()
    try:
        keyboard.bind(CAR, np.zeros(2))
        os.write(master, b"a")
        wait_until(lambda: keyboard.keys_seen == 1, what="a")
        taking_over = keyboard.poll(time.monotonic(), None)
        assert taking_over.takeover and taking_over.deadman
        os.write(master, b" ")
        wait_until(lambda: keyboard.keys_seen == 2, what="space")
        stopped = keyboard.poll(time.monotonic(), None)
        assert stopped.estop and not stopped.takeover
    finally:
        keyboard.close()


def test_keyboard_needs_a_terminal() -> None:
    read, write = os.pipe()
    try:
        with pytest.raises(InputDeviceError, match="not one: run lnn-control in a terminal"):
            KeyboardInput(fd=read).open()
    finally:
        os.close(read)
        os.close(write)


def test_keyboard_reader_survives_a_terminal_that_hangs_up() -> None:
    master, slave = os.openpty()
    keyboard = KeyboardInput(KeyboardConfig(hold_s=0.1), fd=slave)
    keyboard.open()
    try:
        keyboard.bind(CAR, np.zeros(2))
        os.write(master, b"a")
        wait_until(lambda: keyboard.keys_seen == 1, what="a")
        os.close(master)  # the SSH session dropped
        reader = keyboard._thread
        assert reader is not None
        wait_until(lambda: not reader.is_alive(), what="the reader to end")
        time.sleep(0.15)
        assert not keyboard.poll(time.monotonic(), None).deadman  # no keys => released => stop
    finally:
        keyboard.close()
        os.close(slave)
