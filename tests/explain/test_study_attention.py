"""``attention: {enabled: true}`` in a study file: attention cells and a report table; without it,
a study is planned, hashed and reported exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lnn_control.cli import main
from lnn_control.config import ConfigError
from lnn_control.study.attention import attention_cells
from lnn_control.study.config import load_study

TINY = {
    "name": "attention",
    "task": "lane-keeping",
    "training_launch": "lane_keeping",
    "architectures": ["ltc_ncp19"],
    "seeds": [0],
    "env_kwargs": {"road_length": 8.0},
    "data": {"episodes": 2},
    "train": {"epochs": 1},
    "eval": {"conditions": {"rain": [3]}, "timing_ablation": False, "episodes": 1},
}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_without_the_section_nothing_changes(tmp_path: Path) -> None:
    plain, _ = load_study(_write(tmp_path, TINY))
    assert "attention" not in plain.canonical()  # same digest as before the option existed
    assert attention_cells(plain) == []
    off, _ = load_study(_write(tmp_path, {**TINY, "attention": {"enabled": False}}))
    assert off.digest() == plain.digest()


def test_bad_attention_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'attention.seconds' must be > 0"):
        load_study(_write(tmp_path, {**TINY, "attention": {"enabled": True, "seconds": 0}}))
    with pytest.raises(ConfigError, match="attention"):
        load_study(_write(tmp_path, {**TINY, "attention": {"enabled": True, "colour": "red"}}))


@pytest.mark.slow
def test_study_with_attention_reports_ssim_and_road_mass(tmp_path: Path) -> None:
    study_path = _write(tmp_path, {**TINY, "attention": {"enabled": True, "seconds": 1.0, "samples": 2}})
    out = tmp_path / "out"
    assert main(["study", "--launch", str(study_path), "--out", str(out), "--quiet"]) == 0
    cells = sorted(p.relative_to(out / "cells").as_posix() for p in (out / "cells" / "attention").rglob("*.json"))
    assert cells == ["attention/ltc_ncp19-s0/pybullet/clean.json", "attention/ltc_ncp19-s0/pybullet/rain-3.json"]
    results = json.loads((out / "report.json").read_text())["results"]
    rows = {row["condition"]: row for row in results["attention"]["rows"]}
    rain = rows["rain:3"]
    for method in ("visualbackprop", "smoothgrad"):
        assert 0.0 < rain[method]["ssim_clean_vs_condition"] <= 1.0
        assert set(rain[method]["mass_share"]) == {"road", "sky"}
        assert rows["clean"][method]["ssim_clean_vs_condition"] is None  # nothing to compare with
    assert all((out / cell).is_file() for cell in rain["cells"])
    report = (out / "report.md").read_text()
    assert "## Attention (saliency, `lnn-control explain`)" in report
    assert "| ltc_ncp19 | pybullet | rain:3 |" in report
