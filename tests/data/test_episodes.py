"""Episode datasets: round trip, crash safety, and clear errors for bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lnn_control.data.episodes import (
    DatasetError,
    DatasetManifest,
    EpisodeDataset,
    EpisodeWriter,
)
from lnn_control.spec import ActionSpec, ObservationSpec

MANIFEST = DatasetManifest(
    observation_spec=ObservationSpec(image_shape=(8, 16, 3), extras=("speed",), extra_units=("m/s",)),
    action_spec=ActionSpec(names=("steering",), low=(-1.0,), high=(1.0,), units=("normalized",)),
    created_by="test",
)


def _write_episode(writer: EpisodeWriter, steps: int, seed: int) -> Path | None:
    rng = np.random.default_rng(seed)
    writer.begin_episode()
    for t in range(steps):
        obs = {"image": rng.integers(0, 256, (8, 16, 3), dtype=np.uint8), "speed": np.array([1.5], np.float32)}
        writer.add_step(obs, np.array([0.1 * t]), np.array([0.2 * t]), timestamp=0.05 * t + 0.001 * (t % 3))
    return writer.end_episode({"seed": seed})


def test_round_trip_keeps_every_array_and_metadata(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path, MANIFEST)
    _write_episode(writer, 5, seed=1)
    _write_episode(writer, 3, seed=2)
    dataset = EpisodeDataset(tmp_path)
    assert len(dataset) == 2
    first, second = dataset[0], dataset[1]
    assert len(first) == 5 and len(second) == 3
    assert first.metadata == {"seed": 1}
    np.testing.assert_allclose(first.label[:, 0], 0.2 * np.arange(5), rtol=1e-6)
    np.testing.assert_allclose(first.extras[:, 0], 1.5)
    # measured, irregular timestamps survive, and elapsed() derives dt from them
    np.testing.assert_allclose(first.elapsed(0.05)[1:], np.diff(first.timestamp), rtol=1e-6)
    assert first.elapsed(0.05)[0] == pytest.approx(0.05)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(first.image[0], rng.integers(0, 256, (8, 16, 3), dtype=np.uint8))


def test_content_hash_is_stable_and_changes_with_data(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path, MANIFEST)
    _write_episode(writer, 4, seed=1)
    before = EpisodeDataset(tmp_path).content_hash()
    assert EpisodeDataset(tmp_path).content_hash() == before
    _write_episode(writer, 4, seed=2)
    assert EpisodeDataset(tmp_path).content_hash() != before


def test_killed_writer_loses_only_the_episode_in_progress(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_episodes import MANIFEST, _write_episode
        from lnn_control.data.episodes import EpisodeWriter
        writer = EpisodeWriter({str(tmp_path)!r}, MANIFEST)
        for seed in range(3):
            _write_episode(writer, 4, seed)
        writer.begin_episode()
        writer.add_step({{"image": np.zeros((8, 16, 3), np.uint8), "speed": np.ones(1)}}, [0.0], [0.0], 0.0)
        print("in-progress", flush=True)
        sys.stdin.read()   # block until killed, mid-episode
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "in-progress"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    # a stray temporary file, as a kill during a write would leave, is ignored
    (tmp_path / "episodes" / ".episode_000003.safetensors.abc.tmp").write_bytes(b"partial")
    dataset = EpisodeDataset(tmp_path)
    assert len(dataset) == 3
    assert [len(episode) for episode in dataset] == [4, 4, 4]


def test_truncated_episode_names_the_file(tmp_path: Path) -> None:
    path = _write_episode(EpisodeWriter(tmp_path, MANIFEST), 3, seed=0)
    assert path is not None
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=path.name):
        EpisodeDataset(tmp_path)[0]


def test_wrong_image_shape_is_rejected_with_expected_shape(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path, MANIFEST)
    writer.begin_episode()
    with pytest.raises(DatasetError, match=r"expects uint8 \(8, 16, 3\)"):
        writer.add_step({"image": np.zeros((8, 8, 3), np.uint8), "speed": np.ones(1)}, [0.0], [0.0], 0.0)


def test_appending_with_other_specs_is_refused(tmp_path: Path) -> None:
    EpisodeWriter(tmp_path, MANIFEST)
    other = DatasetManifest(
        observation_spec=ObservationSpec(image_shape=(8, 16, 3)),
        action_spec=MANIFEST.action_spec,
    )
    with pytest.raises(DatasetError, match="different specs"):
        EpisodeWriter(tmp_path, other)


def test_missing_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lnn-control collect"):
        EpisodeDataset(tmp_path)


def test_atomic_writes_get_normal_file_permissions(tmp_path: Path) -> None:
    from lnn_control.atomic import atomic_write_text

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644



def test_metadata_comes_from_the_header_alone(tmp_path: Path) -> None:
    """``EpisodeDataset.metadata(i)`` equals the loaded episode's metadata without reading its arrays."""
    writer = EpisodeWriter(tmp_path, MANIFEST)
    _write_episode(writer, 3, seed=7)
    dataset = EpisodeDataset(tmp_path)
    assert dataset.metadata(0) == dataset[0].metadata == {"seed": 7}
