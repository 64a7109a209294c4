"""ROS 2 messages (CDR bytes, RIHS01 hashes, DDS names) and the action <-> Twist mapping."""

from __future__ import annotations

import inspect
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnn_control.runtime.ros2 import messages as m
from lnn_control.runtime.ros2.twist import (
    CarTwistConfig,
    Twist,
    action_from_twist,
    check_action_spec,
    twist_from_action,
    vehicle_of,
)
from lnn_control.spec import ActionFrame, ActionSpec

# Published values, as `ros2 topic info -v` prints them on Jazzy+ (found in several independent
# public sources: ROS 2 CLI output, rmw_zenoh key expressions of other clients, a Rust hash test).
TWIST_STAMPED_RIHS01 = "RIHS01_5f0fcd4f81d5d06ad9b4c4c63e3ea51b82d6ae4d0558f1d475229b1121db6f64"
STRING_RIHS01 = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
CDR_LE = b"\x00\x01\x00\x00"  # encapsulation header: CDR, little-endian


def _cdr_string(text: str, offset: int) -> tuple[bytes, int]:
    """XCDR1 string at ``offset`` (bytes after the encapsulation header): 4-aligned uint32 length
    counting the NUL, the bytes, the NUL."""
    pad = b"\x00" * (-offset % 4)
    raw = text.encode() + b"\x00"
    out = pad + struct.pack("<I", len(raw)) + raw
    return out, offset + len(out)


def _cdr_header(sec: int, nanosec: int, frame_id: str) -> tuple[bytes, int]:
    body = struct.pack("<iI", sec, nanosec)
    text, offset = _cdr_string(frame_id, len(body))
    return body + text, offset


# -- golden bytes --------------------------------------------------------------------------------
def test_twist_stamped_cdr_matches_hand_encoded_xcdr1() -> None:
    twist = Twist((0.5, -0.25, 1.0), (0.0, 0.125, -2.0))
    stamp_ns = 1_700_000_123 * 1_000_000_000 + 456_789
    ours = m.to_cdr(m.twist_stamped_message(twist, stamp_ns, "base_link"))
    head, offset = _cdr_header(1_700_000_123, 456_789, "base_link")
    expected = CDR_LE + head + b"\x00" * (-offset % 8) + struct.pack("<6d", 0.5, -0.25, 1.0, 0.0, 0.125, -2.0)
    assert ours == expected
    parsed = m.from_cdr(ours, m.TWIST_STAMPED)
    assert m.twist_from_message(parsed) == twist and m.header_ns(parsed) == stamp_ns
    assert parsed.header.frame_id == "base_link"


def test_float32_array_and_string_cdr_match_hand_encoded() -> None:
    ours = m.to_cdr(m.float32_array_message([0.25, -1.5], ("steering", "throttle")))
    label, offset = _cdr_string("steering,throttle", 4)
    body = struct.pack("<I", 1) + label  # dim: sequence of 1 MultiArrayDimension
    body += b"\x00" * (-offset % 4) + struct.pack("<II", 2, 2)  # size, stride: 4-aligned
    body += struct.pack("<I", 0)  # data_offset
    body += struct.pack("<I2f", 2, 0.25, -1.5)
    assert ours == CDR_LE + body
    assert m.to_cdr(m.string_message("human")) == CDR_LE + struct.pack("<I", 6) + b"human\x00"


def test_our_messages_equal_rosbags_serialization_of_the_same_message() -> None:
    """Build the same messages directly with rosbags' classes and compare bytes."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    stamp = t["builtin_interfaces/msg/Time"](sec=12, nanosec=345)
    head = t["std_msgs/msg/Header"](stamp=stamp, frame_id="camera")
    direct = t["sensor_msgs/msg/Image"](header=head, height=6, width=10, encoding="rgb8", is_bigendian=0,
                                        step=30, data=frame.reshape(-1))
    ours = m.to_cdr(m.image_message(frame, 12 * 1_000_000_000 + 345, "camera"))
    assert ours == bytes(store.serialize_cdr(direct, "sensor_msgs/msg/Image"))
    v3 = t["geometry_msgs/msg/Vector3"]
    twist = t["geometry_msgs/msg/Twist"](linear=v3(1.0, 2.0, 3.0), angular=v3(4.0, 5.0, 6.0))
    direct_twist = t["geometry_msgs/msg/TwistStamped"](header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="base_link"),
                                                       twist=twist)
    ours_twist = m.to_cdr(m.twist_stamped_message(Twist((1, 2, 3), (4, 5, 6)), 12 * 1_000_000_000 + 345))
    assert ours_twist == bytes(store.serialize_cdr(direct_twist, "geometry_msgs/msg/TwistStamped"))


def test_type_hashes_and_dds_names() -> None:
    assert m.type_hash(m.TWIST_STAMPED) == TWIST_STAMPED_RIHS01
    assert m.type_hash(m.STRING) == STRING_RIHS01
    for msgtype in (m.IMAGE, m.COMPRESSED_IMAGE, m.FLOAT32_MULTI_ARRAY, m.ODOMETRY):
        assert m.type_hash(msgtype).startswith("RIHS01_") and len(m.type_hash(msgtype)) == 7 + 64
    assert m.dds_type_name(m.TWIST_STAMPED) == "geometry_msgs::msg::dds_::TwistStamped_"
    assert m.dds_type_name(m.IMAGE) == "sensor_msgs::msg::dds_::Image_"
    with pytest.raises(ValueError, match="package/msg/Name"):
        m.dds_type_name("geometry_msgs/TwistStamped")
    with pytest.raises(ValueError, match="not in the ROS 2 jazzy typestore"):
        m.type_hash("no_such_msgs/msg/Thing")


# -- images --------------------------------------------------------------------------------------
def test_image_round_trip_and_encodings() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    parsed = m.from_cdr(m.to_cdr(m.image_message(rgb, 99)), m.IMAGE)
    assert parsed.encoding == "rgb8" and parsed.step == 21 and m.header_ns(parsed) == 99
    assert np.array_equal(m.frame_from_message(parsed), rgb)
    t = m.typestore().types
    head = m.header(0, "cam")
    # bgr8 with 3 bytes of row padding
    bgr = np.concatenate([rgb[:, :, ::-1].reshape(5, 21), np.full((5, 3), 7, np.uint8)], axis=1)
    msg = t[m.IMAGE](header=head, height=5, width=7, encoding="bgr8", is_bigendian=0, step=24, data=bgr.reshape(-1))
    assert np.array_equal(m.frame_from_image(m.from_cdr(m.to_cdr(msg), m.IMAGE)), rgb)
    mono = rgb[:, :, 0].copy()
    msg = t[m.IMAGE](header=head, height=5, width=7, encoding="mono8", is_bigendian=0, step=7, data=mono.reshape(-1))
    assert np.array_equal(m.frame_from_image(msg), np.repeat(mono[:, :, None], 3, axis=2))
    msg = t[m.IMAGE](header=head, height=5, width=7, encoding="16UC1", is_bigendian=0, step=14, data=np.zeros(70, np.uint8))
    with pytest.raises(ValueError, match=r"16UC1.*rgb8"):
        m.frame_from_image(msg)
    msg = t[m.IMAGE](header=head, height=5, width=7, encoding="rgb8", is_bigendian=0, step=21, data=np.zeros(20, np.uint8))
    with pytest.raises(ValueError, match="holds 20 bytes"):
        m.frame_from_image(msg)


def test_compressed_image_png_exact_jpeg_close() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    png = m.from_cdr(m.to_cdr(m.compressed_image_message(rgb, 5, "png")), m.COMPRESSED_IMAGE)
    assert png.format == "png" and np.array_equal(m.frame_from_message(png), rgb)
    smooth = np.broadcast_to(np.linspace(0, 255, 24, dtype=np.uint8)[None, :, None], (16, 24, 3)).copy()
    jpeg = m.compressed_image_message(smooth, 5, "jpeg", jpeg_quality=95)
    assert jpeg.format == "jpeg"
    assert np.abs(m.frame_from_compressed(jpeg).astype(int) - smooth).max() <= 8
    bad = m.typestore().types[m.COMPRESSED_IMAGE](header=m.header(0, ""), format="jpeg", data=np.arange(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="not a decodable"):
        m.frame_from_compressed(bad)


def test_stamps_exact_in_ns_and_seconds() -> None:
    ns = 1_712_345_678_901_234_567
    stamp = m.stamp_from_ns(ns)
    assert (stamp.sec, stamp.nanosec) == (1_712_345_678, 901_234_567) and m.ns_from_stamp(stamp) == ns
    assert m.seconds_from_stamp(m.stamp_from_seconds(100.25)) == 100.25
    negative = m.stamp_from_ns(-1)  # before the epoch: nanosec stays in [0, 1e9)
    assert (negative.sec, negative.nanosec) == (-1, 999_999_999)
    with pytest.raises(ValueError, match="int32"):
        m.stamp_from_ns(2**31 * 1_000_000_000)


def test_float32_array_names_and_odometry_extras() -> None:
    values, names = m.float32_array_values(m.float32_array_message([1.0, 2.0, 3.0]))
    assert values.tolist() == [1.0, 2.0, 3.0] and names == ()
    with pytest.raises(ValueError, match="2 names"):
        m.float32_array_message([1.0], ("a", "b"))
    t = m.typestore().types
    v3 = t["geometry_msgs/msg/Vector3"]
    twist = t["geometry_msgs/msg/TwistWithCovariance"](
        twist=t["geometry_msgs/msg/Twist"](linear=v3(1.5, -0.2, 0.3), angular=v3(0.0, 0.0, 0.7)),
        covariance=np.zeros(36))
    pose = t["geometry_msgs/msg/PoseWithCovariance"](
        pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](0.0, 0.0, 0.0),
                                         orientation=t["geometry_msgs/msg/Quaternion"](0.0, 0.0, 0.0, 1.0)),
        covariance=np.zeros(36))
    odom = t[m.ODOMETRY](header=m.header(0, "odom"), child_frame_id="base_link", pose=pose, twist=twist)
    extras = m.odometry_extras(m.from_cdr(m.to_cdr(odom), m.ODOMETRY))
    assert extras == pytest.approx({"speed": 1.5, "vx": 1.5, "vy": -0.2, "vz": 0.3, "yaw_rate": 0.7})


# -- the Twist mapping ---------------------------------------------------------------------------
def test_car_defaults_are_the_simulator_car() -> None:
    from lnn_control.envs.lane_keeping.car import CarParams
    from lnn_control.envs.lane_keeping.env import LaneKeepingEnv

    car, params = CarTwistConfig(), CarParams()
    assert (car.wheelbase, car.max_steering, car.max_speed) == (params.wheelbase, params.max_steering, params.max_speed)
    assert car.cruise_speed == inspect.signature(LaneKeepingEnv.__init__).parameters["target_speed"].default


def test_car_twist_is_the_bicycle_model_and_left_is_positive() -> None:
    car = CarTwistConfig()
    twist = twist_from_action([1.0], ("steering",), car)
    assert twist.linear == (1.5, 0.0, 0.0)
    assert twist.angular[2] == pytest.approx(1.5 * math.tan(0.4) / 0.30) and twist.angular[2] > 0
    assert twist_from_action([-0.5, 1.0], ("steering", "target_speed")).linear[0] == pytest.approx(3.0)
    assert twist_from_action([0.0, -1.0], ("steering", "target_speed")).linear[0] == 0.0
    assert twist_from_action([0.0, -0.5], ("steering", "throttle")).linear[0] == pytest.approx(-1.5)
    # reversing with left steering: the car's heading turns clockwise (negative yaw rate)
    assert twist_from_action([0.5, -0.5], ("steering", "throttle")).angular[2] < 0


def test_drone_twist_is_one_to_one() -> None:
    twist = twist_from_action([1.0, -0.5, 0.25, -0.75], ("vx", "vy", "vz", "yaw_rate"))
    assert twist == Twist((1.0, -0.5, 0.25), (0.0, 0.0, -0.75))


@settings(max_examples=300, deadline=None)
@given(steering=st.floats(-1.0, 1.0), speed=st.floats(-1.0, 1.0),
       layout=st.sampled_from([("steering", "target_speed"), ("steering", "throttle")]))
def test_car_round_trip(steering: float, speed: float, layout: tuple[str, str]) -> None:
    car = CarTwistConfig()
    action = np.array([steering, speed], np.float32)
    twist = twist_from_action(action, layout, car)
    back = action_from_twist(twist, layout, car)
    assert back[1] == pytest.approx(action[1], abs=1e-6)
    if abs(twist.linear[0]) < car.min_speed:
        assert math.isnan(back[0])  # steering is not observable at (near) standstill
    else:
        assert back[0] == pytest.approx(action[0], abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(steering=st.floats(-1.0, 1.0), cruise=st.floats(0.05, 3.0))
def test_steering_only_round_trip(steering: float, cruise: float) -> None:
    car = CarTwistConfig(cruise_speed=cruise)
    back = action_from_twist(twist_from_action([steering], ("steering",), car), ("steering",), car)
    assert back.shape == (1,) and back[0] == pytest.approx(steering, abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5.0, 5.0, width=32), min_size=4, max_size=4))
def test_drone_round_trip(values: list[float]) -> None:
    names = ("vx", "vy", "vz", "yaw_rate")
    back = action_from_twist(twist_from_action(values, names), names)
    assert back.dtype == np.float32 and back.tolist() == values


def test_inverse_below_min_speed_and_clipping() -> None:
    car = CarTwistConfig()
    back = action_from_twist(Twist((0.01, 0.0, 0.0), (0.0, 0.0, 0.5)), ("steering", "throttle"), car)
    assert math.isnan(back[0]) and back[1] == pytest.approx(0.01 / 3.0)
    # a yaw rate beyond the steering limit clips to full lock; a speed beyond max_speed to 1
    back = action_from_twist(Twist((4.0, 0.0, 0.0), (0.0, 0.0, 100.0)), ("steering", "target_speed"), car)
    assert back.tolist() == [1.0, 1.0]


def test_mapping_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"\['steer'\] have no Twist mapping"):
        vehicle_of(("steer",))
    with pytest.raises(ValueError, match="2 components"):
        twist_from_action([0.1, 0.2], ("steering",))
    with pytest.raises(ValueError, match="not finite"):
        twist_from_action([math.nan], ("steering",))
    with pytest.raises(ValueError, match="cruise_speed"):
        CarTwistConfig(cruise_speed=5.0)
    with pytest.raises(ValueError, match="max_steering"):
        CarTwistConfig(max_steering=2.0)
    flu = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
    assert check_action_spec(flu) == "car"
    with pytest.raises(ValueError, match="frame None"):
        check_action_spec(ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",)))
    with pytest.raises(ValueError, match="units"):
        check_action_spec(ActionSpec(("vx", "vy", "vz", "yaw_rate"), (-1.0,) * 4, (1.0,) * 4, ("m/s",) * 4, ActionFrame.FLU))
