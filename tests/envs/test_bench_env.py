"""``lnn-control bench env`` runs real envs and reports positive, consistent figures (not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.bench.env import EnvBenchSettings
from lnn_control.cli import main


def test_bench_env_writes_json_for_each_backend(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    assert main(["bench", "env", "--backends", "pybullet", "--steps", "12", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    figures = report["backends"]["pybullet"]
    assert report["task"] == "lane-keeping"
    assert figures["steps"] == 12
    assert figures["steps_per_s"] > 0
    assert 0 < figures["step_ms_median"] <= figures["step_ms_p99"]


def test_bench_env_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        EnvBenchSettings(task="flying-car")
    with pytest.raises(ValueError, match="steps"):
        EnvBenchSettings(steps=2, chunks=6)
