"""Golden checks of the rmw_zenoh wire format (no network): key expressions, type hashes, the QoS
string, the message attachment, liveliness tokens and GIDs, against literal values taken from the
rmw_zenoh sources (ros2/rmw_zenoh, rmw_zenoh_cpp/src/detail/*) and from independent implementations."""

from __future__ import annotations

import struct

import pytest
import xxhash

from lnn_control.runtime.ros2 import messages
from lnn_control.runtime.ros2.attachment import Attachment
from lnn_control.runtime.ros2.liveliness import (
    EntityKind,
    NodeInfo,
    TopicInfo,
    entity_gid,
    gid_of,
    parse_token,
    token,
)
from lnn_control.runtime.ros2.zenoh_wire import (
    DEFAULT_QOS,
    SENSOR_DATA_QOS,
    Durability,
    History,
    QosProfile,
    Reliability,
    resolve_topic,
    topic_key_expr,
)

TWIST_HASH = "RIHS01_5f0fcd4f81d5d06ad9b4c4c63e3ea51b82d6ae4d0558f1d475229b1121db6f64"
IMAGE_HASH = "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"
COMPRESSED_HASH = "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a"
ZID = "9ec90de2c27ae725516b90ac653bc683"


def test_type_hashes_and_dds_names_are_the_jazzy_ones():
    # the hashes `ros2 topic info -v` prints for these types on Jazzy (several public sources agree)
    assert messages.type_hash(messages.TWIST_STAMPED) == TWIST_HASH
    assert messages.type_hash(messages.IMAGE) == IMAGE_HASH
    assert messages.type_hash(messages.COMPRESSED_IMAGE) == COMPRESSED_HASH
    assert messages.dds_type_name(messages.TWIST_STAMPED) == "geometry_msgs::msg::dds_::TwistStamped_"


def test_topic_key_expressions():
    # TopicInfo::TopicInfo: <domain>/<name without leading '/'>/<dds type>/<hash>
    key = topic_key_expr(0, "/cmd_vel", "geometry_msgs::msg::dds_::TwistStamped_", TWIST_HASH)
    assert key == f"0/cmd_vel/geometry_msgs::msg::dds_::TwistStamped_/{TWIST_HASH}"
    key = topic_key_expr(7, "/robot1/camera/image_raw", "sensor_msgs::msg::dds_::Image_", IMAGE_HASH)
    assert key == f"7/robot1/camera/image_raw/sensor_msgs::msg::dds_::Image_/{IMAGE_HASH}"
    with pytest.raises(ValueError, match="domain_id"):
        topic_key_expr(233, "/cmd_vel", "x", "y")


def test_topic_names_resolve_like_rcl():
    assert resolve_topic("/cmd_vel") == "/cmd_vel"
    assert resolve_topic("cmd_vel", "/robot1") == "/robot1/cmd_vel"
    assert resolve_topic("~/debug", "/robot1", "driver") == "/robot1/driver/debug"
    for bad in ("", "/cmd vel", "/2cmd", "/cmd_vel/", "//x"):
        with pytest.raises(ValueError, match="topic"):
            resolve_topic(bad)


def test_qos_strings_match_qos_to_keyexpr():
    # rmw_zenoh's defaults (reliable, volatile, keep last 42) are written as empty fields
    assert QosProfile(depth=42).key() == "::,:,:,:,,"
    assert DEFAULT_QOS.key() == "::,10:,:,:,,"  # rclcpp QoS(10)
    assert SENSOR_DATA_QOS.key() == "2::,5:,:,:,,"  # best effort = 2
    assert QosProfile(Reliability.BEST_EFFORT, depth=1).key() == "2::,1:,:,:,,"
    assert QosProfile(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, History.KEEP_LAST, 1).key() == ":1:,1:,:,:,,"
    assert QosProfile(history=History.KEEP_ALL, depth=0).key() == "::2,:,:,:,,"
    with pytest.raises(ValueError, match="reliability"):
        QosProfile("sometimes")  # type: ignore[arg-type]


def test_attachment_bytes_are_rmw_zenohs():
    gid = bytes(range(16))
    attachment = Attachment(1, 1_700_000_000_123_456_789, gid)
    wire = attachment.to_bytes()
    assert wire.hex() == "0100000000000000" + "15cd853dfe9c9717" + "10" + gid.hex()
    assert len(wire) == 33
    assert Attachment.from_bytes(wire) == attachment


def test_attachment_equals_zenoh_ext_serializer():
    # zenoh.ext.z_serialize writes what zenoh::ext::Serializer writes for (int64, int64, std::array<uint8_t,16>)
    from zenoh.ext import Int64, UInt8, z_serialize

    gid = bytes.fromhex("3f3bc1cb989b89807254 68bd3727e1ee".replace(" ", ""))
    attachment = Attachment(123456, -5, gid)
    reference = z_serialize((Int64(123456), Int64(-5), [UInt8(b) for b in gid])).to_bytes()
    assert attachment.to_bytes() == reference


def test_attachment_errors_name_the_problem():
    with pytest.raises(ValueError, match="16 bytes"):
        Attachment(1, 2, b"short")
    with pytest.raises(ValueError, match="sequence length 24"):  # an Iron-era 24-byte gid
        Attachment.from_bytes(struct.pack("<qqB", 1, 2, 24) + bytes(24))
    with pytest.raises(ValueError, match="at least"):
        Attachment.from_bytes(b"\x01\x02")


NODE = NodeInfo(domain_id=0, zid=ZID, node_id=0, namespace="/", name="lnn_control")
PUB_TOKEN = (f"@ros2_lv/0/{ZID}/0/1/MP/%/%/lnn_control/%cmd_vel/geometry_msgs::msg::dds_::TwistStamped_/"
             f"{TWIST_HASH}/::,10:,:,:,,")


def test_liveliness_tokens():
    # Entity::Entity in liveliness_utils.cpp: every part, '/' mangled to '%'
    assert token(NODE, 0, EntityKind.NODE) == f"@ros2_lv/0/{ZID}/0/0/NN/%/%/lnn_control"
    twist = TopicInfo("/cmd_vel", "geometry_msgs::msg::dds_::TwistStamped_", TWIST_HASH, DEFAULT_QOS.key())
    assert token(NODE, 1, EntityKind.PUBLISHER, twist) == PUB_TOKEN
    nested = NodeInfo(3, ZID, 4, "/robot1/front", "camera_reader")
    image = TopicInfo("/robot1/camera/image_raw", "sensor_msgs::msg::dds_::Image_", IMAGE_HASH, SENSOR_DATA_QOS.key())
    assert token(nested, 6, EntityKind.SUBSCRIPTION, image) == (
        f"@ros2_lv/3/{ZID}/4/6/MS/%/%robot1%front/camera_reader/%robot1%camera%image_raw/"
        f"sensor_msgs::msg::dds_::Image_/{IMAGE_HASH}/2::,5:,:,:,,"
    )
    with pytest.raises(ValueError, match="needs a topic"):
        token(NODE, 1, EntityKind.PUBLISHER)


def test_tokens_parse_back_like_ros2_topic_list_reads_them():
    entity = parse_token(PUB_TOKEN)
    assert entity.kind == EntityKind.PUBLISHER and entity.entity_id == 1
    assert entity.node == NODE
    assert entity.topic is not None and entity.topic.name == "/cmd_vel"
    assert entity.ros_type == "geometry_msgs/msg/TwistStamped"  # _demangle_if_ros_type
    with pytest.raises(ValueError, match="13 parts"):
        parse_token(PUB_TOKEN.rsplit("/", 1)[0])


def test_gid_is_xxh3_of_the_token_low_half_first():
    # XXH3-128("abc"), seed 0: 0x06B05AB6733A618578AF5F94892F3950 (libxxhash 0.8 reference vectors)
    assert gid_of("abc") == struct.pack("<QQ", 0x78AF5F94892F3950, 0x06B05AB6733A6185)
    digest = xxhash.xxh3_128_intdigest(PUB_TOKEN.encode())
    assert entity_gid(PUB_TOKEN) == struct.pack("<QQ", digest & (2**64 - 1), digest >> 64)
