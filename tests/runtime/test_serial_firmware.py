"""The shipped reference sketch (firmware/rc_car.ino) compiled for the host with a tiny Arduino
shim (stdin/stdout as the UART, a frozen clock) answers the Python side's lines as documented,
reply for reply the same as the MCU emulator (python -m lnn_control.runtime.emulators.car)."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from lnn_control.runtime.emulators.car import CarEmulator
from lnn_control.runtime.hardware.serial_protocol import (
    Ack,
    Drive,
    Error,
    ErrorCode,
    EStopReset,
    Heartbeat,
    LineSplitter,
    Stop,
    crc8,
    decode,
    encode,
)

# any host C++ compiler; the test is skipped only where none is installed
COMPILER = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")

SHIM = r"""
#pragma once
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <cstdint>
#include <cstddef>
#include <unistd.h>
struct Servo { int us = 1500; void attach(int) {} void writeMicroseconds(int v) { us = v; } };
static int g_estop_pin = 1;  // 1 = released (pull-up), 0 = pressed; bytes 0x01 / 0x02 on stdin move it
struct SerialT {
  int pending = -1;
  void begin(unsigned long) {}
  int available() {
    if (pending < 0) {
      unsigned char c;
      if (::read(0, &c, 1) != 1) exit(0);
      if (c == 1 || c == 2) { g_estop_pin = c == 1 ? 0 : 1; return 0; }  // the button: let loop() see it
      pending = c;
    }
    return 1;
  }
  int read() { int c = pending; pending = -1; return c; }
  void write(const char *s) { fputs(s, stdout); fflush(stdout); }
};
static SerialT Serial;
inline unsigned long millis() { return 0; }  // frozen clock: no telemetry, no failsafe
inline int analogRead(int) { return 505; }
inline int digitalRead(int) { return g_estop_pin; }
inline void pinMode(int, int) {}
inline int digitalPinToInterrupt(int p) { return p; }
inline void attachInterrupt(int, void (*)(), int) {}
inline void noInterrupts() {}
inline void interrupts() {}
#define A0 14
#define LOW 0
#define INPUT_PULLUP 2
#define RISING 3
"""


def _signed(body: bytes) -> bytes:
    """A line with a correct CRC around ``body`` (for contents encode() refuses to build)."""
    return b"$" + body + b"*%02X\n" % crc8(body)


def _lower_case_crc_line(first_seq: int) -> bytes:
    """A heartbeat whose CRC has a hex letter, written in lower case (the protocol wants upper)."""
    seq = next(s for s in range(first_seq, first_seq + 100) if not encode(s, Heartbeat())[-3:-1].isdigit())
    line = encode(seq, Heartbeat())
    return line[:-3] + line[-3:-1].lower() + b"\n"


class _Wire:
    """The emulator's side of the UART, kept in memory: collects what it sends."""

    slave_path = "memory"

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data


PRESS, RELEASE = b"\x01", b"\x02"  # the e-stop button, in the shim's input stream


def emulator_replies(lines: bytes) -> bytes:
    """What CarEmulator answers to ``lines`` on a frozen clock (no telemetry, no timers); PRESS /
    RELEASE bytes move its e-stop button between lines, as they move the shim's pin."""
    wire = _Wire()
    emulator = CarEmulator(wire)
    splitter = LineSplitter()
    for byte in lines:
        if bytes([byte]) in (PRESS, RELEASE):
            (emulator.press_estop_button if bytes([byte]) == PRESS else emulator.release_estop_button)()
            emulator.tick(now=0.0, dt=0.0)
            continue
        for line in splitter.feed(bytes([byte])):
            emulator.handle_line(line, now=0.0)
    return bytes(wire.sent)


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    """The sketch built for the host; every compiler warning is an error."""
    if COMPILER is None:
        pytest.skip("needs a host C++ compiler (g++, c++ or clang++) to build the sketch")
    tmp_path = tmp_path_factory.mktemp("sketch")
    source = (resources.files("lnn_control.runtime.hardware") / "firmware" / "rc_car.ino").read_text(encoding="utf-8")
    (tmp_path / "Servo.h").write_text(SHIM)
    (tmp_path / "sketch.cpp").write_text(source)
    (tmp_path / "main.cpp").write_text('#include "sketch.cpp"\nint main() { setup(); for (;;) loop(); }\n')
    binary = tmp_path / "sketch"
    build = subprocess.run(
        [COMPILER, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), str(tmp_path / "main.cpp"),
         "-o", str(binary)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return binary


def sketch_replies(binary, lines: bytes) -> bytes:
    return subprocess.run([str(binary)], input=lines, capture_output=True, timeout=10, check=True).stdout


def test_a_compiler_is_found_where_one_is_installed():
    """The skip above is real: on a machine with g++ (CI) the sketch test runs."""
    if Path("/usr/bin/g++").exists() or Path("/usr/bin/c++").exists():
        assert COMPILER is not None


def test_reference_sketch_speaks_the_protocol(sketch):
    corrupt = bytearray(encode(7, Stop()))
    corrupt[9] ^= 0x01  # S -> R: a valid type, only the CRC can tell
    lines = b"".join([
        encode(5, Drive(250, -300)),
        encode(6, Heartbeat()),
        encode(6, Stop()),  # replayed sequence number
        bytes(corrupt),
        encode(8, Heartbeat(), version=2),
        encode(9, Drive(1000, 1000)),
        _signed(b"LNC,1,10,D,1001,0"),  # Drive() refuses to build it: signed by hand
        encode(11, Stop()),
    ])
    replies = [decode(line) for line in sketch_replies(sketch, lines).splitlines(keepends=True)]
    assert [p.seq for p in replies] == list(range(len(replies)))
    assert [p.message for p in replies] == [
        Ack(5),
        Ack(6),
        Error(ErrorCode.SEQUENCE, 6, 6),
        Error(ErrorCode.CHECKSUM, -1, 6),
        Error(ErrorCode.VERSION, -1, 6),
        Ack(9),
        Error(ErrorCode.RANGE, 10, 9),
        Ack(11),
    ]


def test_sketch_and_emulator_answer_malformed_lines_alike(sketch):
    """Both MCU implementations are strict in the same way and name the same ref_seq."""
    lines = b"".join([
        encode(20, Heartbeat()),
        _signed(b"LNC,1,0021,H"),  # leading zeros are still a decimal number: accepted
        _signed(b"LNC,1,3,D,1001,0"),  # stale and out of range: the sequence check comes first
        _signed(b"LNC,1,22,D,+5,0"),  # '+' is not part of the number syntax
        _signed(b"LNC,1,23,H,"),  # a trailing comma is an extra (empty) field
        _signed(b"LNC,1,24,DD,1,1"),  # unknown type, seq readable
        _signed(b"LNC,1,25,D,1"),  # too few fields
        _signed(b"LNC,1,70000,H"),  # seq out of range: unreadable
        _signed(b"LNC,1,26,D,99999999999,0"),  # huge value: out of range, no overflow
        encode(27, Ack(3)),  # an MCU message sent to the MCU
        _lower_case_crc_line(28),
        b"$" + b"1" * 100 + b"\n",  # overlong: dropped without a reply by both
        b"$LNC,1,40,H\n",  # no checksum
        encode(41, Drive(-1000, 1000)),
    ])
    sketch_out = sketch_replies(sketch, lines)
    emulator_out = emulator_replies(lines)
    assert sketch_out == emulator_out  # byte for byte, sequence numbers and CRCs included
    assert [decode(line).message for line in sketch_out.splitlines(keepends=True)] == [
        Ack(20),
        Ack(21),
        Error(ErrorCode.SEQUENCE, 3, 21),
        Error(ErrorCode.FORMAT, 22, 21),
        Error(ErrorCode.FORMAT, 23, 21),
        Error(ErrorCode.FORMAT, 24, 21),
        Error(ErrorCode.FORMAT, 25, 21),
        Error(ErrorCode.FORMAT, -1, 21),
        Error(ErrorCode.RANGE, 26, 21),
        Error(ErrorCode.FORMAT, 27, 21),
        Error(ErrorCode.FORMAT, -1, 21),
        Error(ErrorCode.FORMAT, -1, 21),
        Ack(41),
    ]


def test_estop_refusals_are_not_accepted_lines_and_a_held_button_refuses_reset(sketch):
    """A drive refused with EST leaves last_good_seq where it was (the protocol document: only
    accepted lines count); an R while the mushroom button is still down is refused with EST."""
    lines = b"".join([
        encode(30, Drive(100, 200)),
        PRESS,
        encode(31, Drive(100, 200)),
        encode(32, EStopReset()),
        RELEASE,
        encode(33, Drive(100, 200)),  # released but still latched: refused
        encode(34, EStopReset()),
        encode(35, Drive(-100, 300)),
    ])
    sketch_out = sketch_replies(sketch, lines)
    assert sketch_out == emulator_replies(lines)  # byte for byte
    assert [decode(line).message for line in sketch_out.splitlines(keepends=True)] == [
        Ack(30),
        Error(ErrorCode.ESTOP, 31, 30),
        Error(ErrorCode.ESTOP, 32, 30),
        Error(ErrorCode.ESTOP, 33, 30),
        Ack(34),
        Ack(35),
    ]
