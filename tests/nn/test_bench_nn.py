"""``lnn-control bench nn --quick --json``: the report has every figure, positive and consistent (not speed)."""

from __future__ import annotations

import json

import pytest

from lnn_control.bench.nn import BenchSettings
from lnn_control.cli import main


@pytest.mark.slow
def test_bench_nn_quick_writes_every_figure(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["bench", "nn", "--quick", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["settings"] == {"latency_repeats": 20, "train_repeats": 1, "batch": 4, "steps": 8, "seed": 0}
    assert report["torch_threads"] == 1
    for core in ("ltc", "cfc"):
        latency = report["latency_us"][core]
        assert set(latency) == {"ours_compiled", "ours_torch", "ncps_eager"}
        for stats in latency.values():
            assert 0 < stats["median"] <= stats["p99"] and stats["n"] == 20
        assert set(report["train_ms"][core]) == {"ours", "ncps"}
        assert all(stats["median"] > 0 for stats in report["train_ms"][core].values())
        ratios = report["ratios"][core]
        assert ratios["train_ncps_over_ours"] == pytest.approx(
            report["train_ms"][core]["ncps"]["median"] / report["train_ms"][core]["ours"]["median"])
        assert ratios["latency_ncps_over_ours_compiled"] > 0
        policy = report["policy_step_us"][core]
        assert policy["image_shape"] == [64, 128, 3]
        assert policy["compiled"]["median"] > 0 and policy["torch"]["median"] > 0
    table = capsys.readouterr().out
    assert "ltc ours_compiled" in table and "train_ncps_over_ours" in table


def test_bench_settings_validation():
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        BenchSettings(batch=0)
    assert main(["bench", "nn", "--repeats", "0"]) == 2
