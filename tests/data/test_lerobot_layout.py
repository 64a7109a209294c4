"""What an export holds, file by file, against the LeRobot v3.0 layout (lerobot.datasets.utils,
CODEBASE_VERSION "v3.0"): info.json keys and features, Parquet schemas, episode index, tasks,
video timing, stats, and the size-based split into several files and chunks."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_testkit import LENGTHS, H, W, write_dataset  # tests/data is on sys.path (conftest.py)

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.lerobot.export import ExportConfig, export_lerobot
from lnn_control.data.lerobot.importer import import_lerobot

CAMERA = "observation.images.front"
TOTAL = sum(LENGTHS)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpisodeDataset, Path]:
    root = tmp_path_factory.mktemp("layout")
    source = write_dataset(root / "episodes")
    export_lerobot(source, root / "lerobot", ExportConfig(task="keep the lane", repo_id="someone/road"))
    return EpisodeDataset(source), root / "lerobot"


def _info(root: Path) -> dict:
    return json.loads((root / "meta" / "info.json").read_text())


def test_info_json_is_a_v30_info(export: tuple[EpisodeDataset, Path]) -> None:
    _, root = export
    info = _info(root)
    # exactly the keys LeRobot's create_empty_dataset_info writes (its loader warns about others)
    assert set(info) == {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
                         "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits",
                         "data_path", "video_path", "features"}
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (len(LENGTHS), TOTAL, 1)
    assert info["fps"] == 20 and isinstance(info["fps"], int)  # 1 / median measured period (50 ms +- jitter)
    assert info["splits"] == {"train": f"0:{len(LENGTHS)}"}
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (1000, 100, 200)
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert list(features)[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert features["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        assert features[name] == {"dtype": "int64", "shape": [1], "names": None}
    assert features["action"] == {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]}
    assert features["lnn.applied_action"] == {"dtype": "float32", "shape": [2], "names": ["steering", "throttle"]}
    assert features["observation.state"] == {"dtype": "float32", "shape": [1], "names": ["speed"]}
    assert features["lnn.measured_dt"]["dtype"] == "float32" and features["lnn.capture_time"]["dtype"] == "float64"
    camera = features[CAMERA]
    assert (camera["dtype"], camera["shape"], camera["names"]) == ("video", [H, W, 3], ["height", "width", "channels"])
    assert camera["info"] == {"video.height": H, "video.width": W, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                              "video.is_depth_map": False, "video.fps": 20, "video.channels": 3, "has_audio": False}
    for path in ("meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                 "data/chunk-000/file-000.parquet", f"videos/{CAMERA}/chunk-000/file-000.mp4",
                 "meta/lnn_control.json", "README.md"):
        assert (root / path).is_file(), path
    assert "someone/road" in (root / "README.md").read_text()


def test_frame_rows_have_the_column_types_lerobot_casts_to(export: tuple[EpisodeDataset, Path]) -> None:
    source, root = export
    path = root / "data" / "chunk-000" / "file-000.parquet"
    schema = pq.read_schema(path)
    assert [(f.name, f.type) for f in schema] == [
        ("observation.state", pa.float32()),
        ("action", pa.list_(pa.float32(), 2)),
        ("lnn.applied_action", pa.list_(pa.float32(), 2)),
        ("lnn.measured_dt", pa.float32()),
        ("lnn.capture_time", pa.float64()),
        ("timestamp", pa.float32()),
        ("frame_index", pa.int64()),
        ("episode_index", pa.int64()),
        ("index", pa.int64()),
        ("task_index", pa.int64()),
    ]
    assert pq.read_metadata(path).num_row_groups == len(LENGTHS)  # one per episode
    table = pq.read_table(path).to_pydict()
    frame_index = np.concatenate([np.arange(n) for n in LENGTHS])
    np.testing.assert_array_equal(table["frame_index"], frame_index)
    np.testing.assert_array_equal(table["episode_index"], np.repeat(np.arange(len(LENGTHS)), LENGTHS))
    np.testing.assert_array_equal(table["index"], np.arange(TOTAL))
    np.testing.assert_array_equal(table["task_index"], np.zeros(TOTAL))
    np.testing.assert_array_equal(np.asarray(table["timestamp"], np.float32), (frame_index / 20).astype(np.float32))
    episodes = list(source)
    np.testing.assert_array_equal(np.asarray(table["action"], np.float32), np.concatenate([e.label for e in episodes]))
    np.testing.assert_array_equal(np.asarray(table["lnn.measured_dt"], np.float32),
                                  np.concatenate([e.elapsed(1 / 20) for e in episodes]))
    np.testing.assert_array_equal(table["lnn.capture_time"], np.concatenate([e.timestamp for e in episodes]))


def test_episode_index_tasks_and_video_times(export: tuple[EpisodeDataset, Path]) -> None:
    _, root = export
    rows = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    starts = np.cumsum([0, *LENGTHS])
    for e, row in enumerate(rows):
        assert row["episode_index"] == e and row["length"] == LENGTHS[e] and row["tasks"] == ["keep the lane"]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (starts[e], starts[e + 1])
        assert (row["data/chunk_index"], row["data/file_index"]) == (0, 0)
        assert (row[f"videos/{CAMERA}/chunk_index"], row[f"videos/{CAMERA}/file_index"]) == (0, 0)
        assert row[f"videos/{CAMERA}/from_timestamp"] == starts[e] / 20
        assert row[f"videos/{CAMERA}/to_timestamp"] == starts[e + 1] / 20
        assert (row["meta/episodes/chunk_index"], row["meta/episodes/file_index"]) == (0, 0)
        assert row["stats/action/count"] == [LENGTHS[e]]
        assert np.array(row[f"stats/{CAMERA}/mean"]).shape == (3, 1, 1)
    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0], "task": ["keep the lane"]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]  # pandas reads task as the index
    # every frame sits at k / fps in the one video file; a key frame every 2 frames (LeRobot's g=2)
    with av.open(str(root / "videos" / CAMERA / "chunk-000" / "file-000.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.pix_fmt == "yuv420p"
        times, keys = zip(*[(float(f.pts * stream.time_base), f.key_frame) for f in container.decode(stream)])
    assert list(times) == [k / 20 for k in range(TOTAL)]
    assert all(keys[::2])


def test_stats_summarise_all_the_data(export: tuple[EpisodeDataset, Path]) -> None:
    source, root = export
    stats = json.loads((root / "meta" / "stats.json").read_text())
    features = _info(root)["features"]
    assert set(stats) == {k for k, f in features.items()}
    labels = np.concatenate([e.label for e in source]).astype(np.float64)
    action = stats["action"]
    assert set(action) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    np.testing.assert_allclose(action["mean"], labels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(action["std"], labels.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(action["q90"], np.quantile(labels, 0.9, axis=0), rtol=1e-12)
    assert action["count"] == [TOTAL]
    pixels = np.concatenate([e.image for e in source]).reshape(-1, 3).astype(np.float64)
    image = {k: np.array(v) for k, v in stats[CAMERA].items() if k != "count"}
    assert all(v.shape == (3, 1, 1) for v in image.values())
    np.testing.assert_allclose(image["mean"].ravel(), pixels.mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(image["std"].ravel(), pixels.std(axis=0) / 255, rtol=1e-9)  # summation order
    np.testing.assert_allclose(image["q50"].ravel(), np.quantile(pixels, 0.5, axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(image["q01"].ravel(), np.quantile(pixels, 0.01, axis=0) / 255, rtol=1e-12)


def test_files_past_the_size_limit_roll_over_to_new_files_and_chunks(tmp_path: Path) -> None:
    source = write_dataset(tmp_path / "episodes")
    config = ExportConfig(fps=25, data_file_mb=1e-9, video_file_mb=1e-9, chunks_size=3)  # one episode per file
    export_lerobot(source, tmp_path / "lerobot", config)
    root = tmp_path / "lerobot"
    expected = [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert sorted(str(p.relative_to(root)) for p in root.glob("data/*/*.parquet")) == [
        f"data/chunk-{c:03d}/file-{f:03d}.parquet" for c, f in expected]
    rows = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == expected
    # video: a file closes once the encoder has put out more than the limit (it holds a few frames
    # back), so an episode starts either a new file at t=0 or continues the last one where it ended
    videos = [(r[f"videos/{CAMERA}/chunk_index"], r[f"videos/{CAMERA}/file_index"]) for r in rows]
    assert videos[0] == (0, 0) and len(set(videos)) >= 2
    for previous, row, n in zip([None, *rows], rows, LENGTHS):
        start, end = row[f"videos/{CAMERA}/from_timestamp"], row[f"videos/{CAMERA}/to_timestamp"]
        same_file = previous is not None and videos[rows.index(previous)] == videos[rows.index(row)]
        assert start == (previous[f"videos/{CAMERA}/to_timestamp"] if same_file else 0.0)
        assert end == pytest.approx(start + n / 25, abs=1e-12)
    assert len(list(root.glob(f"videos/{CAMERA}/*/*.mp4"))) == len(set(videos))
    assert _info(root)["fps"] == 25
    import_lerobot(root, tmp_path / "back")
    for a, b in zip(EpisodeDataset(source), EpisodeDataset(tmp_path / "back")):
        np.testing.assert_array_equal(b.label, a.label)
        np.testing.assert_array_equal(b.timestamp, a.timestamp)
        assert np.abs(a.image.astype(int) - b.image).mean() < 5.0
