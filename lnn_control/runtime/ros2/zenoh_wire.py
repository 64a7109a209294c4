"""The rmw_zenoh wire names: ROS 2 names, topic key expressions and the QoS string of liveliness tokens.

Matches ROS 2 Jazzy/Kilted ``rmw_zenoh_cpp`` (github.com/ros2/rmw_zenoh):

- **Topic key expression** (``rmw_zenoh_cpp/src/detail/liveliness_utils.cpp``, ``TopicInfo::TopicInfo``):
  ``<domain_id>/<topic name without leading/trailing '/'>/<DDS type name>/<type hash>``, e.g.
  ``0/cmd_vel/geometry_msgs::msg::dds_::TwistStamped_/RIHS01_5f0f…6f64``. The DDS type name is
  ``<pkg>::msg::dds_::<Name>_`` (``type_support_common.cpp``, ``_create_type_name``), the hash the
  type's RIHS01 string (``rosidl_stringify_type_hash``); both come from
  :mod:`lnn_control.runtime.ros2.messages`.
- **Payload**: the CDR bytes of the message with their 4-byte encapsulation header, nothing else
  (``rmw_publisher_data.cpp``, ``PublisherData::publish``; ``type_support.cpp`` serialises the
  encapsulation first). No Zenoh encoding is set.
- **QoS string** (``liveliness_utils.cpp``, ``qos_to_keyexpr``): each policy that differs from
  rmw_zenoh's default (``qos.cpp``: RELIABLE, VOLATILE, KEEP_LAST 42, infinite deadline / lifespan
  / lease, AUTOMATIC liveliness) is written as its ``rmw_qos_*_policy_e`` number (``rmw/types.h``),
  the rest left empty: ``reliability:durability:history,depth:deadline_s,deadline_ns:
  lifespan_s,lifespan_ns:liveliness,lease_s,lease_ns``. rclcpp's default profile (reliable, keep
  last 10) is ``::,10:,:,:,,``; sensor data (best effort, keep last 5) is ``2::,5:,:,:,,``.

Names follow ROS 2's rules (``rcl``): a topic is ``/``-separated tokens of ``[A-Za-z0-9_]`` not
starting with a digit; a relative name is resolved against the node's namespace, ``~`` against the
node's own name.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODE_NAME = _TOKEN

RMW_ZENOH_DEFAULT_DEPTH = 42
"""History depth rmw_zenoh assumes when a profile asks for 0 / system default (``qos.cpp``)."""


class Reliability(str, enum.Enum):
    """``rmw_qos_reliability_policy_e``: value -> the number rmw writes."""

    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"

    @property
    def rmw(self) -> int:
        return {"reliable": 1, "best_effort": 2}[self.value]


class Durability(str, enum.Enum):
    """``rmw_qos_durability_policy_e``. Only VOLATILE is offered by our publishers (no sample cache)."""

    TRANSIENT_LOCAL = "transient_local"
    VOLATILE = "volatile"

    @property
    def rmw(self) -> int:
        return {"transient_local": 1, "volatile": 2}[self.value]


class History(str, enum.Enum):
    """``rmw_qos_history_policy_e``."""

    KEEP_LAST = "keep_last"
    KEEP_ALL = "keep_all"

    @property
    def rmw(self) -> int:
        return {"keep_last": 1, "keep_all": 2}[self.value]


@dataclass(frozen=True)
class QosProfile:
    """The QoS of one publisher or subscription, as the ROS graph shows it.

    reliability / durability / history: the policies; depth: messages kept (KEEP_LAST). Deadline,
    lifespan and liveliness are rmw_zenoh's defaults (infinite, AUTOMATIC) and not configurable."""

    reliability: Reliability = Reliability.RELIABLE
    durability: Durability = Durability.VOLATILE
    history: History = History.KEEP_LAST
    depth: int = 10

    def __post_init__(self) -> None:
        for name, kind in (("reliability", Reliability), ("durability", Durability), ("history", History)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                raise ValueError(f"QoS {name} {value!r} is not one of {[k.value for k in kind]}") from None
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 0:
            raise ValueError(f"QoS depth must be an int >= 0 (0: rmw_zenoh's default {RMW_ZENOH_DEFAULT_DEPTH}), "
                             f"got {self.depth!r}")

    def key(self) -> str:
        """The QoS component of a liveliness token (``qos_to_keyexpr``, see the module docstring)."""
        reliability = "" if self.reliability == Reliability.RELIABLE else str(self.reliability.rmw)
        durability = "" if self.durability == Durability.VOLATILE else str(self.durability.rmw)
        history = "" if self.history == History.KEEP_LAST else str(self.history.rmw)
        depth = "" if self.depth in (0, RMW_ZENOH_DEFAULT_DEPTH) else str(self.depth)
        return f"{reliability}:{durability}:{history},{depth}:,:,:,,"


SENSOR_DATA_QOS = QosProfile(Reliability.BEST_EFFORT, Durability.VOLATILE, History.KEEP_LAST, 5)
"""rclcpp's ``SensorDataQoS``: what camera drivers publish with."""
DEFAULT_QOS = QosProfile()
"""rclcpp's default ``QoS(10)``: reliable, volatile, keep last 10 (``cmd_vel`` publishers and subscribers)."""


def check_node_name(name: str) -> str:
    """ValueError unless ``name`` is a ROS node name (``[A-Za-z_][A-Za-z0-9_]*``)."""
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise ValueError(f"node name {name!r} is not a ROS 2 node name: letters, digits and '_', not starting with a digit")
    return name


def check_namespace(namespace: str) -> str:
    """A node namespace: ``/`` or ``/tok/tok`` (no trailing ``/``); returns it."""
    if namespace == "/":
        return namespace
    if not isinstance(namespace, str) or not namespace.startswith("/") or namespace.endswith("/") or not all(
        _TOKEN.match(part) for part in namespace[1:].split("/")
    ):
        raise ValueError(f"namespace {namespace!r} is not a ROS 2 namespace: '/' or '/name[/name...]' "
                         "(letters, digits, '_'; no trailing '/')")
    return namespace


def resolve_topic(name: str, namespace: str = "/", node_name: str | None = None) -> str:
    """The fully qualified topic name (``/a/b``): absolute names stay, relative ones get
    ``namespace`` in front, ``~`` stands for ``namespace/node_name``. ValueError names the rule broken."""
    check_namespace(namespace)
    if not isinstance(name, str) or not name:
        raise ValueError(f"topic name must be a non-empty string like '/cmd_vel', got {name!r}")
    base = "" if namespace == "/" else namespace
    if name.startswith("~"):
        if node_name is None:
            raise ValueError(f"topic {name!r} is private ('~'): it needs the node's name")
        full = f"{base}/{check_node_name(node_name)}{name[1:]}"
    elif name.startswith("/"):
        full = name
    else:
        full = f"{base}/{name}"
    tokens = full[1:].split("/")
    if full.endswith("/") or not all(_TOKEN.match(token) for token in tokens):
        raise ValueError(f"topic {name!r} (resolved {full!r}) is not a ROS 2 topic name: '/'-separated tokens of "
                         "letters, digits and '_', each not starting with a digit, no trailing '/'")
    return full


def strip_slashes(name: str) -> str:
    """``name`` without one leading and one trailing ``/`` (``liveliness_utils.cpp``, ``strip_slashes``)."""
    start = 1 if name.startswith("/") else 0
    end = len(name) - 1 if name.endswith("/") and len(name) > start else len(name)
    return name[start:end]


def topic_key_expr(domain_id: int, topic: str, dds_type: str, type_hash: str) -> str:
    """Zenoh key expression of a topic's data (see the module docstring); ``topic`` fully qualified."""
    check_domain_id(domain_id)
    return f"{domain_id}/{strip_slashes(topic)}/{dds_type}/{type_hash}"


def check_domain_id(domain_id: int) -> int:
    """ValueError unless ``domain_id`` is a ROS domain id: an int in [0, 232] (``ROS_DOMAIN_ID``)."""
    if isinstance(domain_id, bool) or not isinstance(domain_id, int) or not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id must be an int in [0, 232] (ROS_DOMAIN_ID), got {domain_id!r}")
    return domain_id
