"""Run logs → episode dataset (``lnn-control dataset from-log``).

Each selected segment of each log (:mod:`lnn_control.data.log_selection`) becomes one episode of
the project's episode format (:mod:`lnn_control.data.episodes`), the same format simulated data
uses, so ``train`` reads it unchanged:

- ``image``: the logged frame of the step, decoded (JPEG frames stay as lossy as they were
  logged), resized with area interpolation when its size differs from the dataset's;
- ``extras``: the step's logged extras, in the observation spec's order;
- ``label`` and ``action``: the command the robot applied that step (``/commands/applied``, else
  ``/commands/sent``), action units;
- ``timestamp``: the frame's measured capture time, seconds on the run's monotonic clock.

Specs: the action limits and frame, extras' units and image size come from a policy (bundle
directory / ``.zip`` / exported ``.onnx`` / shipped name): ``spec`` if given, else the policy the
first log names. Every log must log the same action names (and units, where stated) and extras.

The dataset appears at ``out`` complete or not at all: it is written into a hidden sibling folder
and renamed into place at the end. ``dataset.json`` records, under ``from_log``, every source log
(path, sha256, size, completeness) and the selection; ``conversion.json`` (not part of the hash)
records the content hash (:meth:`~lnn_control.data.episodes.EpisodeDataset.content_hash`, what a
bundle trained on it records), the command and per-log step counts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_json
from lnn_control.data.episodes import MANIFEST, DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.data.log_selection import Segment, Selection, plan_segments
from lnn_control.data.log_steps import RunLogSteps, read_log_steps
from lnn_control.spec import ActionSpec, ObservationSpec

CONVERSION_RECORD = "conversion.json"


@dataclass(frozen=True)
class FromLogConfig:
    """selection: which steps (see :class:`Selection`). image_size: (height, width) of the dataset's
    frames in pixels; None = the spec policy's. spec: policy giving the specs; None = the first log's."""

    selection: Selection = field(default_factory=Selection)
    image_size: tuple[int, int] | None = None
    spec: str | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be (height, width) >= 1 pixel, got {self.image_size}")


def parse_image_size(text: str) -> tuple[int, int]:
    """``"64x128"`` → (64, 128): height × width in pixels."""
    parts = text.lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        height, width = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--image-size {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 64x128") from None
    if height < 1 or width < 1:
        raise ValueError(f"--image-size {text!r}: height and width must be >= 1 pixel")
    return height, width


def specs_of_policy(reference: str) -> tuple[ObservationSpec, ActionSpec, str]:
    """(observation spec, action spec, resolved path) of a bundle dir / .zip / .onnx / shipped name."""
    from lnn_control.runtime.launch import resolve_policy_path

    path = resolve_policy_path(reference)
    if path.suffix == ".onnx":
        from lnn_control.export.onnx_policy import OnnxPolicy

        onnx = OnnxPolicy(path)
        return onnx.observation_spec, onnx.action_spec, str(path)
    from lnn_control.policies.bundle import read_bundle_config

    config = read_bundle_config(path)["policy"]
    try:
        return ObservationSpec.from_dict(config["observation_spec"]), ActionSpec.from_dict(config["action_spec"]), str(path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: the bundle's observation/action spec is unreadable ({exc})") from None


def _spec_reference(config: FromLogConfig, first: RunLogSteps) -> str:
    if config.spec is not None:
        return config.spec
    if first.policy is None:
        raise ValueError(
            f"{first.path}: the run log names no policy to take the action limits and extras' units from; "
            "pass --spec POLICY (the bundle you will fine-tune)"
        )
    return first.policy


def _check_log(log: RunLogSteps, obs: ObservationSpec, act: ActionSpec, spec_from: str) -> None:
    if log.action_names != act.names:
        raise ValueError(f"{log.path}: logged actions {list(log.action_names)} differ from {list(act.names)} of {spec_from}")
    if log.action_units is not None and log.action_units != act.units:
        raise ValueError(f"{log.path}: logged action units {list(log.action_units)} differ from {list(act.units)} of {spec_from}")
    logged_extras = {name for step in log.steps for name in step.extras}
    if logged_extras != set(obs.extras):
        raise ValueError(
            f"{log.path}: logged extras {sorted(logged_extras)} differ from {list(obs.extras)} of {spec_from}; "
            "pass --spec with the policy that drove this run"
        )


def _frame(data: bytes, shape: tuple[int, int, int], path: Path, sequence: int) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Decoded RGB frame at ``shape`` and its logged (height, width) if it had to be resized."""
    import cv2

    from lnn_control.runtime.logs.runlog import decode_image

    try:
        image = decode_image(data)
    except ValueError as exc:
        raise ValueError(f"{path}: step {sequence}: {exc}") from None
    if image.shape == shape:
        return image, None
    resized = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return resized, (int(image.shape[0]), int(image.shape[1]))


def _episode_metadata(log: RunLogSteps, segment: Segment, resized_from: tuple[int, int] | None,
                      every_step_framed: bool) -> dict[str, Any]:
    first, last = segment.steps[0], segment.steps[-1]
    offset = log.metadata.get("monotonic_to_unix_offset_s")
    return {
        "source": segment.source,
        "run_mode": log.mode,
        "takeover": log.takeover,
        "log": str(log.path),
        "log_sha256": log.sha256,
        "log_complete": log.complete,
        "first_step": first.sequence,
        "last_step": last.sequence,
        "start_s": first.time_s,
        "end_s": last.time_s,
        "steps": len(segment.steps),
        "frames_every_step": every_step_framed,
        "image_format": log.image_format,
        "resized_from": None if resized_from is None else list(resized_from),
        "rate_hz": log.rate_hz,
        "robot_kind": log.metadata.get("robot_kind"),
        "policy": log.policy,
        "monotonic_to_unix_offset_s": None if offset is None else float(offset),
    }


def _write_segment(writer: EpisodeWriter, log: RunLogSteps, segment: Segment, obs: ObservationSpec,
                   every_step_framed: bool) -> None:
    writer.begin_episode()
    resized_from = None
    for step in segment.steps:
        assert step.image is not None and step.label is not None  # plan_segments keeps only such steps
        image, original = _frame(step.image, obs.image_shape, log.path, step.sequence)
        resized_from = resized_from or original
        observation = {"image": image, **{name: np.array([step.extras[name]], np.float32) for name in obs.extras}}
        writer.add_step(observation, step.label, step.label, step.frame_timestamp_s)
    writer.end_episode(_episode_metadata(log, segment, resized_from, every_step_framed))


@dataclass
class ConversionReport:
    """What ``convert_logs`` wrote: dataset folder, content hash, totals, per-log counts, notes."""

    root: Path
    dataset_hash: str
    episodes: int
    steps: int
    logs: list[dict[str, Any]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.root),
            "dataset_hash": self.dataset_hash,
            "episodes": self.episodes,
            "steps": self.steps,
            "logs": self.logs,
            "notes": self.notes,
        }


def prepare_output(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; write the dataset to a new folder")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def convert_logs(logs: Sequence[str | Path], out: str | Path, config: FromLogConfig | None = None,
                 command: str = "") -> ConversionReport:
    """Convert ``logs`` into a new episode dataset at ``out`` (see the module docstring).

    Raises ValueError naming the file for: an unreadable log, a log without frames or steps,
    specs that do not match, nothing selected at all, an ``out`` that already holds files."""
    config = config or FromLogConfig()
    if not logs:
        raise ValueError("no run logs given; pass one or more RUN.mcap files")
    paths = [Path(p) for p in logs]
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            raise ValueError(f"{path} is given twice; each run log can be converted once per dataset")
        seen.add(path.resolve())
    out = Path(out)
    staging = prepare_output(out)
    try:
        report = _convert_into(staging, out, paths, config, command)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _convert_into(root: Path, out: Path, paths: list[Path], config: FromLogConfig, command: str) -> ConversionReport:
    """Write the dataset into ``root`` (the staging folder that becomes ``out``)."""
    writer: EpisodeWriter | None = None
    manifest: DatasetManifest | None = None
    spec_from = ""
    sources: list[dict[str, Any]] = []
    per_log: list[dict[str, Any]] = []
    notes: list[str] = []
    total_steps = 0
    for path in paths:
        log = read_log_steps(path)
        if manifest is None:
            manifest, spec_from = _manifest_for(config, log, command)
            writer = EpisodeWriter(root, manifest)
        assert writer is not None
        _check_log(log, manifest.observation_spec, manifest.action_spec, spec_from)
        plan = plan_segments(log, config.selection)
        labelled = [s for s in log.steps if s.source != "stop" and s.label is not None]
        every_step_framed = all(s.image is not None for s in labelled)
        for segment in plan.segments:
            _write_segment(writer, log, segment, manifest.observation_spec, every_step_framed)
        total_steps += plan.kept_steps
        sources.append(log.source_record())
        per_log.append({"path": str(log.path), "steps": len(log.steps), "frames": log.frames,
                        "kept_steps": plan.kept_steps, "episodes": len(plan.segments), "excluded": plan.excluded,
                        "complete": log.complete, "mode": log.mode})
        notes.extend(_notes(log, plan.kept_steps, plan.excluded, every_step_framed))
    assert manifest is not None
    if total_steps == 0:
        why = "; ".join(f"{entry['path']}: left out {_excluded_text(entry['excluded'])}" for entry in per_log)
        hint = " (policy runs without a takeover and logs written before source marking hold no human steps)" \
            if config.selection.only else ""
        raise ValueError(f"nothing selected from {', '.join(str(p) for p in paths)}: {why}{hint}; "
                         "loosen --trim-start/--trim-end/--drop/--only/--min-steps")
    atomic_write_json(root / MANIFEST, {
        **manifest.to_dict(),
        "from_log": {"sources": sources, "selection": config.selection.to_dict(), "spec_from": spec_from},
    })
    dataset = EpisodeDataset(root)
    report = ConversionReport(out, dataset.content_hash(), len(dataset), total_steps, per_log, notes)
    atomic_write_json(root / CONVERSION_RECORD, {**report.to_dict(), "command": command})
    return report


def _manifest_for(config: FromLogConfig, log: RunLogSteps, command: str) -> tuple[DatasetManifest, str]:
    """The dataset's manifest from the spec policy (``config.spec`` or the one ``log`` names)."""
    reference = _spec_reference(config, log)
    try:
        obs_spec, act_spec, spec_from = specs_of_policy(reference)
    except ValueError as exc:
        if config.spec is not None:
            raise
        raise ValueError(
            f"{log.path}: the policy this run log names cannot be read here ({exc}); pass --spec POLICY "
            "(the bundle you will fine-tune, or any with the same actions and extras)"
        ) from None
    if config.image_size is not None:
        obs_spec = ObservationSpec((*config.image_size, 3), obs_spec.extras, obs_spec.extra_units)
    return DatasetManifest(obs_spec, act_spec, created_by=command or "lnn-control dataset from-log"), spec_from


def _notes(log: RunLogSteps, kept: int, excluded: dict[str, int], every_step_framed: bool) -> list[str]:
    """What the user should know about one converted log."""
    notes = []
    if not log.complete:
        notes.append(f"{log.path}: the file ends early (killed run); converted up to its last complete chunk")
    if not every_step_framed:
        notes.append(
            f"{log.path}: frames were logged on {log.frames} of {len(log.steps)} steps (log.image_rate_hz below "
            "the loop rate): only steps with a frame are kept, their labels are the commands of those steps and "
            "the measured time between kept frames is their dt; log with image_rate_hz: null for every step"
        )
    if kept == 0:
        notes.append(f"{log.path}: no step selected ({_excluded_text(excluded)})")
    return notes


def _excluded_text(excluded: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(excluded.items())) or "no steps"
