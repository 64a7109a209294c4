"""``lnn-control bench camera`` runs and reports every figure (the numbers themselves are in the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.cli import main


def test_bench_camera_writes_its_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "camera", "--frames", "5", "--json", str(out)]) == 0
    assert "rectify (remap + area resize)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["input_size"] == [640, 480] and report["output_shape"] == [64, 128]
    assert report["view_shape"][0] % 64 == 0 and report["coverage"] == pytest.approx(1.0)
    for key in ("rectify", "camera_path", "resize_only"):
        assert report[key]["frames"] == 5 and report[key]["median_ms"] > 0
    assert main(["bench", "camera", "--input-size", "640by480"]) == 2
    assert "--input-size must be WxH in pixels" in capsys.readouterr().err
