"""Run logs as MCAP files that Foxglove Studio opens directly, and that survive a crash.

Channels (JSON message encoding, JSON-schema schemas):

=====================  ===========================  =========================================
topic                  schema                       content
=====================  ===========================  =========================================
/camera/image          foxglove.CompressedImage     JPEG or PNG frames at ``image_rate_hz``
/commands/policy       lnn_control.Command          raw policy output, by action name, every step
                                                    the policy ran (takeover: in human segments
                                                    too; pure teleop: absent)
/commands/sent         lnn_control.Command          after clamp / slew / NaN guard, every step,
                                                    plus ``"source"``: ``"policy"``, ``"human"`` or
                                                    ``"stop"`` (the stop command: watchdog, e-stop,
                                                    dead-man release; values = the neutral command)
/commands/applied      lnn_control.Command          what the robot reported applying
/commands/human        lnn_control.HumanCommand     the human input every step while one is
                                                    attached: ``values`` (the human's command,
                                                    before the limiter) + ``"deadman"``,
                                                    ``"takeover"`` (bool: control held)
/policy/neurons        lnn_control.NeuronActivity   the liquid network's state per step
/loop/timing           lnn_control.LoopTiming       dt, latency, lateness, state per step
/safety/events         lnn_control.SafetyEvent      watchdog, e-stop, NaN, link, exceptions,
                                                    control_source (who drives), input_lost
=====================  ===========================  =========================================

Every per-step message carries the step number as its MCAP ``sequence``. Message times are
wall-clock nanoseconds (what Foxglove shows); the payloads keep the raw ``time.monotonic()``
seconds, and the ``run`` metadata record stores ``monotonic_to_unix_offset_s``.

The ``run`` metadata record (string values; non-strings JSON-encoded) holds ``action_names``,
``log_format_version`` (:data:`LOG_FORMAT_VERSION`), ``mode`` (``"run"`` or ``"teleop"``) and
``takeover`` (``"gamepad"``, ``"keyboard"`` or ``"null"``) next to what the run session adds (policy,
engine, robot kind, rate). :class:`RunLog` reads them with the old-log defaults: a log without
``log_format_version`` is version 1, without ``mode`` a ``"run"`` without takeover, and a
``/commands/sent`` message without ``"source"`` came from the policy.

Threading: steps are written synchronously by the loop thread after ``robot.write()`` (a writer
thread was measured to be worse: GIL hand-over delays the loop's wake-up by up to the 5 ms switch
interval, p99 |jitter| 5 ms vs 0.5 ms). Safety events may come from any thread or a signal
handler; they are queued and written with the next step.

Crash safety: messages go into small chunks (``chunk_size_bytes``) that are written and flushed
to the OS as soon as they fill, and at least every ``flush_interval_s``; a killed process leaves
a file readable (with :func:`read_run_log` or mcap's ``NonSeekingReader``) up to its last chunk.
"""

from __future__ import annotations

import base64
import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.runtime.core.loop import StepRecord
from lnn_control.runtime.core.safety import SafetyEvent
from lnn_control.runtime.logs.schema import LOG_FORMAT_VERSION, TOPICS

__all__ = [
    "LOG_FORMAT_VERSION", "LogConfig", "LoggedMessage", "RunLog", "RunLogWriter", "decode_image",
    "encode_image", "iter_messages", "read_run_log",
]


@dataclass(frozen=True)
class LogConfig:
    """Run-log settings (launch-file ``log:`` section).

    image_rate_hz: camera frames logged per second; ``None`` = every control step (needed for an
        exact ``replay``). image_format: ``jpeg`` (small) or ``png`` (lossless, exact replay).
    jpeg_quality: 1..100. chunk_size_bytes: MCAP chunk size; smaller = less lost on a crash.
    flush_interval_s: longest time data waits in memory before it is flushed to the OS.
    compression: chunk compression.
    """

    image_rate_hz: float | None = None
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = 90
    chunk_size_bytes: int = 64 * 1024
    flush_interval_s: float = 0.5
    compression: Literal["zstd", "lz4", "none"] = "zstd"

    def __post_init__(self) -> None:
        if self.image_rate_hz is not None and not self.image_rate_hz > 0:
            raise ValueError(f"log.image_rate_hz must be > 0 or null (every step), got {self.image_rate_hz}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"log.jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.chunk_size_bytes < 1024:
            raise ValueError(f"log.chunk_size_bytes must be >= 1024, got {self.chunk_size_bytes}")
        if not self.flush_interval_s > 0:
            raise ValueError(f"log.flush_interval_s must be > 0, got {self.flush_interval_s}")


def _stamp(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def encode_image(image: np.ndarray, fmt: str, jpeg_quality: int = 90) -> bytes:
    """uint8 RGB (H, W, 3) -> JPEG / PNG bytes."""
    import cv2

    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return buf.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """JPEG / PNG bytes -> uint8 RGB (H, W, 3)."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("logged image bytes are not a decodable JPEG/PNG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class RunLogWriter:
    """Writes one run to an MCAP file; implements the loop's ``StepSink`` (write_step/write_event)."""

    def __init__(
        self,
        path: str | Path,
        action_names: tuple[str, ...],
        config: LogConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self.config = config or LogConfig()
        self.action_names = tuple(action_names)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        compression = {
            "zstd": CompressionType.ZSTD,
            "lz4": CompressionType.LZ4,
            "none": CompressionType.NONE,
        }[self.config.compression]
        self._writer = Writer(self._file, chunk_size=self.config.chunk_size_bytes, compression=compression)
        self._writer.start(profile="", library="lnn-control")
        self._offset = time.time() - time.monotonic()
        self._channels: dict[str, int] = {}
        for topic, schema in TOPICS.items():
            schema_id = self._writer.register_schema(
                name=schema["title"], encoding="jsonschema", data=json.dumps(schema).encode()
            )
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="json", schema_id=schema_id
            )
        meta = {
            "action_names": json.dumps(list(self.action_names)),
            "log_format_version": str(LOG_FORMAT_VERSION),
            "mode": "run",
            "takeover": "null",
            "monotonic_to_unix_offset_s": repr(self._offset),
            "started_unix_s": repr(time.time()),
        }
        for key, value in (metadata or {}).items():
            meta[key] = value if isinstance(value, str) else json.dumps(value)
        self._writer.add_metadata("run", meta)
        self._file.flush()
        self._last_flush = time.monotonic()
        self._next_image_time: float | None = None
        self._bytes_at_flush = self._file.tell()
        self.messages_written = 0
        self.images_written = 0
        self.error: BaseException | None = None
        self._closed = False
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        # the first encode imports OpenCV (~60 ms): pay it here, not in the loop's first period
        encode_image(np.zeros((2, 2, 3), np.uint8), self.config.image_format, self.config.jpeg_quality)

    def _ns(self, monotonic_s: float) -> int:
        return int(round((monotonic_s + self._offset) * 1e9))

    def _add(self, topic: str, payload: dict[str, Any], log_ns: int, sequence: int = 0) -> None:
        self._writer.add_message(
            channel_id=self._channels[topic],
            log_time=log_ns,
            publish_time=log_ns,
            data=json.dumps(payload, separators=(",", ":")).encode(),
            sequence=sequence,
        )
        self.messages_written += 1

    def _command(self, values: np.ndarray, step: int, stamp: dict[str, int]) -> dict[str, Any]:
        return {
            "timestamp": stamp,
            "step": step,
            # NaN / inf are not JSON: a non-finite policy output is logged as null
            "values": {
                n: (float(v) if np.isfinite(v) else None)
                for n, v in zip(self.action_names, np.asarray(values, np.float64).reshape(-1))
            },
        }

    # -- public, called by the control loop -----------------------------------------------------
    def write_step(self, record: StepRecord) -> None:
        """Write one step (in the caller's thread: the loop calls this after ``robot.write()``,
        so encoding and disk time count into its slack, not into sense->act latency)."""
        if self._closed or self.error is not None:
            return
        try:
            self._drain_events()
            self._write_step_now(record)
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the robot loop
            self.error = exc

    def write_event(self, event: SafetyEvent) -> None:
        """Queue a safety event; any thread or a signal handler may call this. Queued events are
        written with the next step (within one control period) and by ``close()``."""
        if not self._closed:
            self._events.put(event)

    def _drain_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._write_event_now(event)

    def _write_step_now(self, record: StepRecord) -> None:
        ns = self._ns(record.write_time)
        stamp = _stamp(ns)
        frame_ns = self._ns(record.frame_timestamp)
        seq = record.step
        rate = self.config.image_rate_hz
        log_image = rate is None or (
            self._next_image_time is None or record.frame_timestamp >= self._next_image_time - 1e-6
        )
        if log_image:
            if rate is not None:
                # a fixed schedule keeps the average rate exact under jitter; restart it after a gap
                due = record.frame_timestamp if self._next_image_time is None else self._next_image_time
                if record.frame_timestamp - due > 1.0 / rate:
                    due = record.frame_timestamp
                self._next_image_time = due + 1.0 / rate
            data = encode_image(record.image, self.config.image_format, self.config.jpeg_quality)
            self._add(
                "/camera/image",
                {
                    "timestamp": _stamp(frame_ns),
                    "frame_id": "camera",
                    "data": base64.b64encode(data).decode("ascii"),
                    "format": self.config.image_format,
                },
                frame_ns,
                seq,
            )
            self.images_written += 1
        for topic, values in (
            ("/commands/policy", record.command),
            ("/commands/sent", record.sent),
            ("/commands/applied", record.applied),
        ):
            if values is not None:
                payload = self._command(values, seq, stamp)
                if topic == "/commands/sent":
                    payload["source"] = record.source
                self._add(topic, payload, ns, seq)
        if record.human is not None:
            human = self._command(record.human.values, seq, stamp)
            human.update(deadman=bool(record.human.deadman), takeover=bool(record.human.takeover))
            self._add("/commands/human", human, ns, seq)
        if record.neurons is not None:
            self._add(
                "/policy/neurons",
                {
                    "timestamp": stamp,
                    "step": seq,
                    "activity": [float(v) if np.isfinite(v) else None for v in record.neurons],
                },
                ns,
                seq,
            )
        self._add(
            "/loop/timing",
            {
                "timestamp": stamp,
                "step": seq,
                "state": record.state,
                "dt_s": record.dt,
                "frame_timestamp_s": record.frame_timestamp,
                "wake_time_s": record.wake_time,
                "slot_time_s": record.slot_time,
                "write_time_s": record.write_time,
                "latency_s": record.latency,
                "compute_s": record.compute_time,
                "lateness_s": record.wake_time - record.slot_time,
                "image_logged": bool(log_image),
                "episode": record.episode,
                "extras": {k: float(v) for k, v in record.extras.items()},
            },
            ns,
            seq,
        )
        self._maybe_flush()

    def _write_event_now(self, event: SafetyEvent) -> None:
        ns = self._ns(event.time)
        self._add(
            "/safety/events",
            {"timestamp": _stamp(ns), "kind": event.kind.value, "detail": event.detail, "time_s": event.time},
            ns,
        )
        self._maybe_flush(force_chunk=True)  # events are rare and matter most after a crash

    def _maybe_flush(self, force_chunk: bool = False) -> None:
        now = time.monotonic()
        if force_chunk or now - self._last_flush >= self.config.flush_interval_s:
            self._writer.flush()  # closes the open chunk and flushes the file object
            self._last_flush = now
        elif self._file.tell() != self._bytes_at_flush:
            self._file.flush()  # a chunk filled up and was written: push it to the OS now
        self._bytes_at_flush = self._file.tell()

    def close(self) -> None:
        """Write queued events, then the summary section (indexes, statistics); close the file.

        Raises OSError if a write failed during the run (the file holds everything before it)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.error is None:
                self._drain_events()
                self._writer.finish()
                self._file.flush()
        except Exception as exc:  # noqa: BLE001
            self.error = exc
        finally:
            self._file.close()
        if self.error is not None:
            raise OSError(f"run log {self.path}: writing failed during the run: {self.error}") from self.error

    def __enter__(self) -> RunLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LoggedMessage:
    topic: str
    sequence: int
    log_time_ns: int
    payload: dict[str, Any]


@dataclass
class RunLog:
    """A run log read back: metadata, messages per topic (in file order), completeness."""

    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    messages: dict[str, list[LoggedMessage]] = field(default_factory=dict)
    complete: bool = True  # False: the file ended early (crash) and was read up to its last chunk

    def topic(self, name: str) -> list[LoggedMessage]:
        return self.messages.get(name, [])

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(json.loads(self.metadata.get("action_names", "[]")))

    @property
    def format_version(self) -> int:
        """:data:`LOG_FORMAT_VERSION` the log was written with (1 for logs before it was recorded)."""
        return int(self.metadata.get("log_format_version", "1"))

    @property
    def mode(self) -> str:
        """``"run"`` (a policy drove, maybe with takeover) or ``"teleop"``; old logs: ``"run"``."""
        return self.metadata.get("mode", "run")

    @property
    def takeover(self) -> str | None:
        """The takeover input of a run (``"gamepad"`` / ``"keyboard"``), None without one."""
        value = self.metadata.get("takeover", "null")
        return None if value == "null" else value


def iter_messages(path: str | Path) -> Iterator[tuple[str, Any, bool]]:
    """Yield ``(topic, mcap Message, False)`` in file order; at a truncated tail yield
    ``("", None, True)`` once and stop (a crashed run)."""
    from mcap.records import Channel, Message, Metadata
    from mcap.stream_reader import StreamReader

    with open(path, "rb") as stream:
        reader = StreamReader(stream, validate_crcs=True)
        topics: dict[int, str] = {}
        try:
            for record in reader.records:
                if isinstance(record, Channel):
                    topics[record.id] = record.topic
                elif isinstance(record, Metadata):
                    yield "", record, False
                elif isinstance(record, Message):
                    yield topics.get(record.channel_id, ""), record, False
        except Exception:  # noqa: BLE001 - a half-written record or chunk (EOF, CRC, zstd)
            yield "", None, True


def read_run_log(path: str | Path) -> RunLog:
    """Read a run log; a crashed (truncated) file is read up to its last complete chunk."""
    from mcap.records import Metadata

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"run log {file} does not exist")
    log = RunLog(file)
    for topic, record, truncated in iter_messages(file):
        if truncated:
            log.complete = False
            break
        if isinstance(record, Metadata):
            if record.name == "run":
                log.metadata.update(record.metadata)
            continue
        log.messages.setdefault(topic, []).append(
            LoggedMessage(topic, record.sequence, record.log_time, json.loads(record.data))
        )
    if not log.complete and not log.metadata and not log.messages:
        raise ValueError(f"{file} is not a readable MCAP run log (no complete record in it)")
    return log
