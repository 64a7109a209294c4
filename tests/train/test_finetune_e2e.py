"""End to end: a sim run log -> `dataset from-log` -> `lnn-control train --launch <fine-tune recipe>
--dataset DATA:W` from the shipped lane bundle; and the same data mixed with simulated collection under
closed-loop selection."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lnn_control.cli import main
from lnn_control.data.episodes import EpisodeDataset

SHIPPED = "lane_keeping_ncp19"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """A dataset converted from a real 2-second `lnn-control run` of the shipped policy in PyBullet."""
    root = tmp_path_factory.mktemp("finetune_data")
    log_path = root / "run.mcap"
    assert main(["run", "--launch", "sim_lane_keeping", "--duration", "2", "--log", str(log_path), "--quiet"]) == 0
    assert main(["dataset", "from-log", str(log_path), "--out", str(root / "data")]) == 0
    assert len(EpisodeDataset(root / "data")) >= 1
    return root / "data"


def _shipped_bundle() -> Path:
    from lnn_control.train.init_from import resolve_bundle

    return resolve_bundle(SHIPPED)


@pytest.mark.slow
def test_train_fine_tunes_the_shipped_policy_on_a_converted_run_log(tmp_path: Path, converted: Path) -> None:
    from lnn_control.policies.bundle import load_policy

    recipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "launch" / "lane_keeping_finetune.yaml").read_text())
    recipe["freeze"] = "core"
    recipe["train"].update(epochs=1, batch_size=4, seq_len=8, stride=8, warmup_steps=0, threads=1)
    launch_file = tmp_path / "tiny_finetune.yaml"
    launch_file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "lnn_control", "train", "--launch", str(launch_file), "--dataset",
               f"{converted}:2", "--out", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "wrote policy bundle" in done.stdout

    provenance = json.loads((out / "policy" / "config.json").read_text())["provenance"]
    assert provenance["command"] == ("lnn-control train --launch " + str(launch_file) + f" --dataset {converted}:2 "
                                     f"--out {out} --quiet")
    shipped = json.loads((_shipped_bundle() / "config.json").read_text())
    conversion_hash = EpisodeDataset(converted).content_hash()
    assert [(d["hash"], d["weight"], d["share"]) for d in provenance["datasets"]] == [(conversion_hash, 2.0, 1.0)]
    assert provenance["dataset_hash"] == conversion_hash
    assert provenance["init_from"]["bundle"] == SHIPPED
    assert provenance["init_from"]["model_sha256"] == shipped["model_sha256"]
    assert provenance["init_from"]["label_std"] == shipped["provenance"]["selection"]["label_std"]
    assert provenance["freeze"] == "core" and provenance["training_conditions"] == ["recorded"]
    assert not (out / "data").exists()  # no simulated collection

    start, tuned = load_policy(_shipped_bundle()), load_policy(out / "policy")
    before, after = start.state_dict(), tuned.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before if k.startswith("core."))
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before if k.startswith("perception."))
    episode = EpisodeDataset(converted)[0]
    action = tuned.act({"image": episode.image[0], "speed": episode.extras[0]}, 0.05)
    assert action.shape == (1,) and np.isfinite(action).all()


@pytest.mark.slow
def test_recorded_data_mixed_with_simulated_collection_under_closed_loop_selection(tmp_path: Path,
                                                                                     converted: Path) -> None:
    from lnn_control.train.pipeline import run_pipeline
    from lnn_control.train.recipe import DatasetEntry, load_train_launch
    from lnn_control.train.selection import SelectSection

    launch, _ = load_train_launch("lane_keeping_finetune")
    launch = dataclasses.replace(
        launch, env_kwargs={"road_length": 6.0}, freeze="perception", datasets=(DatasetEntry(str(converted), 1.0),),
        collect=dataclasses.replace(launch.collect, episodes=2, weight=3.0),
        select=SelectSection(metric="closed_loop", every_epochs=1, episodes=1),
        train=dataclasses.replace(launch.train, epochs=1, batch_size=4, seq_len=8, stride=8, warmup_steps=0, threads=1),
    )
    bundle = run_pipeline(launch, "# mixed", tmp_path / "run", progress=False)
    provenance = json.loads((bundle / "config.json").read_text())["provenance"]
    names = [(d["name"], d["share"]) for d in provenance["datasets"]]
    assert names == [("collected", 0.75), (str(converted), 0.25)]
    assert provenance["datasets"][0]["hash"] == EpisodeDataset(tmp_path / "run" / "data").content_hash()
    assert provenance["training_conditions"] == ["clean", "recorded"]
    kept = provenance["selection"]["kept"]
    assert kept["stage"] == "stage0" and 0.0 <= kept["closed_loop"]["success_rate"] <= 1.0
    history = [json.loads(line) for line in (tmp_path / "run" / "train" / "stage0" / "metrics.jsonl").read_text().splitlines()]
    assert "closed_loop" in history[0] and "collected" in history[0]["val_loss_per_dataset"]


@pytest.mark.slow
def test_a_fine_tune_that_drives_worse_than_its_start_bundle_is_not_shipped(tmp_path: Path, converted: Path) -> None:
    """Closed-loop selection scores the init_from bundle first: a fine-tune that wrecks the policy
    (here a learning rate 10 000× the recipe's) is rejected and the bundle keeps the start weights."""
    from lnn_control.policies.bundle import load_policy
    from lnn_control.train.pipeline import run_pipeline
    from lnn_control.train.recipe import DatasetEntry, load_train_launch
    from lnn_control.train.selection import SelectSection

    launch, _ = load_train_launch("lane_keeping_finetune")
    launch = dataclasses.replace(
        launch, env_kwargs={"road_length": 10.0}, datasets=(DatasetEntry(str(converted), 1.0),),
        select=SelectSection(metric="closed_loop", every_epochs=1, episodes=2),
        train=dataclasses.replace(launch.train, epochs=1, batch_size=4, seq_len=8, stride=8, warmup_steps=0,
                                  lr=10.0, grad_clip=100.0, threads=1),
    )
    bundle = run_pipeline(launch, "# wrecking fine-tune", tmp_path / "run", progress=False)
    selection = json.loads((bundle / "config.json").read_text())["provenance"]["selection"]
    start, stage0 = selection["stages"]
    assert start["stage"] == "init_from" and start["closed_loop"]["success_rate"] == 1.0
    assert stage0["stage"] == "stage0" and stage0["closed_loop"]["success_rate"] < 1.0 and not stage0["accepted"]
    assert selection["kept"] == start
    shipped, written = load_policy(_shipped_bundle()).state_dict(), load_policy(bundle).state_dict()
    assert all(np.array_equal(shipped[k].numpy(), written[k].numpy()) for k in shipped)
