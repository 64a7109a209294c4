"""LNC line protocol: round trips, checksum, version, sequence order, line splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnn_control.runtime.hardware.serial_protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Ack,
    ChecksumError,
    Drive,
    Error,
    ErrorCode,
    EStopReset,
    FrameFormatError,
    Heartbeat,
    LineSplitter,
    ProtocolError,
    RangeError,
    Stop,
    Telemetry,
    VersionError,
    crc8,
    decode,
    encode,
    seq_is_newer,
)

milli = st.integers(-1000, 1000)
seqs = st.integers(0, 65535)
messages = st.one_of(
    st.builds(Drive, milli, milli),
    st.just(Heartbeat()),
    st.just(Stop()),
    st.just(EStopReset()),
    st.builds(Ack, seqs),
    st.builds(Telemetry, milli, milli, st.integers(-99999, 99999), st.integers(0, 99999), st.integers(0, 255)),
    st.builds(Error, st.sampled_from(list(ErrorCode)), st.integers(-1, 65535), st.integers(-1, 65535)),
)


def test_known_line_and_crc():
    # CRC-8/SMBUS check value for "123456789" is 0xF4
    assert crc8(b"123456789") == 0xF4
    line = encode(7, Drive(250, -1000))
    body = b"LNC,1,7,D,250,-1000"
    assert line == b"$" + body + b"*" + f"{crc8(body):02X}".encode() + b"\n"
    packet = decode(line)
    assert packet.seq == 7 and packet.version == PROTOCOL_VERSION
    assert packet.message == Drive(250, -1000)
    assert packet.message.steering == 0.25 and packet.message.throttle == -1.0
    assert decode(line[:-1] + b"\r\n").message == Drive(250, -1000)


@settings(max_examples=150, deadline=None)
@given(seqs, messages)
def test_round_trip(seq, message):
    line = encode(seq, message)
    assert len(line) <= MAX_LINE_BYTES
    packet = decode(line)
    assert (packet.seq, packet.message) == (seq, message)


@settings(max_examples=200, deadline=None)
@given(seqs, messages, st.data())
def test_any_single_byte_corruption_is_detected(seq, message, data):
    line = bytearray(encode(seq, message))
    index = data.draw(st.integers(0, len(line) - 2))  # every byte but the terminating newline
    new = data.draw(st.integers(0, 255).filter(lambda b: b != line[index]))
    line[index] = new
    with pytest.raises(ProtocolError):
        decode(bytes(line))


def test_checksum_error_type():
    line = bytearray(encode(3, Drive(100, 200)))
    line[line.index(b"100")] = ord("9")
    with pytest.raises(ChecksumError, match="CRC-8 mismatch"):
        decode(bytes(line))


def test_version_mismatch_names_both_versions():
    line = encode(1, Heartbeat(), version=2)
    with pytest.raises(VersionError, match="version 2.*speaks 1") as info:
        decode(line)
    assert info.value.version == 2


@pytest.mark.parametrize(
    "line, match",
    [
        (b"LNC,1,0,H*00\n", "start with"),
        (b"$LNC,1,0,H\n", "end in"),
        (b"$LNC,1,0,H*zz\n", "hex"),
        (b"$" + b"x" * 100 + b"\n", "maximum"),
    ],
)
def test_malformed_lines(line, match):
    with pytest.raises(FrameFormatError, match=match):
        decode(line)


def _signed(body: bytes) -> bytes:
    return b"$" + body + b"*" + f"{crc8(body):02X}".encode() + b"\n"


@pytest.mark.parametrize(
    "body, match",
    [
        (b"LNC,1,0,Q", "unknown message type"),
        (b"LNC,1,0,D,1", "needs 2"),
        (b"LNC,1,0,D,1001,0", "-1000..1000"),
        (b"LNC,1,70000,H", "0..65535"),
        (b"XYZ,1,0,H", "begin"),
        (b"LNC,1,0,D,1.5,0", "decimal integer"),
        (b"LNC,1,0,E,OOPS,1,1", "unknown error code"),
    ],
)
def test_well_signed_but_invalid_lines(body, match):
    with pytest.raises(FrameFormatError, match=match):
        decode(_signed(body))


def test_errors_carry_the_seq_once_it_was_read():
    with pytest.raises(RangeError, match="-1000..1000") as info:
        decode(_signed(b"LNC,1,12,D,0,-1001"))
    assert info.value.seq == 12
    with pytest.raises(FrameFormatError) as info:
        decode(_signed(b"LNC,1,13,D,1"))
    assert info.value.seq == 13 and not isinstance(info.value, RangeError)
    for unreadable in (_signed(b"LNC,1,x,H"), _signed(b"LNC,1,70000,H"), b"$LNC,1,5,H*00\n"):
        with pytest.raises(ProtocolError) as info:
            decode(unreadable)
        assert info.value.seq is None


def test_drive_from_normalized_rounds_and_rejects_bad_values():
    assert Drive.from_normalized(0.1234, -0.9996) == Drive(123, -1000)
    for bad in (float("nan"), 1.01, float("inf")):
        with pytest.raises(ValueError, match="steering"):
            Drive.from_normalized(bad, 0.0)
    with pytest.raises(ValueError, match="seq"):
        encode(65536, Heartbeat())


def test_sequence_order_wraps():
    assert seq_is_newer(1, 0) and seq_is_newer(0, 65535) and seq_is_newer(100, 65500)
    assert not seq_is_newer(5, 5) and not seq_is_newer(4, 5) and not seq_is_newer(65535, 0)


def test_line_splitter_reassembles_and_drops_overlong():
    splitter = LineSplitter()
    a, b = encode(1, Heartbeat()), encode(2, Stop())
    joined = a + b
    got = []
    for i in range(0, len(joined), 5):  # arrives in 5-byte pieces
        got += splitter.feed(joined[i : i + 5])
    assert got == [a, b]
    assert splitter.feed(b"z" * 200) == [] and splitter.overlong == 1
    # the rest of the overlong line is dropped up to its newline; the next line survives intact
    assert splitter.feed(b"more garbage\n" + a) == [a] and splitter.overlong == 1


def test_protocol_document_ships_and_its_example_decodes():
    import re
    from importlib import resources

    text = (resources.files("lnn_control.runtime.hardware") / "SERIAL_PROTOCOL.md").read_text(encoding="utf-8")
    assert f"version {PROTOCOL_VERSION}" in text
    example = re.search(r"^\$LNC,1,7,D,[^\n]*$", text, re.MULTILINE).group(0)
    assert decode(example.encode()) == decode(encode(7, Drive(250, -1000)))
    for code in ErrorCode:
        assert f"`{code.value}`" in text
