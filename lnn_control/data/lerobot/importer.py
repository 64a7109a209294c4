"""LeRobot v3 dataset → lnn-control episode dataset (``lnn-control dataset from-lerobot``).

One LeRobot episode becomes one episode of the project's format (:mod:`lnn_control.data.episodes`):

- ``image``: the camera feature's frame (``video``: decoded from the MP4 at ``from_timestamp +
  timestamp``, the nearest frame within the tolerance; ``image``: the PNG/JPEG in the Parquet row),
  resized with area interpolation to ``image_size`` when one is given;
- ``label``: the ``action`` feature (or the concatenation of the chosen action features);
  ``action``: ``lnn.applied_action`` where present, else the label;
- ``extras``: the chosen state features' components (lnn-control exports: ``observation.state``);
- ``timestamp``: ``lnn.capture_time`` where present (exact), else the episode's first grid time plus
  the running sum of the measured-dt feature (``lnn.measured_dt``) where present, else LeRobot's
  grid ``timestamp``.

An lnn-control export (``meta/lnn_control.json``) comes back with its own specs (units, limits,
frame) and episode metadata. Any other dataset gets specs from its features: action and extra names
from the features' ``names``, units ``unspecified``, action limits the actions' min and max, frame
not stated. The dataset appears at ``out`` complete or not at all; ``dataset.json`` records the
source under ``from_lerobot`` and ``conversion.json`` the content hash (as ``dataset from-log`` does).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_json
from lnn_control.data.episodes import MANIFEST, DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.data.from_log import CONVERSION_RECORD
from lnn_control.data.lerobot.layout import (
    ACTION_FEATURE,
    APPLIED_ACTION_FEATURE,
    CAPTURE_TIME_FEATURE,
    DT_FEATURE,
    LeRobotFormatError,
    feature_names,
)
from lnn_control.data.lerobot.output import staged_folder
from lnn_control.data.lerobot.progress import over_episodes
from lnn_control.data.lerobot.source import EpisodeEntry, LeRobotSource
from lnn_control.spec import ActionSpec, ObservationSpec

FOREIGN_UNIT = "unspecified"
_NUMERIC = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "bool")


@dataclass(frozen=True)
class ImportConfig:
    """camera: the image/video feature to take frames from; None = the dataset's only camera (or an
    lnn-control export's). action: features concatenated into the label. state: features
    concatenated into the extras; None = ``observation.state`` of an lnn-control export, none for
    other datasets. image_size: (height, width) in pixels to resize frames to; None = as stored.
    dt_feature: the measured-dt feature (seconds). tolerance_s: how far a decoded video frame may lie
    from the frame's time; None = a quarter of the frame period."""

    camera: str | None = None
    action: tuple[str, ...] = (ACTION_FEATURE,)
    state: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    dt_feature: str = DT_FEATURE
    tolerance_s: float | None = None

    def __post_init__(self) -> None:
        if not self.action:
            raise ValueError("name at least one action feature (--action action)")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be (height, width) >= 1 pixel, got {self.image_size}")
        if self.tolerance_s is not None and self.tolerance_s <= 0:
            raise ValueError(f"tolerance_s {self.tolerance_s} must be > 0 seconds")


@dataclass
class ImportReport:
    """What :func:`import_lerobot` wrote. timestamps_from: capture_time / measured_dt / grid."""

    root: Path
    source: Path
    dataset_hash: str
    episodes: int
    steps: int
    camera: str
    lnn_export: bool
    timestamps_from: str
    resized_from: tuple[int, int] | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": str(self.root), "source": str(self.source), "dataset_hash": self.dataset_hash,
                "episodes": self.episodes, "steps": self.steps, "camera": self.camera,
                "lnn_export": self.lnn_export, "timestamps_from": self.timestamps_from,
                "resized_from": None if self.resized_from is None else list(self.resized_from),
                "seconds": self.seconds}


def _choose_camera(source: LeRobotSource, config: ImportConfig) -> str:
    cameras = source.camera_keys
    if config.camera is not None:
        if config.camera not in cameras:
            raise LeRobotFormatError(f"{source.root}: no camera feature {config.camera!r}; cameras: {cameras}")
        return config.camera
    if source.lnn_meta is not None and source.lnn_meta.get("camera_key") in cameras:
        return str(source.lnn_meta["camera_key"])
    if len(cameras) != 1:
        raise LeRobotFormatError(
            f"{source.root}: {'no image or video feature' if not cameras else f'{len(cameras)} cameras {cameras}'}; "
            + ("frames are needed to train on" if not cameras else "choose one with --camera KEY")
        )
    return cameras[0]


def _check_vector(source: LeRobotSource, key: str, role: str) -> None:
    feature = source.features.get(key)
    numeric = [k for k, f in source.features.items() if f["dtype"] in _NUMERIC and len(f["shape"]) == 1]
    if feature is None:
        raise LeRobotFormatError(f"{source.root}: no {role} feature {key!r}; numeric features: {numeric}")
    if feature["dtype"] not in _NUMERIC or len(feature["shape"]) != 1:
        raise LeRobotFormatError(f"{source.root}: {role} feature {key!r} is {feature['dtype']} {feature['shape']}, "
                                 f"not a 1-D number vector; numeric features: {numeric}")


def _image_shape(feature: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of a camera feature, whichever of HWC / CHW its names say."""
    shape = [int(s) for s in feature["shape"]]
    names = feature.get("names") or []
    if len(shape) != 3:
        raise ValueError(f"camera shape {shape} is not 3-D")
    if names and str(names[0]).startswith("channel"):
        return shape[1], shape[2]
    return shape[0], shape[1]


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if frames.shape[1:3] == size:
        return frames
    return np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in frames])


class _Plan:
    """Which features feed which arrays, and the specs of the new dataset."""

    def __init__(self, source: LeRobotSource, config: ImportConfig, camera: str) -> None:
        meta = source.lnn_meta
        self.lnn_export = meta is not None and config.action == (ACTION_FEATURE,) and config.state is None
        self.action = list(config.action)
        for key in self.action:
            _check_vector(source, key, "action")
        if config.state is not None:
            self.state = list(config.state)
        elif self.lnn_export and meta is not None and meta["features"].get("state"):
            self.state = [str(meta["features"]["state"])]
        else:
            self.state = []
        for key in self.state:
            _check_vector(source, key, "state")
        self.applied = APPLIED_ACTION_FEATURE if self.lnn_export and APPLIED_ACTION_FEATURE in source.features else None
        if self.lnn_export and CAPTURE_TIME_FEATURE in source.features:
            self.timestamps_from, self.time_key = "capture_time", CAPTURE_TIME_FEATURE
        elif config.dt_feature in source.features:
            _check_vector(source, config.dt_feature, "measured-dt")
            self.timestamps_from, self.time_key = "measured_dt", config.dt_feature
        else:
            self.timestamps_from, self.time_key = "grid", "timestamp"
        self.camera = camera
        self.video = source.features[camera]["dtype"] == "video"
        optional = [key for key in (self.applied, "task_index") if key and key in source.features]
        self.columns = list(dict.fromkeys(
            ["episode_index", "frame_index", "timestamp", *self.action, *self.state, self.time_key, *optional]))

    def manifest(self, source: LeRobotSource, size: tuple[int, int], columns: list[dict[str, np.ndarray]],
                 command: str) -> DatasetManifest:
        created_by = command or "lnn-control dataset from-lerobot"
        if self.lnn_export:
            assert source.lnn_meta is not None
            recorded = source.lnn_meta["source"]["manifest"]
            obs = ObservationSpec.from_dict(recorded["observation_spec"])
            act = ActionSpec.from_dict(recorded["action_spec"])
            return DatasetManifest(ObservationSpec((*size, 3), obs.extras, obs.extra_units), act, created_by)
        names = [n for key in self.action for n in feature_names(key, source.features[key])]
        labels = np.concatenate([np.hstack([c[key] for key in self.action]) for c in columns])
        low, high = labels.min(axis=0).astype(np.float64), labels.max(axis=0).astype(np.float64)
        margin = np.maximum(1e-6, 1e-6 * np.abs(high))
        same = high - low < margin
        low, high = np.where(same, low - margin, low), np.where(same, high + margin, high)
        act = ActionSpec(tuple(names), tuple(float(v) for v in low), tuple(float(v) for v in high),
                         tuple(FOREIGN_UNIT for _ in names))
        extras = tuple(n for key in self.state for n in feature_names(key, source.features[key]))
        return DatasetManifest(ObservationSpec((*size, 3), extras, tuple(FOREIGN_UNIT for _ in extras)), act, created_by)


def _episode_rows(columns: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """episode_index -> row numbers of one data file, in frame_index order."""
    episode = columns["episode_index"][:, 0].astype(np.int64)
    frame = columns["frame_index"][:, 0].astype(np.int64)
    order = np.lexsort((frame, episode))
    rows: dict[int, np.ndarray] = {}
    if order.size:
        starts = np.flatnonzero(np.diff(episode[order])) + 1
        for part in np.split(order, starts):
            rows[int(episode[part[0]])] = part
    return rows


def import_lerobot(src: str | Path, out: str | Path, config: ImportConfig | None = None,
                   command: str = "") -> ImportReport:
    """Convert the LeRobot v3 dataset at ``src`` into a new episode dataset at ``out`` (module docstring)."""
    config = config or ImportConfig()
    started = time.perf_counter()
    source = LeRobotSource(src)
    camera = _choose_camera(source, config)
    plan = _Plan(source, config, camera)
    entries = source.episodes(camera)
    if not entries:
        raise LeRobotFormatError(f"{source.root}: the episode index lists no episodes")
    files = sorted({e.data_file for e in entries})
    columns = {f: source.read_columns(source.data_path(*f), plan.columns) for f in files}
    rows = {f: _episode_rows(columns[f]) for f in files}
    stored = _image_shape(source.features[camera])
    size = config.image_size or stored
    manifest = plan.manifest(source, size, list(columns.values()), command)
    tolerance = config.tolerance_s or 0.25 / source.fps
    metadata_of = _recorded_metadata(source) if plan.lnn_export else {}
    tasks = source.tasks()
    out = Path(out)
    with staged_folder(out) as root:
        writer = EpisodeWriter(root, manifest)
        steps = _write_episodes(writer, source, plan, entries, columns, rows, size, tolerance, metadata_of, tasks)
        atomic_write_json(root / MANIFEST, {**manifest.to_dict(), "from_lerobot": {
            "source": str(source.root), "codebase_version": source.info["codebase_version"], "fps": source.info["fps"],
            "camera": camera, "action": plan.action, "state": plan.state, "timestamps_from": plan.timestamps_from,
            "lnn_export": plan.lnn_export, "stored_image_size": list(stored),
            "source_dataset_hash": (source.lnn_meta or {}).get("source", {}).get("dataset_hash"),
        }})
        dataset = EpisodeDataset(root)
        report = ImportReport(out, source.root, dataset.content_hash(), len(dataset), steps, camera, plan.lnn_export,
                              plan.timestamps_from, stored if size != stored else None, time.perf_counter() - started)
        atomic_write_json(root / CONVERSION_RECORD, {**report.to_dict(), "command": command})
    report.seconds = time.perf_counter() - started
    return report


def _recorded_metadata(source: LeRobotSource) -> dict[int, dict[str, Any]]:
    assert source.lnn_meta is not None
    return {int(e["episode_index"]): dict(e.get("metadata") or {}) for e in source.lnn_meta.get("episodes", [])}


def _write_episodes(writer: EpisodeWriter, source: LeRobotSource, plan: _Plan, entries: list[EpisodeEntry],
                    columns: dict[tuple[int, int], dict[str, np.ndarray]], rows: dict[tuple[int, int], dict[int, np.ndarray]],
                    size: tuple[int, int], tolerance: float, metadata_of: dict[int, dict[str, Any]],
                    tasks: dict[int, str]) -> int:
    from lnn_control.data.lerobot.video import VideoFrameReader

    images_of: dict[tuple[int, int], list[Any]] = defaultdict(list)
    total = 0
    with VideoFrameReader(tolerance) as reader:
        for entry in over_episodes(entries, len(entries), "from-lerobot"):
            file_columns = columns[entry.data_file]
            data_path = source.data_path(*entry.data_file)
            picked = rows[entry.data_file].get(entry.index)
            if picked is None or len(picked) != entry.length:
                found = 0 if picked is None else len(picked)
                raise LeRobotFormatError(f"{data_path}: episode {entry.index} has {found} frames, the episode index says {entry.length}")
            grid = file_columns["timestamp"][picked, 0].astype(np.float64)
            if plan.video:
                assert entry.video_file is not None
                frames = reader.read(source.video_path(plan.camera, *entry.video_file), entry.video_from_s + grid)
            else:
                if entry.data_file not in images_of:
                    images_of.clear()
                    images_of[entry.data_file] = source.read_images(data_path, plan.camera)
                cells = images_of[entry.data_file]
                frames = np.stack([source.decode_image(cells[r], f"{data_path} row {r}") for r in picked])
            frames = _resize(frames, size)
            label = np.hstack([file_columns[key][picked] for key in plan.action]).astype(np.float32)
            applied = file_columns[plan.applied][picked].astype(np.float32) if plan.applied else label
            extras = np.hstack([file_columns[key][picked] for key in plan.state]) if plan.state else np.zeros((len(picked), 0))
            if plan.timestamps_from == "capture_time":
                stamps = file_columns[plan.time_key][picked, 0].astype(np.float64)
            elif plan.timestamps_from == "measured_dt":
                dt = file_columns[plan.time_key][picked, 0].astype(np.float64)
                stamps = grid[0] + np.concatenate([[0.0], np.cumsum(dt[1:])])
            else:
                stamps = grid
            names = writer.manifest.observation_spec.extras
            writer.begin_episode()
            for t in range(len(picked)):
                observation = {"image": frames[t], **{n: extras[t, i : i + 1] for i, n in enumerate(names)}}
                writer.add_step(observation, applied[t], label[t], float(stamps[t]))
            metadata = metadata_of.get(entry.index) if plan.lnn_export else None
            if metadata is None:
                task = "; ".join(entry.tasks)
                if not task and "task_index" in file_columns:
                    task = tasks.get(int(file_columns["task_index"][picked[0], 0]), "")
                metadata = {"source": "lerobot", "lerobot_dataset": str(source.root),
                            "lerobot_episode_index": entry.index, "task": task}
            writer.end_episode(metadata)
            total += len(picked)
    return total
