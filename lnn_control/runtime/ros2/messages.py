"""The ROS 2 messages we speak, built and parsed with the ``rosbags`` typestore (no ROS install).

Type definitions: :data:`DISTRO` = ROS 2 **Jazzy** (``Stores.ROS2_JAZZY``). Why: Jazzy is the LTS
that ``rmw_zenoh`` targets and the first LTS whose type descriptions carry RIHS01 hashes (Iron
introduced them; Humble has none, so a Humble graph cannot check our key expressions), and it is
the bag format its ``ros2 bag`` writes. The messages used here are identical in Humble, so their
CDR bytes are too; only the hash is Iron+.

Messages (all CDR little-endian with the 4-byte encapsulation header, XCDR1, as ROS 2 sends them):

- ``sensor_msgs/msg/Image``: built as ``rgb8``; parsed from ``rgb8``, ``bgr8`` and ``mono8``
  (row padding via ``step`` allowed) into uint8 RGB ``[H, W, 3]``;
- ``sensor_msgs/msg/CompressedImage``: ``jpeg`` or ``png`` through OpenCV, parsed to RGB;
- ``geometry_msgs/msg/TwistStamped``: :class:`~lnn_control.runtime.ros2.twist.Twist` + stamp;
- ``std_msgs/msg/Float32MultiArray``: a 1-D float32 vector; its one dimension's ``label`` holds
  the component names joined with ``,`` (e.g. ``"steering,throttle"``), size = stride = length;
- ``std_msgs/msg/String``; ``nav_msgs/msg/Odometry`` (parsed only: its twist -> extras).

Stamps: ``builtin_interfaces/Time`` (sec int32, nanosec uint32) <-> integer nanoseconds exactly,
or <-> float seconds (sub-µs rounding for epoch times).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lnn_control.runtime.ros2.twist import Twist

DISTRO = "jazzy"
"""The ROS 2 distribution whose message definitions (and so RIHS01 hashes) we use."""

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
FLOAT32_MULTI_ARRAY = "std_msgs/msg/Float32MultiArray"
STRING = "std_msgs/msg/String"
ODOMETRY = "nav_msgs/msg/Odometry"
IMAGE_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "mono8")
"""``sensor_msgs/Image`` encodings :func:`frame_from_image` reads."""

_NS = 1_000_000_000
_MSGTYPE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/(msg|srv|action)/([A-Za-z][A-Za-z0-9_]*)$")


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags typestore of :data:`DISTRO` (built once, cached)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _check_msgtype(msgtype: str) -> re.Match[str]:
    match = _MSGTYPE.match(msgtype)
    if match is None:
        raise ValueError(f"message type {msgtype!r} is not of the form 'package/msg/Name' (e.g. {TWIST_STAMPED!r})")
    return match


def type_hash(msgtype: str) -> str:
    """RIHS01 type hash (``"RIHS01_" + 64 hex``) of a message type, e.g. ``geometry_msgs/msg/TwistStamped``,
    as ``ros2 topic info -v`` prints it and rmw_zenoh puts into key expressions."""
    _check_msgtype(msgtype)
    store = typestore()
    if msgtype not in store.types:
        raise ValueError(f"message type {msgtype!r} is not in the ROS 2 {DISTRO} typestore")
    return str(store.hash_rihs01(msgtype))


def dds_type_name(msgtype: str) -> str:
    """DDS type name of a ROS 2 type: ``geometry_msgs/msg/TwistStamped`` -> ``geometry_msgs::msg::dds_::TwistStamped_``."""
    package, kind, name = _check_msgtype(msgtype).groups()
    return f"{package}::{kind}::dds_::{name}_"


def to_cdr(message: Any) -> bytes:
    """A typestore message -> CDR bytes (little-endian, with the 4-byte encapsulation header)."""
    return bytes(typestore().serialize_cdr(message, message.__msgtype__))


def from_cdr(data: bytes | memoryview, msgtype: str) -> Any:
    """CDR bytes -> a typestore message of ``msgtype``; ValueError naming the type if they do not parse."""
    store = typestore()
    if msgtype not in store.types:
        raise ValueError(f"message type {msgtype!r} is not in the ROS 2 {DISTRO} typestore")
    try:
        return store.deserialize_cdr(data, msgtype)
    except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds on short / bad payloads
        raise ValueError(f"{len(data)} bytes are not a CDR {msgtype}: {exc}") from None


# -- stamps --------------------------------------------------------------------------------------
def stamp_from_ns(ns: int) -> Any:
    """Integer nanoseconds since the epoch -> ``builtin_interfaces/msg/Time`` (exact)."""
    sec, nanosec = divmod(int(ns), _NS)
    if not -(2**31) <= sec < 2**31:
        raise ValueError(f"time {ns} ns is outside the int32 seconds of builtin_interfaces/Time")
    return typestore().types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def ns_from_stamp(stamp: Any) -> int:
    """``builtin_interfaces/msg/Time`` -> integer nanoseconds (exact)."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def stamp_from_seconds(seconds: float) -> Any:
    """Seconds (float) -> ``builtin_interfaces/msg/Time``, rounded to the nearest nanosecond."""
    return stamp_from_ns(round(float(seconds) * _NS))


def seconds_from_stamp(stamp: Any) -> float:
    """``builtin_interfaces/msg/Time`` -> seconds (float64)."""
    return int(stamp.sec) + int(stamp.nanosec) / _NS


def header(stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/msg/Header`` with the stamp in integer nanoseconds and ``frame_id``."""
    return typestore().types["std_msgs/msg/Header"](stamp=stamp_from_ns(stamp_ns), frame_id=frame_id)


def header_ns(message: Any) -> int:
    """The header stamp of a stamped message, integer nanoseconds."""
    return ns_from_stamp(message.header.stamp)


# -- images --------------------------------------------------------------------------------------
def _rgb_frame(frame: np.ndarray) -> np.ndarray:
    image = np.asarray(frame)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"frame must be uint8 RGB [H, W, 3], got dtype {image.dtype} shape {image.shape}")
    return np.ascontiguousarray(image)


def image_message(frame: np.ndarray, stamp_ns: int, frame_id: str = "camera") -> Any:
    """uint8 RGB ``[H, W, 3]`` -> ``sensor_msgs/msg/Image`` (``rgb8``, step = 3·W, stamp in ns)."""
    image = _rgb_frame(frame)
    height, width = image.shape[:2]
    return typestore().types[IMAGE](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding="rgb8",
        is_bigendian=0, step=3 * width, data=image.reshape(-1),
    )


def frame_from_image(message: Any) -> np.ndarray:
    """``sensor_msgs/msg/Image`` (:data:`IMAGE_ENCODINGS`) -> uint8 RGB ``[H, W, 3]`` (a copy)."""
    encoding = str(message.encoding).lower()
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(encoding)
    if channels is None:
        raise ValueError(f"Image encoding {message.encoding!r} is not supported; supported: {list(IMAGE_ENCODINGS)} "
                         "(or publish sensor_msgs/CompressedImage)")
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = np.asarray(message.data, np.uint8).reshape(-1)
    if height < 1 or width < 1 or step < width * channels or data.size < height * step:
        raise ValueError(f"Image {width}x{height} {encoding} with step {step} holds {data.size} bytes; "
                         f"needs step >= {width * channels} and {height} rows of step bytes")
    pixels = data[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    return np.repeat(pixels, 3, axis=2)


def compressed_image_message(frame: np.ndarray, stamp_ns: int, fmt: Literal["jpeg", "png"] = "jpeg",
                             jpeg_quality: int = 90, frame_id: str = "camera") -> Any:
    """uint8 RGB ``[H, W, 3]`` -> ``sensor_msgs/msg/CompressedImage`` (format ``jpeg`` or ``png``, OpenCV)."""
    from lnn_control.runtime.logs.runlog import encode_image

    if fmt not in ("jpeg", "png"):
        raise ValueError(f"CompressedImage format {fmt!r} is not supported; use 'jpeg' or 'png'")
    data = encode_image(_rgb_frame(frame), fmt, jpeg_quality)
    return typestore().types[COMPRESSED_IMAGE](
        header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8),
    )


def frame_from_compressed(message: Any) -> np.ndarray:
    """``sensor_msgs/msg/CompressedImage`` (JPEG / PNG, any ``format`` string) -> uint8 RGB ``[H, W, 3]``."""
    from lnn_control.runtime.logs.runlog import decode_image

    try:
        return decode_image(np.asarray(message.data, np.uint8).tobytes())
    except ValueError:
        raise ValueError(f"CompressedImage (format {message.format!r}) is not a decodable JPEG/PNG; "
                         "compressedDepth and other transports are not supported") from None


def frame_from_message(message: Any) -> np.ndarray:
    """An ``Image`` or ``CompressedImage`` message -> uint8 RGB ``[H, W, 3]``."""
    if message.__msgtype__ == IMAGE:
        return frame_from_image(message)
    if message.__msgtype__ == COMPRESSED_IMAGE:
        return frame_from_compressed(message)
    raise ValueError(f"{message.__msgtype__} is not a camera message; use {IMAGE} or {COMPRESSED_IMAGE}")


# -- commands and vectors ------------------------------------------------------------------------
def twist_stamped_message(twist: Twist, stamp_ns: int, frame_id: str = "base_link") -> Any:
    """:class:`Twist` (REP-103, m/s, rad/s) + stamp in ns -> ``geometry_msgs/msg/TwistStamped``."""
    types = typestore().types
    vector = types["geometry_msgs/msg/Vector3"]
    return types[TWIST_STAMPED](
        header=header(stamp_ns, frame_id),
        twist=types["geometry_msgs/msg/Twist"](linear=vector(*twist.linear), angular=vector(*twist.angular)),
    )


def twist_from_message(message: Any) -> Twist:
    """``geometry_msgs/msg/TwistStamped`` or ``Twist`` -> :class:`Twist`."""
    twist = message.twist if message.__msgtype__ == TWIST_STAMPED else message
    if twist.__msgtype__ != "geometry_msgs/msg/Twist":
        raise ValueError(f"{message.__msgtype__} is not a Twist; use {TWIST_STAMPED} or geometry_msgs/msg/Twist")
    return Twist((twist.linear.x, twist.linear.y, twist.linear.z), (twist.angular.x, twist.angular.y, twist.angular.z))


def float32_array_message(values: np.ndarray | Sequence[float], names: Sequence[str] = ()) -> Any:
    """1-D float32 vector -> ``std_msgs/msg/Float32MultiArray``; ``names`` (one per value, or none)
    go into the one dimension's label joined by ``,``."""
    data = np.asarray(values, np.float32).reshape(-1)
    if names and len(names) != data.size:
        raise ValueError(f"{len(names)} names {list(names)} for {data.size} values")
    if any("," in name for name in names):
        raise ValueError(f"names {list(names)} must not contain ',' (it separates them in the label)")
    types = typestore().types
    dim = types["std_msgs/msg/MultiArrayDimension"](label=",".join(names), size=data.size, stride=data.size)
    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
    return types[FLOAT32_MULTI_ARRAY](layout=layout, data=data)


def float32_array_values(message: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """``std_msgs/msg/Float32MultiArray`` -> (float32 values [N] after ``data_offset``, names from the
    first dimension's label, or ``()`` when it holds no N comma-separated names)."""
    data = np.asarray(message.data, np.float32).reshape(-1)[int(message.layout.data_offset):].copy()
    names: tuple[str, ...] = ()
    if message.layout.dim:
        label = str(message.layout.dim[0].label)
        parts = tuple(label.split(",")) if label else ()
        names = parts if len(parts) == data.size else ()
    return data, names


def string_message(text: str) -> Any:
    """``std_msgs/msg/String``."""
    return typestore().types[STRING](data=str(text))


def odometry_extras(message: Any) -> dict[str, float]:
    """``nav_msgs/msg/Odometry`` -> observation extras from its body twist (``child_frame_id``,
    REP-103): ``speed`` (= forward ``linear.x``, m/s, the car's extra), ``vx``, ``vy``, ``vz`` (m/s,
    the drone's extras) and ``yaw_rate`` (rad/s, counter-clockwise +)."""
    if message.__msgtype__ != ODOMETRY:
        raise ValueError(f"{message.__msgtype__} is not {ODOMETRY}")
    linear, angular = message.twist.twist.linear, message.twist.twist.angular
    return {"speed": float(linear.x), "vx": float(linear.x), "vy": float(linear.y), "vz": float(linear.z),
            "yaw_rate": float(angular.z)}
