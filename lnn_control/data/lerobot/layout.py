"""The LeRobot dataset v3.0 layout: paths, ``meta/info.json``, and the features lnn-control adds.

As written and read by huggingface/lerobot (``lerobot.datasets.utils``, ``CODEBASE_VERSION = "v3.0"``)::

    meta/info.json                               codebase_version, fps, features, path templates, totals
    meta/stats.json                              per feature: min, max, mean, std, count, q01 .. q99
    meta/tasks.parquet                           task (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: length, file indices, time range, stats
    data/chunk-000/file-000.parquet              one row per frame, several episodes per file
    videos/<camera key>/chunk-000/file-000.mp4   several episodes per file, back to back

A file holds at most ``data_files_size_in_mb`` / ``video_files_size_in_mb``; a chunk folder holds at
most ``chunks_size`` files. lnn-control's own record (action spec, source dataset hash, episode
metadata) is ``meta/lnn_control.json``, a file LeRobot does not read: LeRobot warns about unknown
keys in ``info.json``, so nothing is added there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lnn_control.data.episodes import DatasetError

CODEBASE_VERSION = "v3.0"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

#: the per-frame bookkeeping features every LeRobot dataset has (``DEFAULT_FEATURES``)
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

LNN_META_PATH = "meta/lnn_control.json"
LNN_META_FORMAT = "lnn-control-lerobot-export"
LNN_META_VERSION = 1
DEFAULT_CAMERA_KEY = "observation.images.front"
ACTION_FEATURE = "action"
STATE_FEATURE = "observation.state"
#: measured seconds since the previous frame (float32; the first frame of an episode: 1/fps)
DT_FEATURE = "lnn.measured_dt"
#: measured capture time of the frame, seconds on the recording's clock (float64, exact)
CAPTURE_TIME_FEATURE = "lnn.capture_time"
#: the action applied to the robot where it differs from the ``action`` label (DART noise, DAgger)
APPLIED_ACTION_FEATURE = "lnn.applied_action"
VISUAL_DTYPES = ("video", "image")


class LeRobotFormatError(DatasetError):
    """A folder is not a LeRobot v3 dataset, or one of its files is missing or inconsistent."""


def chunk_file_path(template: str, chunk_index: int, file_index: int, video_key: str = "") -> str:
    """``template`` (``DATA_PATH``, ``VIDEO_PATH``, ``EPISODES_PATH``) filled in."""
    return template.format(chunk_index=chunk_index, file_index=file_index, video_key=video_key)


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: a chunk folder holds ``chunks_size`` files (LeRobot's rule)."""
    if file_index >= chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json`` of a v3 dataset, checked for what a reader needs; LeRobotFormatError otherwise."""
    path = root / INFO_PATH
    if not root.is_dir():
        raise LeRobotFormatError(f"{root}: no such folder; pass the root folder of a LeRobot v3 dataset (the one holding meta/)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found = sorted(p.name for p in root.iterdir())[:8]
        hint = " (it looks like an lnn-control episode dataset: export it with 'lnn-control dataset export-lerobot')" \
            if (root / "dataset.json").is_file() else ""
        raise LeRobotFormatError(f"{root}: not a LeRobot dataset, no {INFO_PATH} (found {found}){hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeRobotFormatError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(info, dict):
        raise LeRobotFormatError(f"{path}: expected a JSON object, found {type(info).__name__}")
    version = info.get("codebase_version")
    if not (isinstance(version, str) and version.startswith("v3.")):
        raise LeRobotFormatError(
            f"{path}: codebase_version {version!r}; this reads LeRobot v3.x datasets (v3.0 layout). Convert a "
            "v2.1 dataset with LeRobot first: python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=REPO"
        )
    missing = [key for key in ("fps", "features", "data_path") if key not in info]
    if missing:
        raise LeRobotFormatError(f"{path}: missing {missing}; a v3.0 info.json has fps, features, data_path, video_path")
    fps = info["fps"]
    if not isinstance(fps, int | float) or fps <= 0:
        raise LeRobotFormatError(f"{path}: fps {fps!r} must be a positive number of frames per second")
    features = info["features"]
    if not isinstance(features, dict) or not features:
        raise LeRobotFormatError(f"{path}: features must be a non-empty object of name -> {{dtype, shape, names}}")
    for name, feature in features.items():
        if not isinstance(feature, dict) or "dtype" not in feature or "shape" not in feature:
            raise LeRobotFormatError(f"{path}: feature {name!r} has no dtype/shape: {feature!r}")
    if any(f["dtype"] == "video" for f in features.values()) and not info.get("video_path"):
        raise LeRobotFormatError(f"{path}: video features but no video_path template")
    return info


def feature_names(key: str, feature: dict[str, Any]) -> list[str]:
    """Component names of a 1-D feature: its ``names`` (a list, or a dict holding one list, as some
    datasets write ``{"motors": [...]}``), else ``key.0``, ``key.1``, ..."""
    shape = feature.get("shape") or [1]
    size = int(shape[0]) if len(shape) == 1 else 0
    names = feature.get("names")
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == size and all(isinstance(n, str) for n in names):
        return list(names)
    return [f"{key}.{i}" for i in range(size)]
