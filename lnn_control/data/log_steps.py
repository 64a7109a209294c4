"""A run log read as control steps for a dataset: one :class:`LogStep` per logged control period.

What a step holds, taken from the MCAP run log (:mod:`lnn_control.runtime.logs.runlog`), all
matched by the step number that every per-step message carries as its MCAP ``sequence``:

- ``/loop/timing``: the step itself (a step without it was cut off by a crash and does not count):
  state, slot time, frame capture time, extras;
- ``/camera/image``: the frame of that step, if one was logged (``log.image_rate_hz`` below the
  loop rate logs frames on some steps only);
- ``/commands/sent``: who commanded the step, ``source`` = ``policy`` | ``human`` | ``stop``
  (logs written before source marking have no ``source``: ``policy``; their stop steps have no
  ``/commands/sent`` message at all: ``stop``);
- the **label**: ``/commands/applied`` of the step where present (what the robot reported
  applying), else ``/commands/sent``; none for a stop step.

The ``run`` metadata record gives the action names, ``mode`` (``run`` | ``teleop``; missing:
``run``) and ``takeover`` (``gamepad`` | ``keyboard`` | null).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import numpy as np

Source = Literal["policy", "human", "stop"]
RunMode = Literal["run", "teleop"]
SOURCES: tuple[str, ...] = get_args(Source)
RUN_MODES: tuple[str, ...] = get_args(RunMode)


@dataclass(frozen=True)
class LogStep:
    """One control period of a run log.

    sequence: the loop's step number. time_s: the step's slot time in seconds since the log's first
    step (what ``--trim-*`` / ``--drop`` count in). frame_timestamp_s: capture time of the frame the
    step acted on, seconds on the run's monotonic clock (what the dataset stores as ``timestamp``).
    state: the loop's step state (``run``, ``hold``, ``watchdog``, ``estop``, ...).
    source: who commanded the step. label: float32 [A], the applied (else sent) command in action
    units, action-name order; None for a stop step or a non-finite command. image: the encoded
    JPEG/PNG frame logged with this step, or None. extras: scalar measurements by name. episode:
    simulated robots: the episode the frame belongs to (None: a real robot, or an older log).
    """

    sequence: int
    time_s: float
    frame_timestamp_s: float
    state: str
    source: Source
    label: np.ndarray | None
    image: bytes | None
    extras: dict[str, float] = field(default_factory=dict)
    episode: int | None = None


@dataclass
class RunLogSteps:
    """A run log's steps (in step order) and what the dataset records about the file.

    complete: False when the file ended early (a killed run: read up to its last complete chunk).
    action_units: from the metadata, or None in logs that do not state them. rate_hz: the loop rate.
    image_format: ``jpeg`` / ``png`` of the logged frames. metadata: the raw ``run`` record.
    """

    path: Path
    sha256: str
    size_bytes: int
    complete: bool
    mode: RunMode
    takeover: str | None
    action_names: tuple[str, ...]
    action_units: tuple[str, ...] | None
    rate_hz: float | None
    policy: str | None
    image_format: str | None
    metadata: dict[str, str]
    steps: list[LogStep]

    @property
    def frames(self) -> int:
        return sum(step.image is not None for step in self.steps)

    def source_record(self) -> dict[str, Any]:
        """The provenance entry of this file (path, sha256, size, completeness, mode)."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.size_bytes,
            "complete": self.complete,
            "mode": self.mode,
            "takeover": self.takeover,
            "steps": len(self.steps),
        }


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata_value(raw: str | None) -> Any:
    """The writer stores strings as-is and everything else as JSON; read both back."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _label(payload: dict[str, Any] | None, names: tuple[str, ...]) -> np.ndarray | None:
    """A command payload's values in ``names`` order, float32 [A]; None if any is missing or null."""
    if payload is None:
        return None
    values = payload.get("values") or {}
    out = []
    for name in names:
        value = values.get(name)
        if value is None or not math.isfinite(float(value)):
            return None
        out.append(float(value))
    return np.asarray(out, np.float32)


def _source(path: Path, payload: dict[str, Any] | None, sequence: int) -> Source:
    if payload is None:
        return "stop"  # logs before source marking wrote no /commands/sent on stop steps
    source = payload.get("source", "policy")
    if source not in SOURCES:
        raise ValueError(
            f"{path}: step {sequence}: /commands/sent source {source!r} is not one of {list(SOURCES)}"
        )
    return cast(Source, source)


def read_log_steps(path: str | Path) -> RunLogSteps:
    """Read ``path`` (a possibly truncated MCAP run log) into steps; errors name the file.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a run log,
    has no control steps, or has no camera frames at all."""
    from lnn_control.runtime.logs.runlog import read_run_log

    file = Path(path)
    log = read_run_log(file)
    ended = "" if log.complete else " (the file ends early: read up to its last complete chunk)"
    names = log.action_names
    if not names:
        raise ValueError(f"{file}: no action names in the run metadata; is this an lnn-control run log?")
    timings = log.topic("/loop/timing")
    if not timings:
        raise ValueError(f"{file}: the run log holds no control steps (/loop/timing is empty){ended}")
    images = {m.sequence: m.payload for m in log.topic("/camera/image")}
    if not images:
        raise ValueError(
            f"{file}: the run log holds no camera frames (/camera/image is empty){ended}; a dataset needs "
            "the frames the robot saw: record with the launch file's log section on (log.image_rate_hz: "
            "null logs a frame every step)"
        )
    sent = {m.sequence: m.payload for m in log.topic("/commands/sent")}
    applied = {m.sequence: m.payload for m in log.topic("/commands/applied")}
    mode = _metadata_value(log.metadata.get("mode")) or "run"
    if mode not in RUN_MODES:
        raise ValueError(f"{file}: run metadata mode {mode!r} is not one of {list(RUN_MODES)}")
    takeover = _metadata_value(log.metadata.get("takeover"))
    units = _metadata_value(log.metadata.get("action_units"))
    rate = _metadata_value(log.metadata.get("rate_hz"))
    formats = {str(m.get("format")) for m in images.values()}
    first_slot = float(timings[0].payload["slot_time_s"])
    steps = []
    for message in timings:
        timing, seq = message.payload, message.sequence
        source = _source(file, sent.get(seq), seq)
        label = None if source == "stop" else _label(applied.get(seq) or sent.get(seq), names)
        frame = images.get(seq)
        steps.append(LogStep(
            sequence=seq,
            time_s=round(float(timing["slot_time_s"]) - first_slot, 6),  # µs: boundaries behave as typed
            frame_timestamp_s=float(timing["frame_timestamp_s"]),
            state=str(timing.get("state", "")),
            source=source,
            label=label,
            image=None if frame is None else base64.b64decode(frame["data"]),
            extras={k: float(v) for k, v in (timing.get("extras") or {}).items()},
            episode=None if timing.get("episode") is None else int(timing["episode"]),
        ))
    return RunLogSteps(
        path=file.resolve(),
        sha256=file_sha256(file),
        size_bytes=file.stat().st_size,
        complete=log.complete,
        mode=cast(RunMode, mode),
        takeover=None if takeover in (None, "") else str(takeover),
        action_names=names,
        action_units=None if units is None else tuple(str(u) for u in units),
        rate_hz=None if rate is None else float(rate),
        policy=log.metadata.get("policy") or None,
        image_format=formats.pop() if len(formats) == 1 else ",".join(sorted(formats)),
        metadata=dict(log.metadata),
        steps=steps,
    )
