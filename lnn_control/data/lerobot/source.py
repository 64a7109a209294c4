"""Reading a LeRobot v3 dataset folder: info, tasks, episode index, frame columns, camera frames.

Any v3 dataset, lnn-control's own exports or others: the files are found through ``info.json``'s
path templates and the episode index (``meta/episodes``), as LeRobot's loader finds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.data.lerobot import layout
from lnn_control.data.lerobot.layout import LeRobotFormatError, chunk_file_path


@dataclass(frozen=True)
class EpisodeEntry:
    """One row of ``meta/episodes``: where an episode's frames and video lie."""

    index: int
    length: int
    tasks: tuple[str, ...]
    data_file: tuple[int, int]
    video_file: tuple[int, int] | None
    video_from_s: float


class LeRobotSource:
    """A v3 dataset at ``root``; LeRobotFormatError names the file and what is wrong with it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.info = layout.read_info(self.root)
        self.fps = float(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.lnn_meta = self._read_lnn_meta()

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in layout.VISUAL_DTYPES]

    def _read_lnn_meta(self) -> dict[str, Any] | None:
        path = self.root / layout.LNN_META_PATH
        if not path.is_file():
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LeRobotFormatError(f"{path}: unreadable: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != layout.LNN_META_FORMAT:
            raise LeRobotFormatError(f"{path}: not an lnn-control export record (format {meta.get('format') if isinstance(meta, dict) else None!r})")
        if meta.get("version") != layout.LNN_META_VERSION:
            raise LeRobotFormatError(f"{path}: record version {meta.get('version')!r}; this lnn-control reads version {layout.LNN_META_VERSION}")
        return meta

    def tasks(self) -> dict[int, str]:
        from lnn_control.data.lerobot.tables import read_tasks

        path = self.root / layout.TASKS_PATH
        return read_tasks(path) if path.is_file() else {}

    def episodes(self, camera: str) -> list[EpisodeEntry]:
        """The episode index in episode order, with ``camera``'s video file and start time."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = sorted((self.root / layout.EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        if not files:
            raise LeRobotFormatError(f"{self.root}: no episode index ({layout.EPISODES_DIR}/chunk-*/file-*.parquet)")
        video = self.features.get(camera, {}).get("dtype") == "video"
        wanted = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        if video:
            wanted += [f"videos/{camera}/chunk_index", f"videos/{camera}/file_index", f"videos/{camera}/from_timestamp"]
        entries: list[EpisodeEntry] = []
        for path in files:
            try:
                schema = pq.read_schema(path)
                missing = [name for name in wanted if name not in schema.names]
                if missing:
                    raise LeRobotFormatError(f"{path}: episode index lacks columns {missing}")
                columns = wanted + (["tasks"] if "tasks" in schema.names else [])
                table = pq.read_table(path, columns=columns).to_pydict()
            except (OSError, pa.ArrowException) as exc:
                raise LeRobotFormatError(f"{path}: unreadable episode index: {exc}") from exc
            for i in range(len(table["episode_index"])):
                entries.append(EpisodeEntry(
                    index=int(table["episode_index"][i]),
                    length=int(table["length"][i]),
                    tasks=tuple(table["tasks"][i] or ()) if "tasks" in table else (),
                    data_file=(int(table["data/chunk_index"][i]), int(table["data/file_index"][i])),
                    video_file=(int(table[f"videos/{camera}/chunk_index"][i]), int(table[f"videos/{camera}/file_index"][i]))
                    if video else None,
                    video_from_s=float(table[f"videos/{camera}/from_timestamp"][i]) if video else 0.0,
                ))
        entries.sort(key=lambda e: e.index)
        return entries

    def data_path(self, chunk: int, file: int) -> Path:
        return self.root / chunk_file_path(str(self.info["data_path"]), chunk, file)

    def video_path(self, camera: str, chunk: int, file: int) -> Path:
        return self.root / chunk_file_path(str(self.info["video_path"]), chunk, file, camera)

    def read_columns(self, path: Path, names: list[str]) -> dict[str, np.ndarray]:
        """Numeric columns of one data file as [T, N] arrays (``episode_index`` etc. as [T, 1])."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from lnn_control.data.lerobot.tables import column_array

        try:
            present = pq.read_schema(path).names
            missing = [n for n in names if n not in present]
            if missing:
                raise LeRobotFormatError(f"{path}: data file lacks columns {missing} (has {present})")
            table = pq.read_table(path, columns=names)
        except FileNotFoundError:
            raise LeRobotFormatError(f"{path}: data file missing (named by the episode index)") from None
        except (OSError, pa.ArrowException) as exc:
            raise LeRobotFormatError(f"{path}: unreadable data file: {exc}") from exc
        return {name: column_array(table.column(name), name, path) for name in names}

    def read_images(self, path: Path, camera: str) -> list[Any]:
        """An ``image`` feature's cells ({bytes, path} structs) of one data file, in row order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_table(path, columns=[camera]).column(camera).to_pylist())
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise LeRobotFormatError(f"{path}: cannot read image column {camera!r}: {exc}") from exc

    def decode_image(self, cell: Any, where: str) -> np.ndarray:
        """A stored image (PNG/JPEG bytes, or a path under the dataset root) as uint8 RGB [H, W, 3]."""
        import cv2

        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data and isinstance(cell, dict) and cell.get("path"):
            file = self.root / str(cell["path"])
            if not file.is_file():
                raise LeRobotFormatError(f"{where}: image file {file} missing")
            data = file.read_bytes()
        if not data:
            raise LeRobotFormatError(f"{where}: empty image cell")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise LeRobotFormatError(f"{where}: image bytes are not a decodable PNG/JPEG")
        return np.ascontiguousarray(image[..., ::-1])
