"""A ROS 2 node on a Zenoh session that speaks rmw_zenoh: what a ROS 2 process sees of us.

:class:`Ros2Node` opens one Zenoh session (:class:`~lnn_control.runtime.ros2.config.ZenohConfig`),
declares the node's liveliness token, and makes publishers and subscriptions that behave on the
wire like rmw_zenoh's (``rmw_zenoh_cpp/src/detail/rmw_publisher_data.cpp``,
``rmw_subscription_data.cpp``):

- a publisher puts CDR payloads on the topic key expression
  (:func:`~lnn_control.runtime.ros2.zenoh_wire.topic_key_expr`) with the attachment
  (:class:`~lnn_control.runtime.ros2.attachment.Attachment`: sequence number from 1, wall-clock
  ns, its GID) and the congestion control rmw_zenoh picks (DROP, as for every KEEP_LAST profile);
  reliable profiles put reliably, best-effort ones best effort;
- every entity declares its liveliness token (:func:`~lnn_control.runtime.ros2.liveliness.token`)
  for as long as it lives, so ``ros2 node list`` / ``ros2 topic list`` / ``ros2 topic info -v``
  on an rmw_zenoh system list it;
- a subscription listens on the topic with *any* type hash (``…/<DDS type>/*``): a Humble
  publisher (``TypeHashNotSupported``) or one of another distro still reaches us, and
  :attr:`Ros2Subscription.hashes_seen` says which hashes came (the robot warns on a mismatch). Its
  token states our hash, like rmw_zenoh's.

Only VOLATILE durability is offered (rmw_zenoh's TRANSIENT_LOCAL needs zenoh-ext caches); no
services. Entity ids count from 0 per node object, the node taking the first (rmw_zenoh counts per
context, which for one node per process gives the same numbers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from lnn_control.runtime.ros2.attachment import Attachment
from lnn_control.runtime.ros2.config import ZenohConfig
from lnn_control.runtime.ros2.liveliness import (
    ADMIN_SPACE,
    EntityKind,
    GraphEntity,
    NodeInfo,
    TopicInfo,
    entity_gid,
    parse_token,
    token,
)
from lnn_control.runtime.ros2.zenoh_wire import (
    QosProfile,
    Reliability,
    check_domain_id,
    check_namespace,
    check_node_name,
    strip_slashes,
    topic_key_expr,
)


class Ros2LinkError(RuntimeError):
    """The Zenoh session could not be opened or used; the message says what to check."""


def zenoh_config(settings: ZenohConfig) -> Any:
    """:class:`ZenohConfig` -> ``zenoh.Config`` (mode, connect / listen endpoints, multicast scouting)."""
    import json

    import zenoh

    config = zenoh.Config()
    try:
        config.insert_json5("mode", json.dumps(settings.mode))
        config.insert_json5("connect/endpoints", json.dumps(list(settings.connect)))
        config.insert_json5("listen/endpoints", json.dumps(list(settings.listen)))
        config.insert_json5("scouting/multicast/enabled", json.dumps(settings.multicast_scouting))
    except zenoh.ZError as exc:
        raise ValueError(f"zenoh settings {settings} are not valid: {exc}") from None
    return config


@dataclass(frozen=True)
class Received:
    """One sample as it arrived. key_expr: where it came from; payload: CDR bytes; attachment:
    rmw_zenoh's (None when the sender attached none or something else); arrival_monotonic /
    arrival_wall_ns: ``time.monotonic()`` and ``time.time_ns()`` read together on arrival."""

    key_expr: str
    payload: bytes
    attachment: Attachment | None
    arrival_monotonic: float
    arrival_wall_ns: int

    @property
    def type_hash(self) -> str:
        """The type-hash chunk of the key expression (``RIHS01_…`` or ``TypeHashNotSupported``)."""
        return self.key_expr.rsplit("/", 1)[-1]


class Ros2Publisher:
    """Publishes one topic the rmw_zenoh way; made by :meth:`Ros2Node.publisher`."""

    def __init__(self, session: Any, key_expr: str, token_key: str, qos: QosProfile, msgtype: str, express: bool) -> None:
        import zenoh

        self.key_expr = key_expr
        self.token_key = token_key
        self.gid = entity_gid(token_key)
        self.msgtype = msgtype
        self.qos = qos
        self._lock = threading.Lock()
        self._sequence = 1  # rmw_zenoh's PublisherData starts at 1
        reliability = zenoh.Reliability.RELIABLE if qos.reliability == Reliability.RELIABLE else zenoh.Reliability.BEST_EFFORT
        self._publisher = session.declare_publisher(
            key_expr, congestion_control=zenoh.CongestionControl.DROP, reliability=reliability, express=express,
        )
        self._token = session.liveliness().declare_token(token_key)

    def publish(self, message: Any) -> int:
        """Serialise a typestore message of :attr:`msgtype` and put it; returns its sequence number."""
        from lnn_control.runtime.ros2.messages import to_cdr

        if message.__msgtype__ != self.msgtype:
            raise ValueError(f"this publisher sends {self.msgtype}, not {message.__msgtype__}")
        return self.publish_cdr(to_cdr(message))

    def publish_cdr(self, payload: bytes) -> int:
        """Put CDR bytes (with their encapsulation header) with the attachment; returns the sequence number."""
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
            attachment = Attachment(sequence, time.time_ns(), self.gid).to_bytes()
            try:
                self._publisher.put(payload, attachment=attachment)
            except Exception as exc:  # zenoh.ZError: session closed
                raise Ros2LinkError(f"could not publish on {self.key_expr}: {exc}") from exc
        return sequence

    @property
    def sent(self) -> int:
        """Messages put so far."""
        return self._sequence - 1

    def close(self) -> None:
        """Withdraw the token and the publisher (safe to call twice)."""
        _undeclare(self._token, self._publisher)


class Ros2Subscription:
    """Receives one topic (any type hash); made by :meth:`Ros2Node.subscription`. ``callback`` runs
    in a Zenoh thread for every sample; an exception it raises is kept in :attr:`error` (the
    sample is dropped) instead of vanishing in Zenoh's thread."""

    def __init__(self, session: Any, listen_key: str, token_key: str, callback: Callable[[Received], None]) -> None:
        self.listen_key = listen_key
        self.token_key = token_key
        self.received = 0
        self.without_attachment = 0
        self.hashes_seen: set[str] = set()
        self.error: BaseException | None = None
        self._callback = callback
        self._subscriber = session.declare_subscriber(listen_key, self._on_sample)
        self._token = session.liveliness().declare_token(token_key)

    def _on_sample(self, sample: Any) -> None:
        arrival_monotonic = time.monotonic()
        arrival_wall_ns = time.time_ns()
        try:
            attachment = None
            if sample.attachment is not None:
                try:
                    attachment = Attachment.from_bytes(sample.attachment.to_bytes())
                except ValueError:
                    attachment = None
            if attachment is None:
                self.without_attachment += 1
            received = Received(str(sample.key_expr), sample.payload.to_bytes(), attachment,
                                arrival_monotonic, arrival_wall_ns)
            self.received += 1
            self.hashes_seen.add(received.type_hash)
            self._callback(received)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the owner through .error
            self.error = exc

    def close(self) -> None:
        """Withdraw the token and the subscriber (safe to call twice)."""
        _undeclare(self._token, self._subscriber)


def _undeclare(*entities: Any) -> None:
    """Undeclare Zenoh entities, ignoring ones already undeclared or of a closed session."""
    for entity in entities:
        try:
            entity.undeclare()
        except Exception:  # noqa: BLE001 - already undeclared, or the session is closed
            pass


class Ros2Node:
    """One ROS 2 node over Zenoh (see the module docstring). Use as a context manager or call
    :meth:`open` / :meth:`close`.

    zenoh: session settings; domain_id: ROS_DOMAIN_ID; name / namespace / enclave: as ``ros2 node
    list`` shows them."""

    def __init__(self, zenoh: ZenohConfig, domain_id: int, name: str, namespace: str = "/", enclave: str = "/") -> None:
        self.settings = zenoh
        self.domain_id = check_domain_id(domain_id)
        self.name = check_node_name(name)
        self.namespace = check_namespace(namespace)
        self.enclave = enclave
        self.info: NodeInfo | None = None
        self._session: Any = None
        self._token: Any = None
        self._next_id = 0
        self._entities: list[Ros2Publisher | Ros2Subscription] = []

    # ---------------------------------------------------------------- lifecycle
    def open(self) -> None:
        """Open the Zenoh session and declare the node's token; Ros2LinkError says what failed."""
        import zenoh

        if self._session is not None:
            return
        try:
            self._session = zenoh.open(zenoh_config(self.settings))
        except zenoh.ZError as exc:
            raise Ros2LinkError(
                f"could not open a Zenoh session ({self.settings.mode}, connect {list(self.settings.connect)}, "
                f"listen {list(self.settings.listen)}): {exc}. Is the Zenoh router running (zenohd, or "
                "'ros2 run rmw_zenoh_cpp rmw_zenohd') and reachable at those endpoints?"
            ) from exc
        self._next_id = 0
        self.info = NodeInfo(self.domain_id, str(self._session.info.zid()), self._take_id(), self.namespace,
                             self.name, self.enclave)
        self._token = self._session.liveliness().declare_token(self.node_token)

    def close(self) -> None:
        """Withdraw every token, publisher and subscription, then close the session (safe twice)."""
        for entity in reversed(self._entities):
            entity.close()
        self._entities.clear()
        if self._token is not None:
            try:
                self._token.undeclare()
            except Exception:  # noqa: BLE001 - the session may already be closed
                pass
            self._token = None
        if self._session is not None:
            try:
                self._session.close()
            except Exception:  # noqa: BLE001 - closing twice / a dead session
                pass
            self._session = None

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._session.is_closed()

    def __enter__(self) -> Ros2Node:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------- entities
    @property
    def zid(self) -> str:
        return self._node_info().zid

    @property
    def node_token(self) -> str:
        info = self._node_info()
        return token(info, info.node_id, EntityKind.NODE)

    def _node_info(self) -> NodeInfo:
        if self.info is None:
            raise Ros2LinkError(f"node {self.name!r} is not open: call open() first")
        return self.info

    def _take_id(self) -> int:
        entity_id = self._next_id
        self._next_id += 1
        return entity_id

    def _topic(self, topic: str, msgtype: str, qos: QosProfile) -> TopicInfo:
        from lnn_control.runtime.ros2.messages import dds_type_name, type_hash

        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r} must be fully qualified (start with '/'); resolve it first")
        return TopicInfo(topic, dds_type_name(msgtype), type_hash(msgtype), qos.key())

    def publisher(self, topic: str, msgtype: str, qos: QosProfile, express: bool = False) -> Ros2Publisher:
        """A publisher of ``msgtype`` (``pkg/msg/Name``) on fully qualified ``topic``. ``express``:
        Zenoh sends each sample at once instead of batching (a transport hint; same bytes)."""
        node = self._node_info()
        info = self._topic(topic, msgtype, qos)
        key = topic_key_expr(self.domain_id, topic, info.dds_type, info.type_hash)
        publisher = Ros2Publisher(self._session, key, token(node, self._take_id(), EntityKind.PUBLISHER, info),
                                  qos, msgtype, express)
        self._entities.append(publisher)
        return publisher

    def subscription(self, topic: str, msgtype: str, qos: QosProfile,
                     callback: Callable[[Received], None]) -> Ros2Subscription:
        """A subscription to ``msgtype`` on fully qualified ``topic`` (any type hash, see the module docstring)."""
        node = self._node_info()
        info = self._topic(topic, msgtype, qos)
        listen_key = f"{self.domain_id}/{strip_slashes(topic)}/{info.dds_type}/*"
        subscription = Ros2Subscription(self._session, listen_key,
                                        token(node, self._take_id(), EntityKind.SUBSCRIPTION, info), callback)
        self._entities.append(subscription)
        return subscription

    def graph(self, timeout_s: float = 1.0) -> list[GraphEntity]:
        """Every entity alive on this domain right now (the liveliness tokens), ours included;
        tokens that do not parse are left out."""
        if self._session is None:
            raise Ros2LinkError(f"node {self.name!r} is not open: call open() first")
        entities = []
        for reply in self._session.liveliness().get(f"{ADMIN_SPACE}/{self.domain_id}/**", timeout=timeout_s):
            if reply.ok is None:
                continue
            try:
                entities.append(parse_token(str(reply.ok.key_expr)))
            except ValueError:
                continue
        return entities
