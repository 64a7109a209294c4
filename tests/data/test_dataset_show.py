"""`dataset show` and `dataset contact-sheet` on a dataset converted from real run logs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from lnn_data_testkit import SPEC, human_steps, policy_steps, write_log

from lnn_control.cli import main
from lnn_control.data.contact_sheet import (
    CAPTION_HEIGHT,
    GAP,
    HEADER_HEIGHT,
    sample_indices,
    sheet_size,
)
from lnn_control.data.episodes import DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.spec import ActionSpec, ObservationSpec


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("show")
    log = write_log(root / "run.mcap", policy_steps(12) + human_steps(8), takeover="keyboard", seed=5)
    assert main(["dataset", "from-log", str(log.path), "--out", str(root / "data"), "--spec", SPEC]) == 0
    return root / "data"


def test_show_prints_episodes_sources_label_statistics_and_hash(data: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["dataset", "show", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    dataset = EpisodeDataset(data)
    labels = np.concatenate([e.label[:, 0] for e in dataset]).astype(np.float64)
    assert summary["total"]["episodes"] == 2 and summary["total"]["steps"] == 20
    assert [(e["source"], e["steps"]) for e in summary["episodes"]] == [("policy", 12), ("human", 8)]
    first = dataset[0]
    assert summary["episodes"][0]["duration_s"] == pytest.approx(first.timestamp[-1] - first.timestamp[0])
    assert summary["sources"]["human"]["steps"] == 8 and summary["sources"]["policy"]["episodes"] == 1
    stats = summary["labels"]["steering"]
    assert stats["mean"] == pytest.approx(labels.mean()) and stats["std"] == pytest.approx(labels.std())
    assert (stats["min"], stats["max"]) == (pytest.approx(labels.min()), pytest.approx(labels.max()))
    assert summary["dataset_hash"] == dataset.content_hash() and summary["hash_matches_record"] is True
    assert main(["dataset", "show", str(data)]) == 0
    text = capsys.readouterr().out
    assert f"hash {dataset.content_hash()} (matches conversion.json)" in text
    assert "2 episodes, 20 steps" in text and "policy 1 episodes, 12 steps" in text
    assert f"steering     normalized  {labels.mean():>9.4f} {labels.std():>9.4f}" in text
    assert "run.mcap 0.00-0.22 s" in text


def test_show_notices_a_changed_dataset_and_missing_folder(data: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in data.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (copy / "episodes" / "episode_000001.safetensors").unlink()
    assert main(["dataset", "show", str(copy)]) == 0
    assert "CHANGED since conversion.json" in capsys.readouterr().out
    assert main(["dataset", "show", str(tmp_path / "nothing")]) == 2
    assert "no dataset manifest" in capsys.readouterr().err


def test_contact_sheet_png_has_the_grid_size_and_the_frames(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    assert main(["dataset", "contact-sheet", str(data), "--out", str(out), "--frames", "7",
                 "--columns", "3", "--scale", "2"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[:2] == sheet_size(7, 3, (64, 128, 3), 2)
    sheet = cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)
    dataset = EpisodeDataset(data)
    frames = np.concatenate([e.image for e in dataset])
    chosen = sample_indices(len(frames), 7)
    assert chosen[0] == 0 and chosen[-1] == len(frames) - 1 and len(chosen) == 7
    for cell in (0, 4, 6):  # first, middle (second row), last frame, enlarged twice
        x = GAP + (cell % 3) * (256 + GAP)
        y = HEADER_HEIGHT + (cell // 3) * (128 + CAPTION_HEIGHT + GAP)
        expected = np.repeat(np.repeat(frames[chosen[cell]], 2, axis=0), 2, axis=1)
        assert np.array_equal(sheet[y : y + 128, x : x + 256], expected)
    assert main(["dataset", "contact-sheet", str(data), "--out", str(tmp_path / "x.png"), "--scale", "9"]) == 2



def test_show_reads_simulated_datasets_too(tmp_path: Path, capsys) -> None:
    manifest = DatasetManifest(ObservationSpec((8, 16, 3)), ActionSpec(("vx", "yaw_rate"), (-1.0, -2.0), (1.0, 2.0),
                                                                         ("m/s", "rad/s")), created_by="test")
    writer = EpisodeWriter(tmp_path, manifest)
    for mode, steps in (("expert", 4), ("dagger", 3)):
        writer.begin_episode()
        for t in range(steps):
            value = np.array([0.1 * t, -0.2 * t])
            writer.add_step({"image": np.zeros((8, 16, 3), np.uint8)}, value, value, timestamp=0.05 * t)
        writer.end_episode({"mode": mode, "seed": 1})
    assert main(["dataset", "show", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [e["source"] for e in summary["episodes"]] == ["expert", "dagger"]
    assert summary["episodes"][0]["duration_s"] == pytest.approx(0.15) and summary["recorded_hash"] is None
    assert summary["labels"]["yaw_rate"]["min"] == pytest.approx(-0.6)
    assert summary["labels"]["vx"]["mean"] == pytest.approx(np.mean([0, 0.1, 0.2, 0.3, 0, 0.1, 0.2]))
