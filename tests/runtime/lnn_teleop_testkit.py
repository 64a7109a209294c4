"""Helpers for the teleop tests: a run in a background thread, the writing end of a gamepad FIFO,
and the logged steps with the check that a source switch landed within one control period."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from lnn_hw_testkit import wait_until

from lnn_control.runtime.inputs.evdev_events import EV_SYN, SYN_REPORT, InputEvent
from lnn_control.runtime.inputs.gamepad import GamepadInput
from lnn_control.runtime.logs.runlog import RunLog
from lnn_control.runtime.session import RunResult

STICK = (-32768, 32767)


class Background:
    """Run a teleop / run call in a thread (signal handlers stay with the main thread)."""

    def __init__(self, target, *args, **kwargs) -> None:
        self.result: RunResult | None = None
        self.error: BaseException | None = None

        def body() -> None:
            try:
                self.result = target(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised by join()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 30.0) -> RunResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def steps_of(log: RunLog) -> list[dict]:
    """Per step: timing + the sent command's source and value + the human sample."""
    sent = {m.sequence: m.payload for m in log.topic("/commands/sent")}
    human = {m.sequence: m.payload for m in log.topic("/commands/human")}
    policy = {m.sequence: m.payload for m in log.topic("/commands/policy")}
    names = log.action_names
    out = []
    for message in log.topic("/loop/timing"):
        seq, timing = message.sequence, message.payload
        out.append({
            "step": seq, "wake": timing["wake_time_s"], "slot": timing["slot_time_s"], "write": timing["write_time_s"],
            "state": timing["state"], "source": sent[seq]["source"], "value": sent[seq]["values"][names[0]],
            "human": human.get(seq), "policy": policy.get(seq),
        })
    return out


def switch_delay(steps: list[dict], since: float, when: float, before: str, after: str, period: float) -> float:
    """Check the switch at monotonic time ``when`` on the logged steps: every step between ``since`` and
    ``when`` has source ``before``, every step that woke after ``when`` has ``after`` (the input is polled
    between wake and write); returns the delay from ``when`` to the first ``after`` step's write."""
    settled = [s for s in steps if s["write"] < when and s["wake"] > since]
    changed = [s for s in steps if s["wake"] > when]
    assert settled and changed
    assert {s["source"] for s in settled} == {before}, [(s["step"], s["source"]) for s in settled]
    first = next(s for s in steps if s["write"] > when and s["source"] == after)
    assert all(s["source"] == after for s in changed if s["step"] >= first["step"] and s["wake"] < when + 0.3)
    assert first["step"] <= changed[0]["step"], "a step polled after the switch still had the old source"
    # within one period: the first step after the switch is the next slot (or the one it landed in)
    previous = next(s for s in reversed(steps) if s["step"] < first["step"])
    skipped = round((first["slot"] - previous["slot"]) / period) - 1  # deadline misses skip slots
    assert first["slot"] - when <= period * (1 + skipped) + 1e-6
    return first["write"] - when


def pad_frame(t: float, *events: tuple[int, int, int]) -> bytes:
    records = [InputEvent(t, kind, code, value) for kind, code, value in events]
    return b"".join(r.pack() for r in records) + InputEvent(t, EV_SYN, SYN_REPORT, 0).pack()


class Pad:
    """The writing end of the FIFO: a gamepad's event stream, with the time each frame was applied."""

    def __init__(self, path: Path, reader: GamepadInput) -> None:
        self.reader = reader

        def open_writer() -> int | None:  # ENXIO until the gamepad has opened its end
            try:
                return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return None

        self.fd = int(wait_until(open_writer, timeout_s=20, what="the gamepad to open the FIFO"))
        os.set_blocking(self.fd, True)

    def send(self, *events: tuple[int, int, int]) -> float:
        """Write one frame; returns the monotonic time the gamepad applied it."""
        count = self.reader.bytes_read
        os.write(self.fd, pad_frame(time.time(), *events))
        wait_until(lambda: self.reader.bytes_read > count, what="the frame to be read")
        stamp = self.reader.last_update
        assert stamp is not None
        return stamp

    def close(self) -> None:
        os.close(self.fd)
