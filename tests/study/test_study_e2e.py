"""The smoke study end to end through the CLI: local pool (1 and 2 workers) and a real local Ray
runtime give the same report; a SIGKILLed worker costs only its cell, and a re-run finishes only
the missing cells without touching the others."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lnn_control.cli import main

pytestmark = pytest.mark.slow

SMOKE_CELLS = 1 + 4 + 12  # data, 2 architectures × 2 seeds, × 3 evaluation labels


def _run(out: Path, *extra: str) -> int:
    return main(["study", "--launch", "study_smoke", "--out", str(out), "--quiet", *extra])


def _results(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())["results"]


def _hashes(out: Path) -> dict[str, str]:
    files = [p for p in (out / "cells").rglob("*.json") if "running" not in p.parts]
    files += list((out / "models").glob("*/policy/model.safetensors"))
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "two_workers"
    assert _run(out, "--workers", "2") == 0
    return out


def test_smoke_study_writes_report_plots_and_traceable_cells(reference: Path, capsys) -> None:
    results = _results(reference)
    cells = [p for p in (reference / "cells").rglob("*.json") if "running" not in p.parts]
    assert len(cells) == SMOKE_CELLS
    assert not list((reference / "cells" / "running").glob("*.json"))
    assert len(results["dataset"]["hash"]) == 64
    assert {r["condition"] for r in results["rows"]} == {"clean", "framedrop:4", "framedrop:4~nominal-dt"}
    for row in results["rows"]:
        assert len(row["cells"]) == 2 and all((reference / c).is_file() for c in row["cells"])
        assert 0.0 <= row["success"]["low"] <= row["success"]["mean"] <= row["success"]["high"] <= 1.0
        assert row["success"]["method"] == "seed_bootstrap"
    # every model trained on the same data for the same number of gradient steps per seed
    trains = [json.loads(p.read_text()) for p in (reference / "cells" / "train").glob("*.json")]
    assert {t["dataset_hash"] for t in trains} == {results["dataset"]["hash"]}
    for seed in (0, 1):
        assert len({t["gradient_steps"] for t in trains if t["seed"] == seed}) == 1
    arch = results["architectures"]
    assert arch["ltc_ncp19"]["parameters"]["synapses"] > 0
    assert abs(arch["lstm_matched"]["parameters"]["core"] / arch["ltc_ncp19"]["parameters"]["core"] - 1) < 0.1
    # LSTMs ignore dt: told the nominal dt they drive exactly as with the measured one
    lstm = {r["condition"]: r for r in results["rows"] if r["arch"] == "lstm_matched"}
    assert lstm["framedrop:4"]["metrics"] == lstm["framedrop:4~nominal-dt"]["metrics"]
    assert len(results["claims"]) == 4
    report = (reference / "report.md").read_text()
    assert "## Claims and measured verdicts" in report and results["dataset"]["hash"] in report
    for plot in ("success_vs_severity_pybullet.png", "heatmap_pybullet.png"):
        assert (reference / "plots" / plot).stat().st_size > 5000
    # a plain re-run finds nothing to do and leaves every file as it was
    before = _hashes(reference)
    assert _run(reference, "--workers", "2") == 0
    assert "ran 0 cell(s)" in capsys.readouterr().out
    assert _hashes(reference) == before


def test_one_worker_and_ray_give_the_same_report_as_two_workers(reference: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    assert _run(tmp_path / "one", "--workers", "1") == 0
    assert _results(tmp_path / "one") == _results(reference)
    assert _run(tmp_path / "ray", "--workers", "2", "--executor", "ray") == 0
    assert _results(tmp_path / "ray") == _results(reference)


def test_a_killed_worker_loses_only_its_cell_and_a_rerun_finishes_only_the_missing_ones(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "lnn_control", "study", "--launch", "study_smoke", "--out", str(out),
               "--workers", "2", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = out / "cells" / "running" / "train__ltc_ncp19-s0.json"
    deadline = time.monotonic() + 300
    while not marker.is_file():  # wait for the cell to start (polling a file, not a fixed sleep)
        assert process.poll() is None and time.monotonic() < deadline, "the train cell never started"
        time.sleep(0.005)
    os.kill(json.loads(marker.read_text())["pid"], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "WorkerDied" in stderr and "train/ltc_ncp19-s0" in stderr
    killed = "cells/train/ltc_ncp19-s0.json"
    before = _hashes(out)
    assert killed not in before
    assert len(before) == SMOKE_CELLS - 4 + 3  # 13 cell files + 3 trained models
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "ran 4 cell(s)" in rerun.stdout and "13 already finished" in rerun.stdout
    after = _hashes(out)
    assert {k: after[k] for k in before} == before  # the finished cells were not touched
    assert killed in after
    assert _results(out) == _results(reference)
    # the folder now belongs to this study: another study there is refused before any work
    changed = tmp_path / "changed.yaml"
    changed.write_text((Path(__file__).parents[2] / "launch" / "study_smoke.yaml").read_text().replace("seeds: [0, 1]", "seeds: [0, 2]"))
    result = subprocess.run([*command[:5], str(changed), *command[6:]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "['seeds']" in result.stderr and "use another --out" in result.stderr


def test_per_model_dagger_runs_the_recipes_rounds_on_a_copy_of_the_data(tmp_path: Path) -> None:
    import yaml

    recipe = yaml.safe_load((Path(__file__).parents[2] / "launch" / "lane_keeping.yaml").read_text())
    recipe["dagger"] = {"rounds": 1, "episodes": 10, "learner_mix": 0.5, "epochs": 4}  # the shipped one has none
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    smoke = (Path(__file__).parents[2] / "launch" / "study_smoke.yaml").read_text()
    study = tmp_path / "dagger.yaml"
    study.write_text(
        smoke.replace("training_launch: lane_keeping ", f"training_launch: {tmp_path / 'recipe.yaml'} ")
        .replace("architectures: [ltc_ncp19, lstm_matched]", "architectures: [lstm_matched]")
        .replace("seeds: [0, 1]", "seeds: [0]")
        .replace("per_model_dagger: false", "per_model_dagger: true")
        .replace("    framedrop: [4]\n", "    rain: [3]\n")
    )
    out = tmp_path / "out"
    assert main(["study", "--launch", str(study), "--out", str(out), "--quiet"]) == 0
    train = json.loads((out / "cells" / "train" / "lstm_matched-s0.json").read_text())
    results = _results(out)
    assert train["per_model_dagger"] is True and len(train["val_loss_per_stage"]) == 2  # stage 0 + 1 DAgger round
    own = list((out / "models" / "lstm_matched-s0" / "data" / "episodes").glob("episode_*.safetensors"))
    shared = list((out / "data" / "episodes").glob("episode_*.safetensors"))
    assert len(shared) == 4 and len(own) == 4 + 10  # the recipe's one round of 10 learner episodes
    assert results["training"] == {"per_model_dagger": True, "identical_data": False, "collected_conditions": ["clean"]}
    assert {row["training_exposure"] for row in results["rows"]} == {"same", "unseen"}  # clean, rain:3
    report = (out / "report.md").read_text()
    assert "per-model DAgger" in report and "Seen in training: clean" in report and "rain:3 †" in report


def test_a_recipe_with_closed_loop_selection_selects_in_every_train_cell(tmp_path: Path) -> None:
    """The study trains with the recipe's model selection: with ``select: closed_loop`` each train
    cell drives its model on the validation roads and records the kept checkpoint's score."""
    import yaml

    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "launch" / "lane_keeping.yaml").read_text())
    recipe["select"] = {"metric": "closed_loop", "every_epochs": 1, "episodes": 1}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    study = yaml.safe_load((Path(__file__).resolve().parents[2] / "launch" / "study_smoke.yaml").read_text())
    study.update(training_launch=str(tmp_path / "recipe.yaml"), architectures=["cnn_feedforward"], seeds=[0])
    study["eval"]["conditions"] = {}
    study["eval"]["timing_ablation"] = False
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert main(["study", "--launch", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    train = json.loads(next((tmp_path / "out" / "cells" / "train").glob("*.json")).read_text())
    assert train["selection"] == "closed_loop" and train["stopped_early"] == [False]
    assert 0.0 <= train["closed_loop_per_stage"][0]["success_rate"] <= 1.0
