"""``lnn-control dataset export-lerobot`` and ``from-lerobot`` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from lerobot_testkit import write_dataset  # tests/data is on sys.path (conftest.py)

from lnn_control.cli import main
from lnn_control.data.episodes import EpisodeDataset


def test_export_then_import_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_dataset(tmp_path / "episodes")
    rc = main(["dataset", "export-lerobot", str(source), "--out", str(tmp_path / "lerobot"), "--fps", "20",
               "--task", "follow the road", "--repo-id", "me/roads", "--json", str(tmp_path / "export.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "LeRobot v3.0, 4 episodes, 113 frames at 20 fps (--fps)" in out
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["source_hash"] == EpisodeDataset(source).content_hash() and report["applied_action"] is True
    record = json.loads((tmp_path / "lerobot" / "meta" / "lnn_control.json").read_text())
    assert record["repo_id"] == "me/roads" and record["created_by"].startswith("lnn-control dataset export-lerobot")
    assert pq.read_table(tmp_path / "lerobot" / "meta" / "tasks.parquet").column("task").to_pylist() == ["follow the road"]

    rc = main(["dataset", "from-lerobot", str(tmp_path / "lerobot"), "--out", str(tmp_path / "back"),
               "--image-size", "24x48", "--json", str(tmp_path / "import.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "4 episodes, 113 steps from an lnn-control export" in out and "resized from 48x96" in out
    back = EpisodeDataset(tmp_path / "back")
    assert back.manifest.observation_spec.image_shape == (24, 48, 3)
    assert back.manifest.created_by.endswith("--image-size 24x48")
    np.testing.assert_array_equal(back[1].label, EpisodeDataset(source)[1].label)
    assert main(["dataset", "show", str(tmp_path / "back")]) == 0
    assert "(matches conversion.json)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["export-lerobot", "{src}", "--out", "{src}"], "already exists and is not an empty folder"),
    (["export-lerobot", "{src}", "--out", "{tmp}/x", "--repo-id", "no-slash"], "expected OWNER/NAME"),
    (["export-lerobot", "{src}", "--out", "{tmp}/x", "--crf", "99"], "crf 99 for h264: allowed 0 (best) .. 51"),
    (["export-lerobot", "{src}", "--out", "{tmp}/x", "--fps", "0"], "integer frame rate >= 1 Hz"),
    (["from-lerobot", "{src}", "--out", "{tmp}/x"], "not a LeRobot dataset, no meta/info.json"),
    (["from-lerobot", "{tmp}/nowhere", "--out", "{tmp}/x"], "no such folder"),
])
def test_user_errors_exit_2_and_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               argv: list[str], message: str) -> None:
    source = write_dataset(tmp_path / "episodes", lengths=(3,))
    args = [a.format(src=source, tmp=tmp_path) for a in argv]
    assert main(["dataset", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
