"""Conformance with the real LeRobot: its loader reads our exports, our importer reads its datasets.

Runs only where ``lerobot`` is importable (an optional environment; see the README's LeRobot
section for the commands). Checked with lerobot 0.4.4, the last release that installs on Python
3.11, decoding video through torchcodec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.lerobot.export import ExportConfig, export_lerobot
from lnn_control.data.lerobot.importer import import_lerobot

lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
torch = pytest.importorskip("torch")

from lerobot_testkit import write_dataset  # noqa: E402  (tests/data is on sys.path, conftest.py)

CAMERA = "observation.images.front"
TASK = "keep the lane"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[EpisodeDataset, Path]:
    root = tmp_path_factory.mktemp("conformance")
    source = write_dataset(root / "episodes")
    export_lerobot(source, root / "lerobot", ExportConfig(task=TASK))
    return EpisodeDataset(source), root / "lerobot"


def test_lerobot_loads_every_frame_as_exported(exported: tuple[EpisodeDataset, Path]) -> None:
    source, root = exported
    dataset = lerobot_dataset.LeRobotDataset("lnn-control/test", root=root)
    episodes = list(source)
    assert dataset.num_episodes == len(episodes)
    assert len(dataset) == sum(len(e) for e in episodes)
    assert dataset.fps == 20
    assert dataset.meta.camera_keys == [CAMERA]
    offsets = np.cumsum([0] + [len(e) for e in episodes])
    for index in range(len(dataset)):
        item = dataset[index]
        e = int(np.searchsorted(offsets, index, side="right") - 1)
        k = index - offsets[e]
        episode = episodes[e]
        assert int(item["episode_index"]) == e and int(item["frame_index"]) == k
        assert item["task"] == TASK
        np.testing.assert_array_equal(item["action"].numpy(), episode.label[k])
        np.testing.assert_array_equal(item["lnn.applied_action"].numpy(), episode.action[k])
        assert float(item["observation.state"]) == episode.extras[k, 0]
        assert float(item["timestamp"]) == np.float32(k / 20)
        assert float(item["lnn.measured_dt"]) == episode.elapsed(1 / 20)[k]
        frame = item[CAMERA].numpy()  # [3, H, W] in [0, 1]
        assert frame.shape == (3, *episode.image.shape[1:3])
        error = np.abs(frame.transpose(1, 2, 0) * 255 - episode.image[k]).mean()
        assert error < 6.0, f"frame {index}: mean abs error {error:.2f} of 255"


def test_lerobot_and_our_importer_decode_the_same_frames(exported: tuple[EpisodeDataset, Path], tmp_path: Path) -> None:
    _, root = exported
    import_lerobot(root, tmp_path / "back")
    ours = np.concatenate([e.image for e in EpisodeDataset(tmp_path / "back")])
    dataset = lerobot_dataset.LeRobotDataset("lnn-control/test", root=root)
    theirs = np.stack([(dataset[i][CAMERA].numpy().transpose(1, 2, 0) * 255).round() for i in range(len(dataset))])
    assert np.abs(theirs - ours).mean() < 1.0  # the same H.264 stream; the YUV->RGB conversions may differ by a level


def test_lerobot_delta_timestamps_stats_and_dataloader(exported: tuple[EpisodeDataset, Path]) -> None:
    from lerobot.datasets.compute_stats import aggregate_stats

    source, root = exported
    first = len(source[0])
    dataset = lerobot_dataset.LeRobotDataset(
        "lnn-control/test", root=root, delta_timestamps={CAMERA: [-0.1, 0.0], "action": [0.0, 0.05, 0.1]})
    item = dataset[first - 2]  # two frames before the first episode ends: the last future action is padding
    assert tuple(item[CAMERA].shape) == (2, 3, 48, 96)
    assert item["action_is_pad"].tolist() == [False, False, True]
    np.testing.assert_array_equal(item["action"][:2].numpy(), source[0].label[first - 2 :])
    aggregate_stats([dataset.meta.stats])  # LeRobot's own shape checks (image stats [3, 1, 1], count [1])
    assert dataset.meta.stats["action"]["mean"].shape == (2,)
    loader = torch.utils.data.DataLoader(lerobot_dataset.LeRobotDataset("lnn-control/test", root=root), batch_size=8)
    batch = next(iter(loader))
    assert tuple(batch[CAMERA].shape) == (8, 3, 48, 96) and tuple(batch["action"].shape) == (8, 2)


def test_our_importer_reads_a_dataset_lerobot_recorded(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    features = {
        "observation.images.cam": {"dtype": "video", "shape": (32, 64, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["vx", "vy"]},
    }
    dataset = lerobot_dataset.LeRobotDataset.create("test/recorded", fps=10, features=features,
                                                    root=tmp_path / "recorded", use_videos=True)
    written = []
    for length in (12, 7):
        frames, actions = [], []
        for _ in range(length):
            image = np.full((32, 64, 3), rng.integers(40, 200, 3), np.uint8)
            action = rng.normal(0, 1, 2).astype(np.float32)
            dataset.add_frame({"observation.images.cam": image, "observation.state": rng.normal(0, 1, 2).astype(np.float32),
                               "action": action, "task": "push"})
            frames.append(image)
            actions.append(action)
        dataset.save_episode()
        written.append((np.stack(frames), np.stack(actions)))
    dataset.finalize()

    report = import_lerobot(tmp_path / "recorded", tmp_path / "episodes")
    assert not report.lnn_export and report.timestamps_from == "grid"
    imported = EpisodeDataset(tmp_path / "episodes")
    assert imported.manifest.action_spec.names == ("vx", "vy")
    assert len(imported) == 2
    for (frames, actions), episode in zip(written, imported):
        np.testing.assert_array_equal(episode.label, actions)
        np.testing.assert_allclose(episode.timestamp, np.arange(len(actions)) / 10, atol=1e-6)
        assert np.abs(episode.image.astype(float) - frames).mean() < 6.0
        assert episode.metadata["task"] == "push"
