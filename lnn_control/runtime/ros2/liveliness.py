"""rmw_zenoh liveliness tokens: how a node, its publishers and subscriptions appear in the ROS graph.

A ROS 2 process on rmw_zenoh learns the graph (``ros2 node list``, ``ros2 topic list``,
``ros2 topic info -v``) only from Zenoh liveliness tokens under ``@ros2_lv/<domain_id>/**``; the
data key expressions are never listed. Each entity declares one token while it lives
(``rmw_zenoh_cpp/src/detail/rmw_node_data.cpp``, ``rmw_publisher_data.cpp``,
``rmw_subscription_data.cpp``), built in ``rmw_zenoh_cpp/src/detail/liveliness_utils.cpp``
(``Entity::Entity``)::

    @ros2_lv/<domain>/<session zid>/<node id>/<entity id>/<kind>/<enclave>/<namespace>/<node name>
        [/<topic>/<DDS type>/<type hash>/<qos>]        # publishers and subscriptions only

- kind: ``NN`` node, ``MP`` publisher, ``MS`` subscription, ``SS`` service, ``SC`` client;
- node id / entity id: the context's entity counter (a node's token uses its id twice);
- enclave, namespace, node name, topic, type and hash are *mangled*: every ``/`` becomes ``%``
  (so the root namespace ``/`` is ``%`` and ``/cmd_vel`` is ``%cmd_vel``);
- qos: :meth:`~lnn_control.runtime.ros2.zenoh_wire.QosProfile.key`;
- session zid: ``zenoh::Id::to_string()``, i.e. ``str(session.info.zid())`` in Python.

The entity's GID (16 bytes, sent in every message attachment) is XXH3-128 of its token string
(:func:`gid_of`, with the ``xxhash`` package: the same XXH3 that rmw_zenoh links).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from lnn_control.runtime.ros2.zenoh_wire import (
    check_domain_id,
    check_namespace,
    check_node_name,
)


def gid_of(key: str) -> bytes:
    """The 16-byte rmw_zenoh GID of an entity: XXH3-128 (seed 0) of its liveliness key expression
    (UTF-8), ``low64`` then ``high64``, each little-endian (rmw_zenoh ``memcpy``s the two halves of
    ``XXH128_hash_t`` on a little-endian host)."""
    import xxhash  # the [ros2] extra

    digest = xxhash.xxh3_128_intdigest(key.encode("utf-8"))
    return struct.pack("<QQ", digest & 0xFFFF_FFFF_FFFF_FFFF, digest >> 64)


ADMIN_SPACE = "@ros2_lv"
"""Prefix of every rmw_zenoh liveliness token."""


class EntityKind(str, enum.Enum):
    NODE = "NN"
    PUBLISHER = "MP"
    SUBSCRIPTION = "MS"
    SERVICE = "SS"
    CLIENT = "SC"


def mangle(name: str) -> str:
    """``/`` -> ``%`` (``mangle_name``): names become single key-expression chunks."""
    return name.replace("/", "%")


def demangle(name: str) -> str:
    """``%`` -> ``/`` (``demangle_name``)."""
    return name.replace("%", "/")


@dataclass(frozen=True)
class NodeInfo:
    """Who a token belongs to: domain, the Zenoh session id, the node's id, namespace, name, enclave."""

    domain_id: int
    zid: str
    node_id: int
    namespace: str
    name: str
    enclave: str = "/"

    def __post_init__(self) -> None:
        check_domain_id(self.domain_id)
        check_namespace(self.namespace)
        check_node_name(self.name)
        if not self.zid or "/" in self.zid:
            raise ValueError(f"zid must be the Zenoh session id as text (hex), got {self.zid!r}")
        if not self.enclave:
            raise ValueError("enclave must not be empty ('/' is the default enclave)")


@dataclass(frozen=True)
class TopicInfo:
    """A publisher's or subscription's topic: fully qualified name, DDS type name, RIHS01 hash, QoS key."""

    name: str
    dds_type: str
    type_hash: str
    qos: str


def token(node: NodeInfo, entity_id: int, kind: EntityKind, topic: TopicInfo | None = None) -> str:
    """The liveliness key expression of an entity (see the module docstring)."""
    if (kind == EntityKind.NODE) != (topic is None):
        raise ValueError(f"a {kind.name.lower()} token {'takes no' if topic else 'needs a'} topic")
    if kind == EntityKind.NODE and entity_id != node.node_id:
        raise ValueError(f"a node's token carries its own id twice: entity_id {entity_id} != node_id {node.node_id}")
    parts = [ADMIN_SPACE, str(node.domain_id), node.zid, str(node.node_id), str(entity_id), kind.value,
             mangle(node.enclave), mangle(node.namespace), mangle(node.name)]
    if topic is not None:
        parts += [mangle(topic.name), mangle(topic.dds_type), mangle(topic.type_hash), topic.qos]
    return "/".join(parts)


def entity_gid(token_key: str) -> bytes:
    """The 16-byte GID rmw_zenoh derives from an entity's token."""
    return gid_of(token_key)


@dataclass(frozen=True)
class GraphEntity:
    """One parsed token: what ``ros2 topic list -t`` / ``ros2 node list`` are built from."""

    kind: EntityKind
    node: NodeInfo
    entity_id: int
    topic: TopicInfo | None

    @property
    def ros_type(self) -> str | None:
        """``pkg/msg/Name`` from the DDS type name (rmw_zenoh's ``_demangle_if_ros_type``), None for nodes."""
        if self.topic is None:
            return None
        dds = self.topic.dds_type
        if not dds.endswith("_") or "dds_::" not in dds:
            return dds
        namespace, _, name = dds.partition("dds_::")
        return namespace.replace("::", "/") + name[:-1]


def parse_token(key: str) -> GraphEntity:
    """A liveliness key expression -> :class:`GraphEntity` (``Entity::make(keyexpr)``); ValueError
    saying what is malformed."""
    parts = key.split("/")
    if len(parts) < 9 or parts[0] != ADMIN_SPACE or any(not p for p in parts):
        raise ValueError(f"{key!r} is not an rmw_zenoh liveliness token ({ADMIN_SPACE}/<domain>/<zid>/<nid>/<id>/<kind>/...)")
    try:
        kind = EntityKind(parts[5])
    except ValueError:
        raise ValueError(f"token {key!r} has entity kind {parts[5]!r}; known: {[k.value for k in EntityKind]}") from None
    node = NodeInfo(int(parts[1]), parts[2], int(parts[3]), demangle(parts[7]), demangle(parts[8]), demangle(parts[6]))
    topic = None
    if kind != EntityKind.NODE:
        if len(parts) != 13:
            raise ValueError(f"token {key!r} of a {kind.name.lower()} needs 13 parts (topic, type, hash, qos), has {len(parts)}")
        topic = TopicInfo(demangle(parts[9]), demangle(parts[10]), demangle(parts[11]), parts[12])
    return GraphEntity(kind, node, int(parts[4]), topic)
