"""The rmw_zenoh message attachment: sequence number, source timestamp and publisher GID.

Every sample an rmw_zenoh publisher puts carries a Zenoh attachment, and every rmw_zenoh
subscription drops a sample without one (``rmw_subscription_data.cpp``: "Unable to obtain
attachment"). Layout (``rmw_zenoh_cpp/src/detail/attachment_helpers.cpp``,
``AttachmentData::serialize_to_zbytes``, through ``zenoh::ext::Serializer``; 33 bytes)::

    int64 LE   sequence_number      # per publisher, starts at 1 (PublisherData constructor)
    int64 LE   source_timestamp     # ns since the Unix epoch, system clock, taken just before put
    LEB128     16                   # std::array<uint8_t, 16> is a zenoh-ext *sequence*: length first
    16 bytes   source_gid           # the publisher's GID (RMW_GID_STORAGE_SIZE = 16 in Jazzy)

(zenoh-cpp ``include/zenoh/api/ext/serialization.hxx``: ``std::array`` goes through
``__serialize_sequence_with_serializer``, i.e. ``ze_serializer_serialize_sequence_length`` then
the elements; integers are little-endian.) Python's ``zenoh.ext.z_serialize((Int64(s), Int64(t),
[UInt8(b) ...]))`` writes the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

GID_SIZE = 16
"""``RMW_GID_STORAGE_SIZE`` in ROS 2 Jazzy and later (``rmw/types.h``)."""
_HEAD = struct.Struct("<qq")


@dataclass(frozen=True)
class Attachment:
    """sequence_number: publisher's message counter (int64); source_timestamp_ns: wall-clock ns
    since the epoch when it was published; gid: the publisher's 16-byte GID."""

    sequence_number: int
    source_timestamp_ns: int
    gid: bytes

    def __post_init__(self) -> None:
        for name in ("sequence_number", "source_timestamp_ns"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
                raise ValueError(f"attachment {name} must be an int64, got {value!r}")
        if not isinstance(self.gid, bytes) or len(self.gid) != GID_SIZE:
            raise ValueError(f"attachment gid must be {GID_SIZE} bytes, got {self.gid!r}")

    def to_bytes(self) -> bytes:
        """The 33 wire bytes (see the module docstring)."""
        return _HEAD.pack(self.sequence_number, self.source_timestamp_ns) + bytes([GID_SIZE]) + self.gid

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Attachment:
        """Parse an rmw_zenoh attachment; ValueError saying what does not fit."""
        raw = bytes(data)
        if len(raw) < _HEAD.size + 1:
            raise ValueError(f"an rmw_zenoh attachment has at least {_HEAD.size + 1} bytes, got {len(raw)}")
        sequence, stamp = _HEAD.unpack_from(raw)
        length, offset = _read_leb128(raw, _HEAD.size)
        if length != GID_SIZE or len(raw) != offset + length:
            raise ValueError(f"attachment gid: sequence length {length} and {len(raw) - offset} bytes left; "
                             f"rmw_zenoh sends {GID_SIZE} (a pre-Jazzy or non-rmw_zenoh publisher?)")
        return cls(sequence, stamp, raw[offset:])


def _read_leb128(data: bytes, offset: int) -> tuple[int, int]:
    """Unsigned LEB128 varint at ``offset`` -> (value, offset after it)."""
    value = shift = 0
    while offset < len(data):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            break
    raise ValueError("attachment: truncated or oversized sequence length (LEB128)")
