"""Importing LeRobot v3 datasets that lnn-control did not write, and the errors for what is not one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_testkit import write_dataset  # tests/data is on sys.path (conftest.py)

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.lerobot.export import export_lerobot
from lnn_control.data.lerobot.importer import ImportConfig, import_lerobot
from lnn_control.data.lerobot.layout import LeRobotFormatError

FPS = 10
LENGTHS = (6, 4)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image[..., ::-1])
    assert ok
    return data.tobytes()


def write_image_dataset(root: Path, cameras: tuple[str, ...] = ("observation.image",)) -> dict[str, list[np.ndarray]]:
    """A v3 dataset with PNG ``image`` features in the Parquet rows, a 3-component action whose names
    sit in a ``motors`` dict, an unnamed 2-component state, and pandas' default index column in
    tasks.parquet: the shapes other LeRobot datasets come in. Returns what was written."""
    rng = np.random.default_rng(5)
    features = {cam: {"dtype": "image", "shape": [30, 40, 3], "names": ["height", "width", "channel"]} for cam in cameras}
    features["observation.state"] = {"dtype": "float32", "shape": [2], "names": None}
    features["action"] = {"dtype": "float32", "shape": [3], "names": {"motors": ["shoulder", "elbow", "gripper"]}}
    for name in ("frame_index", "episode_index", "index", "task_index"):
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    total = sum(LENGTHS)
    frames = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(total)]
    action = rng.normal(0, 1, (total, 3)).astype(np.float32)
    state = rng.normal(0, 1, (total, 2)).astype(np.float32)
    frame_index = np.concatenate([np.arange(n) for n in LENGTHS])
    episode_index = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {cam: pa.array([{"bytes": _png(f), "path": None} for f in frames], image_type) for cam in cameras}
    columns.update({
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 2),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(action.ravel()), 3),
        "timestamp": pa.array((frame_index / FPS).astype(np.float32)),
        "frame_index": pa.array(frame_index), "episode_index": pa.array(episode_index),
        "index": pa.array(np.arange(total)), "task_index": pa.array(np.zeros(total, np.int64)),
    })
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(columns), root / "data" / "chunk-000" / "file-000.parquet")
    starts = np.cumsum([0, *LENGTHS])
    episodes = pa.table({
        "episode_index": list(range(len(LENGTHS))), "tasks": [["stack the cubes"]] * len(LENGTHS),
        "length": list(LENGTHS), "data/chunk_index": [0] * len(LENGTHS), "data/file_index": [0] * len(LENGTHS),
        "dataset_from_index": starts[:-1].tolist(), "dataset_to_index": starts[1:].tolist(),
    })
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(episodes, root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "__index_level_0__": ["stack the cubes"]}), root / "meta" / "tasks.parquet")
    info = {"codebase_version": "v3.0", "robot_type": "so100", "total_episodes": len(LENGTHS), "total_frames": total,
            "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": FPS, "splits": {"train": "0:2"}, "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": None, "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return {"frames": frames, "action": list(action), "state": list(state)}


def test_an_image_feature_dataset_imports_with_names_from_its_features(tmp_path: Path) -> None:
    written = write_image_dataset(tmp_path / "foreign")
    config = ImportConfig(state=("observation.state",), image_size=(16, 20))
    report = import_lerobot(tmp_path / "foreign", tmp_path / "episodes", config)
    assert not report.lnn_export and report.timestamps_from == "grid" and report.camera == "observation.image"
    dataset = EpisodeDataset(tmp_path / "episodes")
    spec = dataset.manifest.action_spec
    assert spec.names == ("shoulder", "elbow", "gripper") and spec.units == ("unspecified",) * 3 and spec.frame is None
    actions = np.stack(written["action"])
    np.testing.assert_array_equal(spec.low, actions.min(axis=0).astype(np.float64))
    np.testing.assert_array_equal(spec.high, actions.max(axis=0).astype(np.float64))
    obs = dataset.manifest.observation_spec
    assert obs.image_shape == (16, 20, 3) and obs.extras == ("observation.state.0", "observation.state.1")
    offset = 0
    for e, episode in enumerate(dataset):
        n = LENGTHS[e]
        expected = np.stack([cv2.resize(f, (20, 16), interpolation=cv2.INTER_AREA) for f in written["frames"][offset:offset + n]])
        np.testing.assert_array_equal(episode.image, expected)  # PNG is lossless: only the resize
        np.testing.assert_array_equal(episode.label, actions[offset:offset + n])
        np.testing.assert_array_equal(episode.action, episode.label)
        np.testing.assert_array_equal(episode.extras, np.stack(written["state"][offset:offset + n]))
        np.testing.assert_array_equal(episode.timestamp, (np.arange(n) / FPS).astype(np.float32).astype(np.float64))
        assert episode.metadata == {"source": "lerobot", "lerobot_dataset": str(tmp_path / "foreign"),
                                    "lerobot_episode_index": e, "task": "stack the cubes"}
        offset += n


def test_several_cameras_need_a_choice(tmp_path: Path) -> None:
    write_image_dataset(tmp_path / "foreign", cameras=("observation.images.top", "observation.images.wrist"))
    with pytest.raises(LeRobotFormatError, match=r"2 cameras.*observation.images.top.*--camera"):
        import_lerobot(tmp_path / "foreign", tmp_path / "episodes")
    import_lerobot(tmp_path / "foreign", tmp_path / "episodes", ImportConfig(camera="observation.images.wrist"))
    assert len(EpisodeDataset(tmp_path / "episodes")) == 2


def test_without_our_record_timestamps_come_from_the_measured_dt(tmp_path: Path) -> None:
    """An export whose meta/lnn_control.json is gone reads like any LeRobot dataset: the timing
    comes from the running sum of lnn.measured_dt (float32), not the fixed grid."""
    source = write_dataset(tmp_path / "episodes")
    export_lerobot(source, tmp_path / "lerobot")
    (tmp_path / "lerobot" / "meta" / "lnn_control.json").unlink()
    report = import_lerobot(tmp_path / "lerobot", tmp_path / "back")
    assert not report.lnn_export and report.timestamps_from == "measured_dt"
    back = EpisodeDataset(tmp_path / "back")
    assert back.manifest.action_spec.names == ("steering", "throttle") and back.manifest.observation_spec.extras == ()
    for a, b in zip(EpisodeDataset(source), back):
        np.testing.assert_allclose(np.diff(b.timestamp), np.diff(a.timestamp), atol=2e-7)  # float32 dt
        assert b.timestamp[0] == 0.0
        if len(a) > 6:
            assert np.abs(np.diff(a.timestamp) - 0.05).max() > 0.02  # the late frame is really there
        np.testing.assert_array_equal(b.label, a.label)
        np.testing.assert_array_equal(b.action, b.label)  # lnn.applied_action is ours to interpret


def test_a_v21_dataset_is_refused_naming_its_version(tmp_path: Path) -> None:
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}}))
    with pytest.raises(LeRobotFormatError, match=r"codebase_version 'v2.1'.*v3.*convert_dataset_v21_to_v30"):
        import_lerobot(tmp_path / "old", tmp_path / "episodes")
    with pytest.raises(LeRobotFormatError, match=r"not a LeRobot dataset, no meta/info.json.*export-lerobot"):
        import_lerobot(write_dataset(tmp_path / "ours"), tmp_path / "episodes")
    assert not (tmp_path / "episodes").exists()


def test_a_missing_or_shifted_video_fails_and_leaves_nothing(tmp_path: Path) -> None:
    source = write_dataset(tmp_path / "episodes")
    export_lerobot(source, tmp_path / "lerobot")
    broken = tmp_path / "shifted"
    shutil.copytree(tmp_path / "lerobot", broken)
    path = broken / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    column = "videos/observation.images.front/from_timestamp"
    shifted = pa.array([v + 0.5 / 20 for v in table.column(column).to_pylist()])  # half a frame late
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, shifted), path)
    with pytest.raises(LeRobotFormatError, match=r"no frame within .* of t="):
        import_lerobot(broken, tmp_path / "out")
    (tmp_path / "lerobot" / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4").unlink()
    with pytest.raises(LeRobotFormatError, match=r"file-000.mp4: video file missing"):
        import_lerobot(tmp_path / "lerobot", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind
