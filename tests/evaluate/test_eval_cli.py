"""`lnn-control eval`: the shipped policy on a held-out road, JSON and plot written, bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.cli import main


@pytest.mark.slow
def test_eval_cli_writes_json_and_plot_for_the_shipped_policy(tmp_path: Path, capsys) -> None:
    out, plot = tmp_path / "eval.json", tmp_path / "eval.png"
    code = main(["eval", "lane_keeping_ncp19", "--task", "lane-keeping", "--backend", "pybullet", "--episodes", "1",
                 "--conditions", "clean,noise:3", "--json", str(out), "--plot", str(plot)])
    assert code == 0
    table = capsys.readouterr().out
    assert "clean" in table and "noise:3" in table
    results = json.loads(out.read_text())
    assert results["policy"].endswith("lane_keeping_ncp19")
    for condition in ("clean", "noise:3"):
        episode = results["conditions"][condition]["episodes"][0]
        assert episode["seed"] == 1000 and episode["distance_m"] > 40.0  # the 50 m road, nearly all of it
    assert plot.stat().st_size > 1000


def test_eval_cli_names_a_bad_condition(tmp_path: Path, capsys) -> None:
    code = main(["eval", "expert", "--task", "lane-keeping", "--episodes", "1", "--conditions", "hail:3"])
    assert code != 0
    assert "hail" in capsys.readouterr().err
