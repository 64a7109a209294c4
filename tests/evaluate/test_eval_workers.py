"""`lnn-control eval --workers 2` gives the numbers of one worker (the shipped policy, framedrop included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.cli import main


@pytest.mark.slow
def test_eval_with_two_workers_equals_one_worker(tmp_path: Path) -> None:
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"eval{workers}.json"
        code = main(["eval", "lane_keeping_ncp19", "--task", "lane-keeping", "--episodes", "2",
                     "--conditions", "clean,framedrop:3", "--workers", str(workers), "--json", str(out)])
        assert code == 0
        results[workers] = json.loads(out.read_text())
    assert results[1]["conditions"] == results[2]["conditions"]
    episodes = results[1]["conditions"]["framedrop:3"]["episodes"]
    assert all(e["policy_steps"] < e["steps"] for e in episodes)  # frames were dropped; the policy ran less often


def test_eval_rejects_zero_workers(capsys) -> None:
    assert main(["eval", "expert", "--episodes", "1", "--workers", "0"]) == 2
    assert "--workers must be ≥ 1" in capsys.readouterr().err
