"""``lnn-control bench study`` times a real (tiny) study with 1 and 2 workers: the data cell once,
untimed; every timed run does all train + evaluation cells and gives the same results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lnn_control.cli import main

pytestmark = pytest.mark.slow

TINY = {
    "name": "bench-tiny",
    "task": "lane-keeping",
    "training_launch": "lane_keeping",
    "architectures": ["ltc_ncp19", "cnn_feedforward"],
    "seeds": [0],
    "env_kwargs": {"road_length": 5.0},
    "data": {"episodes": 3},
    "train": {"epochs": 1},
    "eval": {"conditions": {"rain": [3]}, "episodes": 1},
}
TRAIN_AND_EVAL_CELLS = 2 + 2 * 2  # 2 models, each evaluated clean + rain:3


def test_bench_study_times_the_parallel_cells_per_worker_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_file, out = tmp_path / "tiny.yaml", tmp_path / "bench.json"
    study_file.write_text(yaml.safe_dump(TINY))
    assert main(["bench", "study", "--launch", str(study_file), "--workers", "1,2", "--repeats", "1",
                 "--json", str(out)]) == 0
    assert "same report results in every run: yes" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [(r["workers"], r["cells"]) for r in report["runs"]] == [(1, TRAIN_AND_EVAL_CELLS), (2, TRAIN_AND_EVAL_CELLS)]
    assert all(r["seconds"] > 0 for r in report["runs"])
    assert report["ratio_to_baseline"]["1"] == 1.0 and report["ratio_to_baseline"]["2"] > 0
    assert report["same_results"] is True


def test_bench_study_rejects_bad_worker_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "study", "--workers", "1,two"]) == 2
    assert "--workers must be comma-separated worker counts" in capsys.readouterr().err
    assert main(["bench", "study", "--workers", "0,2"]) == 2
    assert "worker counts ≥ 1, got (0, 2)" in capsys.readouterr().err
