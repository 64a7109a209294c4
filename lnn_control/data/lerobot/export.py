"""lnn-control episode dataset → LeRobot v3.0 dataset (``lnn-control dataset export-lerobot``).

Per frame (``data/chunk-*/file-*.parquet``, several episodes per file, one row group each):

- ``observation.images.front`` (the camera key is an option): the frame, in the MP4 video
  ``videos/<key>/chunk-*/file-*.mp4`` (episodes back to back; from/to timestamps per episode);
- ``observation.state`` float32 [E]: the episode's extras (speed, ...), when the dataset has any;
- ``action`` float32 [A]: the label, the expert command the policy learns (what LeRobot trains on);
- ``lnn.applied_action`` float32 [A]: the command actually applied (expert + DART noise, or the
  DAgger learner), only where it differs from the label in some frame;
- ``lnn.measured_dt`` float32 [1]: measured seconds since the previous frame (1/fps on an episode's
  first frame), the elapsed time a liquid network integrates over;
- ``lnn.capture_time`` float64 [1]: the measured capture time, seconds on the recording's clock;
- ``timestamp`` float32: ``frame_index / fps``, on LeRobot's fixed grid (where its loader looks in
  the video); ``frame_index``, ``episode_index``, ``index``, ``task_index`` int64.

``meta/lnn_control.json`` keeps what a LeRobot dataset has no place for: the observation and action
specs (units, limits, frame), each episode's metadata, the source dataset's content hash. With it,
``dataset from-lerobot`` restores the episodes exactly except for the video codec's loss.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_json, atomic_write_text
from lnn_control.data.episodes import MANIFEST, DatasetError, EpisodeDataset, load_episode
from lnn_control.data.lerobot import layout
from lnn_control.data.lerobot.layout import (
    ACTION_FEATURE,
    APPLIED_ACTION_FEATURE,
    CAPTURE_TIME_FEATURE,
    DT_FEATURE,
    STATE_FEATURE,
    chunk_file_path,
    next_chunk_file,
)
from lnn_control.data.lerobot.output import staged_folder
from lnn_control.data.lerobot.progress import over_episodes
from lnn_control.data.lerobot.stats import ImageStats, to_json, vector_stats
from lnn_control.data.lerobot.video import (
    VideoFileEncoder,
    VideoSettings,
    check_frame_size,
    video_info,
)

DEFAULT_TASK = "lnn-control demonstration"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ExportConfig:
    """fps: LeRobot's frame rate (integer Hz); None = 1 / the median measured frame period.
    task: the task text of every episode; None = each episode's ``task`` metadata, else DEFAULT_TASK.
    repo_id: ``owner/name`` recorded in the dataset card; None = ``lnn-control/<out folder name>``.
    camera_key: the video feature's name. robot_type: info.json's robot_type; None = the episodes'
    ``robot_kind`` metadata (run logs of real robots), else null. chunks_size, data_file_mb,
    video_file_mb: a new file starts once one reaches this size (MiB), a new chunk folder after
    chunks_size files (LeRobot's defaults: 1000, 100, 200)."""

    fps: int | None = None
    task: str | None = None
    repo_id: str | None = None
    camera_key: str = layout.DEFAULT_CAMERA_KEY
    robot_type: str | None = None
    video: VideoSettings = field(default_factory=VideoSettings)
    chunks_size: int = layout.DEFAULT_CHUNK_SIZE
    data_file_mb: float = layout.DEFAULT_DATA_FILE_SIZE_IN_MB
    video_file_mb: float = layout.DEFAULT_VIDEO_FILE_SIZE_IN_MB

    def __post_init__(self) -> None:
        if self.fps is not None and (not isinstance(self.fps, int) or self.fps < 1):
            raise ValueError(f"--fps {self.fps!r}: LeRobot stores an integer frame rate >= 1 Hz")
        if self.task is not None and not self.task.strip():
            raise ValueError("--task must not be empty; it is the text a language-conditioned policy reads")
        if self.repo_id is not None and not _REPO_ID.match(self.repo_id):
            raise ValueError(f"--repo-id {self.repo_id!r}: expected OWNER/NAME (letters, digits, '-', '_', '.')")
        if not self.camera_key.startswith("observation.") or "/" in self.camera_key:
            raise ValueError(f"camera key {self.camera_key!r}: must start with 'observation.' and hold no '/' "
                             "(LeRobot's convention: observation.images.<camera>)")
        if self.chunks_size < 1 or self.data_file_mb <= 0 or self.video_file_mb <= 0:
            raise ValueError(f"chunks_size {self.chunks_size}, data_file_mb {self.data_file_mb}, video_file_mb "
                             f"{self.video_file_mb}: all must be > 0")


@dataclass
class ExportReport:
    """What :func:`export_lerobot` wrote. max_grid_offset_s: the largest distance between a frame's
    measured time (since its episode's first frame) and its grid time ``frame_index / fps``."""

    root: Path
    episodes: int
    frames: int
    fps: int
    fps_from: str
    data_files: int
    video_files: int
    source_hash: str
    applied_action: bool
    max_grid_offset_s: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": str(self.root), "episodes": self.episodes, "frames": self.frames, "fps": self.fps,
                "fps_from": self.fps_from, "data_files": self.data_files, "video_files": self.video_files,
                "source_hash": self.source_hash, "applied_action": self.applied_action,
                "max_grid_offset_s": self.max_grid_offset_s, "seconds": self.seconds}


@dataclass
class _Timing:
    """An episode's labels, applied actions, timestamps and metadata (no frames)."""

    timestamp: np.ndarray
    action: np.ndarray
    label: np.ndarray
    metadata: dict[str, Any]


def _read_timing(dataset: EpisodeDataset, index: int) -> _Timing:
    from safetensors import SafetensorError, safe_open

    path = dataset.paths[index]
    try:
        with safe_open(str(path), framework="numpy") as handle:
            arrays = {name: handle.get_tensor(name) for name in ("timestamp", "action", "label")}
    except (OSError, SafetensorError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable episode file: {exc}") from exc
    return _Timing(np.asarray(arrays["timestamp"], np.float64), arrays["action"], arrays["label"], dataset.metadata(index))


def _choose_fps(config: ExportConfig, timings: list[_Timing]) -> tuple[int, str]:
    if config.fps is not None:
        return config.fps, "--fps"
    periods = np.concatenate([np.diff(t.timestamp) for t in timings])
    periods = periods[periods > 0]
    if periods.size == 0:
        raise ValueError("cannot tell the frame rate: no episode has two frames with increasing timestamps; pass --fps N")
    period = float(np.median(periods))
    return max(1, round(1.0 / period)), f"median measured period {period * 1000:.2f} ms"


class _DataFiles:
    """Frame rows into ``data/chunk-*/file-*.parquet``, one row group per episode, new file past the size limit."""

    def __init__(self, root: Path, limit_mb: float, chunks_size: int) -> None:
        self.root, self.limit_mb, self.chunks_size = root, limit_mb, chunks_size
        self.chunk, self.file, self.count = 0, 0, 0
        self._writer: Any = None
        self._path: Path | None = None

    def write(self, table: Any) -> tuple[int, int]:
        import pyarrow.parquet as pq

        if self._writer is not None and self._path is not None and self._path.stat().st_size / 2**20 >= self.limit_mb:
            self.close()
            self.chunk, self.file = next_chunk_file(self.chunk, self.file, self.chunks_size)
        if self._writer is None:
            self._path = self.root / chunk_file_path(layout.DATA_PATH, self.chunk, self.file)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._path, table.schema, compression="snappy")
            self.count += 1
        self._writer.write_table(table)
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _VideoFiles:
    """Episodes' frames into ``videos/<key>/chunk-*/file-*.mp4``, back to back, new file past the size limit."""

    def __init__(self, root: Path, key: str, fps: int, settings: VideoSettings, limit_mb: float, chunks_size: int) -> None:
        self.root, self.key, self.fps, self.settings = root, key, fps, settings
        self.limit_mb, self.chunks_size = limit_mb, chunks_size
        self.chunk, self.file, self.count = 0, 0, 0
        self._encoder: VideoFileEncoder | None = None
        self.first_path: Path | None = None

    def write(self, frames: np.ndarray) -> tuple[int, int, float, float]:
        """(chunk, file, from_timestamp, to_timestamp) of these frames."""
        if self._encoder is not None and self._encoder.size_mb() >= self.limit_mb:
            self.close()
            self.chunk, self.file = next_chunk_file(self.chunk, self.file, self.chunks_size)
        if self._encoder is None:
            path = self.root / chunk_file_path(layout.VIDEO_PATH, self.chunk, self.file, self.key)
            self._encoder = VideoFileEncoder(path, self.fps, frames.shape[1], frames.shape[2], self.settings)
            self.first_path = self.first_path or path
            self.count += 1
        start = self._encoder.frames
        self._encoder.write(frames)
        return self.chunk, self.file, start / self.fps, self._encoder.frames / self.fps

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None


def _features(config: ExportConfig, image_shape: tuple[int, int, int], extras: tuple[str, ...],
              actions: tuple[str, ...], applied: bool) -> dict[str, dict[str, Any]]:
    features: dict[str, dict[str, Any]] = {
        config.camera_key: {"dtype": "video", "shape": list(image_shape), "names": ["height", "width", "channels"]},
    }
    if extras:
        features[STATE_FEATURE] = {"dtype": "float32", "shape": [len(extras)], "names": list(extras)}
    features[ACTION_FEATURE] = {"dtype": "float32", "shape": [len(actions)], "names": list(actions)}
    if applied:
        features[APPLIED_ACTION_FEATURE] = {"dtype": "float32", "shape": [len(actions)], "names": list(actions)}
    features[DT_FEATURE] = {"dtype": "float32", "shape": [1], "names": None}
    features[CAPTURE_TIME_FEATURE] = {"dtype": "float64", "shape": [1], "names": None}
    features.update({name: dict(spec) for name, spec in layout.DEFAULT_FEATURES.items()})
    return features


def export_lerobot(data: str | Path, out: str | Path, config: ExportConfig | None = None,
                   command: str = "") -> ExportReport:
    """Write the episode dataset at ``data`` as a new LeRobot v3.0 dataset at ``out`` (see the module
    docstring). ``out`` appears complete or not at all. Raises ValueError / DatasetError naming the
    problem: no episodes, odd frame sizes, an ``out`` that already holds files."""
    config = config or ExportConfig()
    started = time.perf_counter()
    dataset = EpisodeDataset(data)
    if len(dataset) == 0:
        raise DatasetError(f"{dataset.root}: the dataset holds no episodes; nothing to export")
    obs_spec, act_spec = dataset.manifest.observation_spec, dataset.manifest.action_spec
    check_frame_size(obs_spec.image_shape[0], obs_spec.image_shape[1])
    timings = [_read_timing(dataset, i) for i in range(len(dataset))]
    fps, fps_from = _choose_fps(config, timings)
    applied = any(not np.array_equal(t.action, t.label) for t in timings)
    features = _features(config, obs_spec.image_shape, obs_spec.extras, act_spec.names, applied)
    task_of = [config.task or str(t.metadata.get("task") or DEFAULT_TASK) for t in timings]
    tasks = list(dict.fromkeys(task_of))
    out = Path(out)
    with staged_folder(out) as root:
        written = _write_episodes(root, dataset, timings, features, tasks, task_of, fps, config)
        robot_type = config.robot_type or next((str(t.metadata["robot_kind"]) for t in timings if t.metadata.get("robot_kind")), None)
        info = {
            "codebase_version": layout.CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": len(dataset),
            "total_frames": written.frames,
            "total_tasks": len(tasks),
            "chunks_size": config.chunks_size,
            "data_files_size_in_mb": config.data_file_mb,
            "video_files_size_in_mb": config.video_file_mb,
            "fps": fps,
            "splits": {"train": f"0:{len(dataset)}"},
            "data_path": layout.DATA_PATH,
            "video_path": layout.VIDEO_PATH,
            "features": features,
        }
        assert written.first_video is not None
        features[config.camera_key]["info"] = video_info(written.first_video)
        # LeRobot's own layout: 4-space indent, keys in insertion order (features in column order)
        atomic_write_text(root / layout.INFO_PATH, json.dumps(info, indent=4, ensure_ascii=False) + "\n")
        atomic_write_text(root / layout.STATS_PATH, json.dumps(to_json(written.stats), indent=4) + "\n")
        source_hash = dataset.content_hash()
        repo_id = config.repo_id or f"lnn-control/{out.name}"
        atomic_write_json(root / layout.LNN_META_PATH, {
            "format": layout.LNN_META_FORMAT,
            "version": layout.LNN_META_VERSION,
            "created_by": command or "lnn-control dataset export-lerobot",
            "repo_id": repo_id,
            "source": {"dataset": str(dataset.root), "dataset_hash": source_hash,
                       "manifest": _read_manifest(dataset.root)},
            "camera_key": config.camera_key,
            "features": {"action": ACTION_FEATURE, "state": STATE_FEATURE if obs_spec.extras else None,
                         "applied_action": APPLIED_ACTION_FEATURE if applied else None,
                         "measured_dt": DT_FEATURE, "capture_time": CAPTURE_TIME_FEATURE},
            "units": {"action": list(act_spec.units), "state": list(obs_spec.extra_units),
                      "measured_dt": "s", "capture_time": "s"},
            "fps_from": fps_from,
            "video": {"codec": config.video.codec, "crf": config.video.crf, "gop": config.video.gop, "pix_fmt": "yuv420p"},
            "episodes": [{"episode_index": i, "source_file": dataset.paths[i].name, "metadata": t.metadata}
                         for i, t in enumerate(timings)],
        })
        atomic_write_text(root / "README.md", _card(repo_id, info, act_spec.names, act_spec.units, obs_spec.extras,
                                                     obs_spec.extra_units, source_hash, applied))
    return ExportReport(out, len(dataset), written.frames, fps, fps_from, written.data_files, written.video_files,
                        source_hash, applied, written.max_grid_offset_s, time.perf_counter() - started)


def _read_manifest(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / MANIFEST).read_text(encoding="utf-8")))


@dataclass
class _Written:
    frames: int
    data_files: int
    video_files: int
    first_video: Path | None
    stats: dict[str, dict[str, np.ndarray]]
    max_grid_offset_s: float


def _write_episodes(root: Path, dataset: EpisodeDataset, timings: list[_Timing], features: dict[str, dict[str, Any]],
                    tasks: list[str], task_of: list[str], fps: int, config: ExportConfig) -> _Written:
    from lnn_control.data.lerobot.tables import (
        episodes_table,
        frames_table,
        tasks_table,
        write_table,
    )

    data_files = _DataFiles(root, config.data_file_mb, config.chunks_size)
    video_files = _VideoFiles(root, config.camera_key, fps, config.video, config.video_file_mb, config.chunks_size)
    numeric = [name for name, f in features.items() if f["dtype"] != "video"]
    columns_so_far: dict[str, list[np.ndarray]] = {name: [] for name in numeric}
    images = ImageStats()
    rows: list[dict[str, Any]] = []
    total, max_offset = 0, 0.0
    try:
        for index, path in over_episodes(enumerate(dataset.paths), len(dataset), "export-lerobot"):
            episode = load_episode(path, dataset.manifest)
            steps = len(episode)
            frame_index = np.arange(steps, dtype=np.int64)
            grid = frame_index / fps
            measured = episode.timestamp - episode.timestamp[0]
            max_offset = max(max_offset, float(np.max(np.abs(measured - grid))))
            columns: dict[str, np.ndarray] = {
                ACTION_FEATURE: episode.label.astype(np.float32),
                APPLIED_ACTION_FEATURE: episode.action.astype(np.float32),
                STATE_FEATURE: episode.extras.astype(np.float32),
                DT_FEATURE: episode.elapsed(1.0 / fps),
                CAPTURE_TIME_FEATURE: episode.timestamp.astype(np.float64),
                "timestamp": grid.astype(np.float32),
                "frame_index": frame_index,
                "episode_index": np.full(steps, index, np.int64),
                "index": np.arange(total, total + steps, dtype=np.int64),
                "task_index": np.full(steps, tasks.index(task_of[index]), np.int64),
            }
            data_chunk, data_file = data_files.write(frames_table(features, columns))
            video_chunk, video_file, start_s, end_s = video_files.write(episode.image)
            episode_images = ImageStats()
            episode_images.add(episode.image)
            images.merge(episode_images)
            episode_stats = {config.camera_key: episode_images.stats()}
            for name in numeric:
                episode_stats[name] = vector_stats(columns[name])
                columns_so_far[name].append(columns[name])
            key = config.camera_key
            row: dict[str, Any] = {
                "episode_index": index, "tasks": [task_of[index]], "length": steps,
                "data/chunk_index": data_chunk, "data/file_index": data_file,
                "dataset_from_index": total, "dataset_to_index": total + steps,
                f"videos/{key}/chunk_index": video_chunk, f"videos/{key}/file_index": video_file,
                f"videos/{key}/from_timestamp": start_s, f"videos/{key}/to_timestamp": end_s,
            }
            for feature, feature_stats in episode_stats.items():
                for stat, value in feature_stats.items():
                    row[f"stats/{feature}/{stat}"] = value.tolist()
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            rows.append(row)
            total += steps
    finally:
        data_files.close()
        video_files.close()
    write_table(root / chunk_file_path(layout.EPISODES_PATH, 0, 0), episodes_table(rows))
    write_table(root / layout.TASKS_PATH, tasks_table(tasks))
    stats = {name: vector_stats(np.concatenate(parts)) for name, parts in columns_so_far.items()}
    stats[config.camera_key] = images.stats()
    return _Written(total, data_files.count, video_files.count, video_files.first_path, stats, max_offset)


def _card(repo_id: str, info: dict[str, Any], actions: tuple[str, ...], action_units: tuple[str, ...],
          extras: tuple[str, ...], extra_units: tuple[str, ...], source_hash: str, applied: bool) -> str:
    """A Hugging Face dataset card (README.md) in the shape LeRobot's own cards have."""
    lines = [
        "---",
        "task_categories:",
        "- robotics",
        "tags:",
        "- LeRobot",
        "- lnn-control",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A LeRobot {info['codebase_version']} dataset exported by lnn-control (`lnn-control dataset export-lerobot`): "
        f"{info['total_episodes']} episodes, {info['total_frames']} frames at {info['fps']} fps.",
        "",
        "| feature | meaning |",
        "| --- | --- |",
        f"| `action` | expert command (training label): {', '.join(f'{n} [{u}]' for n, u in zip(actions, action_units))} |",
    ]
    if extras:
        lines.append(f"| `{STATE_FEATURE}` | {', '.join(f'{n} [{u}]' for n, u in zip(extras, extra_units))} |")
    if applied:
        lines.append(f"| `{APPLIED_ACTION_FEATURE}` | command applied to the robot (label + exploration noise) |")
    lines += [
        f"| `{DT_FEATURE}` | measured seconds since the previous frame (1/fps on an episode's first frame) |",
        f"| `{CAPTURE_TIME_FEATURE}` | measured capture time, seconds on the recording's clock |",
        "| `timestamp` | frame_index / fps (LeRobot's grid; the frame's place in the video) |",
        "",
        f"Source dataset content hash: `{source_hash}`; specs and episode metadata in `{layout.LNN_META_PATH}`.",
        "",
    ]
    return "\n".join(lines)
