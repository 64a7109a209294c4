"""The shipped reference sketch (firmware/rc_car.ino) compiled for the host with a tiny Arduino
shim (stdin/stdout as the UART, a frozen clock) answers the Python side's lines as documented."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import pytest

from lnn_control.runtime.serial_protocol import (
    Ack,
    Drive,
    Error,
    ErrorCode,
    Heartbeat,
    Stop,
    crc8,
    decode,
    encode,
)

SHIM = r"""
#pragma once
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <cstdint>
#include <cstddef>
#include <unistd.h>
struct Servo { int us = 1500; void attach(int) {} void writeMicroseconds(int v) { us = v; } };
struct SerialT {
  int pending = -1;
  void begin(unsigned long) {}
  int available() { if (pending < 0) { unsigned char c; if (::read(0, &c, 1) == 1) pending = c; else exit(0); } return 1; }
  int read() { int c = pending; pending = -1; return c; }
  void write(const char *s) { fputs(s, stdout); fflush(stdout); }
};
static SerialT Serial;
inline unsigned long millis() { return 0; }  // frozen clock: no telemetry, no failsafe
inline int analogRead(int) { return 505; }
inline int digitalRead(int) { return 1; }    // e-stop button released
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


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler (g++) for the host build")
def test_reference_sketch_speaks_the_protocol(tmp_path):
    sketch = (resources.files("lnn_control.runtime") / "firmware" / "rc_car.ino").read_text(encoding="utf-8")
    (tmp_path / "Servo.h").write_text(SHIM)
    (tmp_path / "sketch.cpp").write_text(sketch)
    (tmp_path / "main.cpp").write_text('#include "sketch.cpp"\nint main() { setup(); for (;;) loop(); }\n')
    binary = tmp_path / "sketch"
    build = subprocess.run(
        ["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), str(tmp_path / "main.cpp"),
         "-o", str(binary)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    corrupt = bytearray(encode(7, Stop()))
    corrupt[9] ^= 0x01  # S -> R: a valid type, only the CRC can tell
    out_of_range = b"LNC,1,10,D,1001,0"  # Drive() refuses to build it: sign it by hand
    lines = b"".join([
        encode(5, Drive(250, -300)),
        encode(6, Heartbeat()),
        encode(6, Stop()),  # replayed sequence number
        bytes(corrupt),
        encode(8, Heartbeat(), version=2),
        encode(9, Drive(1000, 1000)),
        b"$" + out_of_range + b"*%02X\n" % crc8(out_of_range),
        encode(11, Stop()),
    ])
    out = subprocess.run([str(binary)], input=lines, capture_output=True, timeout=10).stdout
    replies = [decode(line) for line in out.splitlines(keepends=True)]
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
