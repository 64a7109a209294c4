"""``lnn-control bench bcstep``: the report splits a real training step of the launch file into its
phases and parts, consistently (not speed), and bad settings are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.cli import main
from lnn_control.train.recipe import load_train_launch


def test_bench_bcstep_times_every_phase_of_the_launch_files_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bcstep.json"
    assert main(["bench", "bcstep", "--task", "lane-keeping", "--steps", "1", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    launch, _ = load_train_launch("lane_keeping")
    assert report["training"]["batch_size"] == launch.train.batch_size and report["training"]["seq_len"] == launch.train.seq_len
    assert report["training"]["policy"] == "lane_keeping_ncp19" and report["training"]["augment"]["lines"] == launch.train.augment.lines
    step = report["step_ms"]
    assert all(step[name] > 0 for name in ("augment", "forward", "backward", "optimizer"))
    assert step["total"] == pytest.approx(sum(step[name] for name in ("augment", "forward", "backward", "optimizer")), abs=0.05)
    assert sum(report["step_share"].values()) == pytest.approx(1.0, abs=0.01)
    parts = report["parts_forward_backward_ms"]
    assert parts["cnn"] > 0 and parts["core"] > 0 and parts["cnn_nchw"] > 0
    assert report["cnn_channels_last_speedup"] == pytest.approx(parts["cnn_nchw"] / parts["cnn"], rel=0.01)
    assert "channels_last is" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--task", "boat"], "unknown task 'boat'; allowed: "),
    (["--steps", "0"], "steps >= 1"),
])
def test_bench_bcstep_names_bad_settings(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "bcstep", *argv]) == 2
    assert message in capsys.readouterr().err
