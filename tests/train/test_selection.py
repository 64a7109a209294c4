"""Model selection and the training schedule: closed-loop scores decide the kept checkpoint, patience
stops a run, a DAgger round that drives worse is rejected, the learning rate warms up, and a killed
training run resumes to the very same bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lnn_control.data.episodes import DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.evaluate.closed_loop import EvalConfig, evaluate, policy_controller
from lnn_control.policies.presets import build_policy
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec
from lnn_control.train.bc import TrainConfig, train_behaviour_cloning
from lnn_control.train.selection import ClosedLoopValidator, Score, SelectSection

SPEC = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
OBS = ObservationSpec((64, 128, 3))


def _dataset(root: Path, episodes: int = 4, steps: int = 24) -> EpisodeDataset:
    """Steering that follows the brightness of the left half of the image: learnable, on disk."""
    writer = EpisodeWriter(root, DatasetManifest(observation_spec=OBS, action_spec=SPEC, created_by="test"))
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        writer.begin_episode()
        for t in range(steps):
            level = int(rng.integers(0, 256))
            image = np.zeros((64, 128, 3), np.uint8)
            image[:, :64] = level
            label = np.array([level / 127.5 - 1.0], np.float32)
            writer.add_step({"image": image}, label, label, timestamp=0.05 * t)
        writer.end_episode({})
    return EpisodeDataset(root)


def _policy():
    return build_policy("ncp19_car", core="cfc", seed=0, observation_spec=OBS, action_spec=SPEC, control_rate_hz=20.0)


class ScriptedScores:
    """Stands in for driving: returns the given success rates in turn and remembers the weights it saw."""

    def __init__(self, rates: list[float]) -> None:
        self.rates = list(rates)
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, policy) -> dict:
        self.seen.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        rate = self.rates[len(self.seen) - 1]
        return {"success_rate": rate, "per_condition": {"clean": rate}}


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_warms_up_then_follows_a_cosine():
    config = TrainConfig(lr=0.01, lr_schedule="cosine", warmup_steps=4)
    factors = [config.lr_factor(step, 10) for step in range(10)]
    assert factors[:4] == pytest.approx([0.25 * 0.5 * (1 + np.cos(np.pi * s / 9)) * (s + 1) for s in range(4)])
    assert factors[9] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))  # decays after the warm-up
    assert TrainConfig(lr=0.01).lr_factor(5, 10) == 1.0  # the default: constant, no warm-up
    with pytest.raises(ValueError, match="lr_schedule must be 'constant' or 'cosine'"):
        TrainConfig(lr_schedule="step")


def test_closed_loop_selection_keeps_the_best_driving_epoch_not_the_lowest_loss(tmp_path):
    dataset = _dataset(tmp_path / "data")
    policy = _policy()
    scores = ScriptedScores([0.2, 0.9, 0.5])
    select = SelectSection(metric="closed_loop", every_epochs=2, episodes=2)
    config = TrainConfig(epochs=6, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1, lr=0.01)
    result = train_behaviour_cloning(policy, dataset, config, tmp_path / "train", progress=False,
                                     validator=scores, select=select)
    assert len(scores.seen) == 3  # after epochs 2, 4, 6
    assert result.best_epoch == 3 and result.best_score["success_rate"] == 0.9  # epoch 4 (0-based 3)
    assert _same_weights(policy.state_dict(), scores.seen[1])  # the weights that drove best
    history = [json.loads(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [h.get("closed_loop", {}).get("success_rate") for h in history] == [None, 0.2, None, 0.9, None, 0.5]
    losses = [h["val_loss"] for h in history]
    assert result.best_val_loss == losses[3]


def test_patience_stops_the_run_and_a_resume_does_not_train_past_it(tmp_path):
    dataset = _dataset(tmp_path / "data")
    policy = _policy()
    select = SelectSection(metric="closed_loop", every_epochs=1, episodes=2, patience=2)
    config = TrainConfig(epochs=8, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1)
    scores = ScriptedScores([0.6, 0.5, 0.4, 0.9, 0.9])
    result = train_behaviour_cloning(policy, dataset, config, tmp_path / "train", progress=False,
                                     validator=scores, select=select)
    assert result.stopped_early and len(scores.seen) == 3 and result.best_epoch == 0
    again = ScriptedScores([1.0])
    resumed = train_behaviour_cloning(_policy(), dataset, config, tmp_path / "train", resume=True, progress=False,
                                      validator=again, select=select)
    assert resumed.stopped_early and again.seen == [] and resumed.best_epoch == 0


def test_a_fixed_label_scale_is_used_as_given(tmp_path):
    dataset = _dataset(tmp_path / "data")
    config = TrainConfig(epochs=1, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1)
    result = train_behaviour_cloning(_policy(), dataset, config, tmp_path / "a", progress=False, label_std=[0.25])
    assert result.label_std == [0.25]
    computed = train_behaviour_cloning(_policy(), dataset, config, tmp_path / "b", progress=False)
    assert computed.label_std != [0.25] and 0.3 < computed.label_std[0] < 0.8  # uniform levels: std ~0.58
    with pytest.raises(ValueError, match="a closed-loop validator needs its SelectSection"):
        train_behaviour_cloning(_policy(), dataset, config, tmp_path / "c", progress=False, validator=lambda p: {})


def test_scores_order_by_success_then_lower_loss():
    assert Score(0.8, 0.5).key() > Score(0.6, 0.1).key()
    assert Score(0.8, 0.1).key() > Score(0.8, 0.2).key()


def test_the_validation_split_drives_seeds_900_up_and_never_the_test_seeds(tmp_path):
    from lnn_control.policies.bundle import load_policy
    from lnn_control.runtime.launch import resolve_policy_path

    config = EvalConfig(task="lane-keeping", episodes=2, env_kwargs={"road_length": 6.0}, split="validation")
    assert [config.episode_seed(i) for i in range(2)] == [900, 901]
    policy = load_policy(resolve_policy_path("lane_keeping_ncp19"))
    result = evaluate(config, policy_controller(policy), policy.reset, policy, progress=False)
    assert [e["seed"] for e in result["conditions"]["clean"]["episodes"]] == [900, 901]
    assert result["config"]["split"] == "validation"
    validator = ClosedLoopValidator("lane-keeping", "pybullet", {"road_length": 6.0},
                                    SelectSection(metric="closed_loop", episodes=2), tmp_path)
    policy.train()
    scored = validator(policy)
    assert scored == {"success_rate": result["conditions"]["clean"]["aggregate"]["success_rate"],
                      "per_condition": {"clean": scored["success_rate"]}}
    assert policy.training  # handed back as it came
    with pytest.raises(ValueError, match="validation split has 100 seeds"):
        EvalConfig(episodes=101, split="validation")
    with pytest.raises(ValueError, match="always uses seeds 900"):
        EvalConfig(seed=1005, split="validation")
    with pytest.raises(ValueError, match="conditions must name at least one condition"):
        EvalConfig(conditions=[])
    with pytest.raises(ValueError, match="select.episodes must be ≤ 100"):
        SelectSection(episodes=101)


RESTARTING = SelectSection(metric="closed_loop", every_epochs=1, episodes=2, restarts=1, restart_below=0.5)


def _tiny_recipe(dagger_rounds: int, select: SelectSection):
    """A seconds-long lane recipe (2 short expert roads, one epoch per stage) for the selection logic."""
    from lnn_control.train.recipe import CollectSection, DaggerSection, PolicySection, TrainRecipe

    return TrainRecipe(
        task="lane-keeping", backend="pybullet", seed=3, env_kwargs={"road_length": 6.0},
        collect=CollectSection(episodes=2, noise_std=0.1, conditions=["clean"]),
        dagger=DaggerSection(rounds=dagger_rounds, episodes=1, learner_mix=0.5, epochs=1),
        policy=PolicySection(core="cfc", preset="ncp19_car"),
        train=TrainConfig(epochs=1, batch_size=8, seq_len=8, stride=8, val_fraction=0.34, threads=1),
        select=select,
    )


def _script_validation(monkeypatch, pipeline, rates: list[float]) -> list[dict]:
    """Replace the pipeline's closed-loop validator by one that returns ``rates`` in turn (the
    decision logic is under test, not the driving); returns the weights it was shown, per call."""
    scripted = iter(rates)
    seen: list[dict] = []

    class Scripted:
        def __init__(self, *args, **kwargs) -> None:
            self.config = EvalConfig(split="validation", episodes=2)

        def __call__(self, policy) -> dict:
            seen.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
            rate = next(scripted)
            return {"success_rate": rate, "per_condition": {"clean": rate}}

    monkeypatch.setattr(pipeline, "ClosedLoopValidator", Scripted)
    return seen


def test_a_dagger_round_that_drives_worse_is_rejected(tmp_path, monkeypatch):
    """Stage 0 validates at 0.8, the DAgger round at best 0.4: the bundle keeps stage 0's weights and
    records the rejected round; its episodes stay in the dataset."""
    from lnn_control.policies.bundle import load_policy
    from lnn_control.train import pipeline

    seen = _script_validation(monkeypatch, pipeline, [0.8, 0.4])
    launch = _tiny_recipe(dagger_rounds=1, select=SelectSection(metric="closed_loop", every_epochs=1, episodes=2))
    bundle = pipeline.run_pipeline(launch, "# launch", tmp_path / "run", progress=False)
    selection = json.loads((bundle / "config.json").read_text())["provenance"]["selection"]
    assert [(s["stage"], s["accepted"]) for s in selection["stages"]] == [("stage0", True), ("dagger1", False)]
    assert selection["kept"]["stage"] == "stage0" and selection["kept"]["closed_loop"]["success_rate"] == 0.8
    assert _same_weights(load_policy(bundle).state_dict(), seen[0])
    assert len(EpisodeDataset(tmp_path / "run" / "data")) == 3
    provenance = json.loads((bundle / "config.json").read_text())["provenance"]
    assert provenance["training_conditions"] == ["clean"]


@pytest.mark.parametrize(("rates", "kept_stage"), [([0.2, 0.9], "stage0-restart1"), ([0.3, 0.1], "stage0")])
def test_a_stalled_stage0_trains_again_from_fresh_weights_and_the_better_attempt_is_kept(
        tmp_path, monkeypatch, rates, kept_stage):
    """select.restarts: 1, restart_below: 0.5. Stage 0 validates below 0.5, so it trains again from
    weights initialised with seed + 1000; the bundle keeps the attempt that validated better and
    records the other as not accepted."""
    from lnn_control.policies.bundle import load_policy
    from lnn_control.train import pipeline

    seen = _script_validation(monkeypatch, pipeline, rates)
    launch = _tiny_recipe(dagger_rounds=0, select=RESTARTING)
    bundle = pipeline.run_pipeline(launch, "# launch", tmp_path / "run", progress=False)
    selection = json.loads((bundle / "config.json").read_text())["provenance"]["selection"]
    assert [s["stage"] for s in selection["stages"]] == ["stage0", "stage0-restart1"]  # in the order they ran
    assert [s["stage"] for s in selection["stages"] if s["accepted"]] == [kept_stage]
    assert selection["kept"]["closed_loop"]["success_rate"] == max(rates)
    assert selection["validation"]["restarts"] == 1 and selection["validation"]["restart_below"] == 0.5
    assert (tmp_path / "run" / "train" / "stage0-restart1" / "metrics.jsonl").is_file()
    assert not _same_weights(seen[0], seen[1])  # the restart started from other weights
    assert _same_weights(load_policy(bundle).state_dict(), seen[rates.index(max(rates))])


def test_after_a_losing_restart_a_worse_dagger_round_falls_back_to_the_kept_stage0(tmp_path, monkeypatch):
    """Stage 0 validates 0.3 (below restart_below 0.5), its restart 0.1, the DAgger round 0.2: stage 0
    is kept, the restart and the round are not, and the bundle holds stage 0's weights."""
    from lnn_control.policies.bundle import load_policy
    from lnn_control.train import pipeline

    seen = _script_validation(monkeypatch, pipeline, [0.3, 0.1, 0.2])
    launch = _tiny_recipe(dagger_rounds=1, select=RESTARTING)
    bundle = pipeline.run_pipeline(launch, "# launch", tmp_path / "run", progress=False)
    selection = json.loads((bundle / "config.json").read_text())["provenance"]["selection"]
    assert [(s["stage"], s["accepted"]) for s in selection["stages"]] == [
        ("stage0", True), ("stage0-restart1", False), ("dagger1", False)]
    assert selection["kept"]["stage"] == "stage0"
    assert _same_weights(load_policy(bundle).state_dict(), seen[0])


def test_restart_settings_are_checked(tmp_path):
    from lnn_control.config import ConfigError
    from lnn_control.train.recipe import TrainRecipe, check_launch

    with pytest.raises(ValueError, match="select.restarts is 1 but select.metric is 'val_loss'"):
        SelectSection(restarts=1, restart_below=0.5)
    with pytest.raises(ValueError, match="select.restarts is 1 and select.restart_below is 0.0: give both"):
        SelectSection(metric="closed_loop", restarts=1)
    with pytest.raises(ValueError, match="select.restarts is 0 and select.restart_below is 0.5: give both"):
        SelectSection(metric="closed_loop", restart_below=0.5)
    with pytest.raises(ValueError, match=r"select.restart_below is a success rate in \[0, 1\], got 1.5"):
        SelectSection(metric="closed_loop", restart_below=1.5)
    with pytest.raises(ValueError, match="select.restarts must be ≥ 0"):
        SelectSection(metric="closed_loop", restarts=-1, restart_below=0.5)
    launch = TrainRecipe(task="lane-keeping", init_from="lane_keeping_ncp19",
                         select=SelectSection(metric="closed_loop", restarts=1, restart_below=0.5))
    with pytest.raises(ConfigError, match="select.restarts is 1 with init_from 'lane_keeping_ncp19'"):
        check_launch(launch)


@pytest.mark.slow
def test_a_run_killed_in_its_restart_resumes_to_the_same_bundle(tmp_path):
    """restart_below 1.0 on heavy-rain validation roads makes the tiny stage 0 restart; SIGKILL after
    the restart's first checkpoint, then --resume: stage 0 is not trained again (its metrics file
    keeps its lines), the restart continues, and the bundle is byte for byte the uninterrupted one."""
    launch = {
        "task": "lane-keeping", "backend": "pybullet", "seed": 2, "env_kwargs": {"road_length": 6.0},
        "collect": {"episodes": 2, "noise_std": 0.1, "conditions": ["clean"]},
        "dagger": {"rounds": 0},
        "policy": {"core": "cfc", "preset": "ncp19_car"},
        "train": {"epochs": 3, "batch_size": 8, "seq_len": 8, "stride": 8, "val_fraction": 0.34, "threads": 1},
        "select": {"metric": "closed_loop", "every_epochs": 1, "episodes": 1, "conditions": ["rain:5"],
                   "restarts": 1, "restart_below": 1.0},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(launch))
    command = [sys.executable, "-m", "lnn_control", "train", "--launch", str(path)]
    whole = tmp_path / "whole"
    subprocess.run([*command, "--out", str(whole)], check=True, capture_output=True, timeout=600)
    stages = json.loads((whole / "policy" / "config.json").read_text())["provenance"]["selection"]["stages"]
    assert [s["stage"] for s in stages] == ["stage0", "stage0-restart1"], stages  # the restart ran

    killed = tmp_path / "killed"
    _kill_when([*command, "--out", str(killed)], killed / "train" / "stage0-restart1" / "checkpoint" / "trainer.json")
    assert not (killed / "policy").exists()
    def stage0_records() -> list[dict]:
        return [json.loads(line) for line in (killed / "train" / "stage0" / "metrics.jsonl").read_text().splitlines()]

    before = stage0_records()
    subprocess.run([*command, "--out", str(killed), "--resume"], check=True, capture_output=True, timeout=600)
    assert stage0_records() == before and len(before) == 3  # stage 0's three epochs, none trained again
    assert _sha(killed / "policy" / "model.safetensors") == _sha(whole / "policy" / "model.safetensors")


def test_checkpoints_of_earlier_versions_still_resume():
    """The resume fingerprint of settings that existed before select.restarts and augment.blur/lines
    is the one the code of 2026-12-06 wrote (pinned), and those new keys at their defaults (or, for
    the restart rule, at any value) leave it unchanged."""
    from lnn_control.train.augment import AugmentConfig
    from lnn_control.train.bc import _settings_fingerprint

    recipe = TrainConfig(augment=AugmentConfig(glow=0.3, haze=0.2))
    select = SelectSection(metric="closed_loop")
    assert _settings_fingerprint(recipe, select, True) == "559a7d76141c7db6"
    assert _settings_fingerprint(TrainConfig(), None, False) == "c0850f7619c16b98"
    restarting = SelectSection(metric="closed_loop", restarts=2, restart_below=0.5)
    assert _settings_fingerprint(recipe, restarting, True) == "559a7d76141c7db6"
    blurred = TrainConfig(augment=AugmentConfig(glow=0.3, haze=0.2, blur=1.0))
    assert _settings_fingerprint(blurred, select, True) != "559a7d76141c7db6"  # a used augmentation counts
    assert _settings_fingerprint(TrainConfig(aux_readout=0.0), None, False) == "c0850f7619c16b98"
    assert _settings_fingerprint(TrainConfig(aux_readout=0.5), None, False) != "c0850f7619c16b98"


def _kill_when(command: list[str], marker: Path) -> None:
    """Run ``command`` and SIGKILL it as soon as ``marker`` exists (fails if it ends first). Its stderr
    goes to a temporary file (a pipe nobody reads could fill and stall the run)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            while not marker.is_file():
                try:
                    process.wait(timeout=0.02)
                except subprocess.TimeoutExpired:
                    continue
                stderr.seek(0)
                raise AssertionError("the run ended before it could be killed: "
                                     + stderr.read().decode(errors="replace")[-2000:])
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_killed_training_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL inside the DAgger round (after its first checkpoint), then --resume: the weights are byte
    for byte those of an uninterrupted run (same label scale, schedule, selection and data). A run
    whose round was collected but never checkpointed does not collect it twice."""
    launch = {
        "task": "lane-keeping", "backend": "pybullet", "seed": 4, "env_kwargs": {"road_length": 6.0},
        "collect": {"episodes": 2, "noise_std": 0.1, "conditions": ["clean"]},
        "dagger": {"rounds": 1, "episodes": 1, "learner_mix": 0.5, "epochs": 3},
        "policy": {"core": "ltc", "preset": "ncp19_car"},
        "train": {"epochs": 2, "batch_size": 8, "seq_len": 8, "stride": 8, "val_fraction": 0.34, "threads": 1,
                  "lr_schedule": "cosine", "warmup_steps": 2},
        "select": {"metric": "closed_loop", "every_epochs": 1, "episodes": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(launch))
    command = [sys.executable, "-m", "lnn_control", "train", "--launch", str(path)]
    whole = tmp_path / "whole"
    subprocess.run([*command, "--out", str(whole)], check=True, capture_output=True, timeout=600)
    reference = _sha(whole / "policy" / "model.safetensors")

    killed = tmp_path / "killed"
    _kill_when([*command, "--out", str(killed)], killed / "train" / "dagger1" / "checkpoint" / "trainer.json")
    assert not (killed / "policy").exists()
    subprocess.run([*command, "--out", str(killed), "--resume"], check=True, capture_output=True, timeout=600)
    assert _sha(killed / "policy" / "model.safetensors") == reference
    selection = [json.loads((d / "policy" / "config.json").read_text())["provenance"]["selection"] for d in (whole, killed)]
    assert selection[0]["kept"] == selection[1]["kept"] and selection[0]["label_std"] == selection[1]["label_std"]

    # the state a kill leaves between the round's collection and its first checkpoint
    import shutil

    shutil.rmtree(whole / "train" / "dagger1")
    shutil.rmtree(whole / "policy")
    subprocess.run([*command, "--out", str(whole), "--resume"], check=True, capture_output=True, timeout=600)
    assert len(EpisodeDataset(whole / "data")) == 3  # 2 expert + 1 DAgger episode, not 4
    assert _sha(whole / "policy" / "model.safetensors") == reference


def test_resuming_with_other_settings_is_refused(tmp_path):
    dataset = _dataset(tmp_path / "data")
    config = TrainConfig(epochs=1, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1)
    train_behaviour_cloning(_policy(), dataset, config, tmp_path / "train", progress=False)
    other = TrainConfig(epochs=3, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1)
    with pytest.raises(ValueError, match="written with other training settings"):
        train_behaviour_cloning(_policy(), dataset, other, tmp_path / "train", resume=True, progress=False)


@pytest.mark.slow
def test_the_run_pool_changes_the_wall_time_not_the_bundle(tmp_path):
    """collect.workers 2 and select.workers 2 (one pool for the expert episodes, the DAgger round's
    learner episodes and the validations) give the bundle that the same recipe gives in one process."""
    from lnn_control.train.pipeline import run_pipeline
    from lnn_control.train.recipe import load_train_launch

    launch = {
        "task": "lane-keeping", "backend": "pybullet", "seed": 6, "env_kwargs": {"road_length": 6.0},
        "collect": {"episodes": 3, "noise_std": 0.1, "conditions": ["clean"], "noise_seeding": "per_episode"},
        "dagger": {"rounds": 1, "episodes": 2, "learner_mix": 0.5, "epochs": 1},
        "policy": {"core": "ltc", "preset": "ncp19_car"},
        # two threads in this process, as the shipped recipes: the workers validate on one
        "train": {"epochs": 2, "batch_size": 8, "seq_len": 8, "stride": 8, "val_fraction": 0.34, "threads": 2},
        "select": {"metric": "closed_loop", "every_epochs": 1, "episodes": 2},
    }
    bundles = []
    for workers in (1, 2):
        launch["collect"]["workers"] = workers
        launch["select"]["workers"] = workers
        path = tmp_path / f"w{workers}.yaml"
        path.write_text(yaml.safe_dump(launch))
        recipe, text = load_train_launch(path)
        bundles.append(run_pipeline(recipe, text, tmp_path / f"w{workers}", progress=False))
    assert _sha(bundles[0] / "model.safetensors") == _sha(bundles[1] / "model.safetensors")
    stages = [json.loads((b / "config.json").read_text())["provenance"]["selection"]["stages"] for b in bundles]
    assert stages[0] == stages[1] and [s["stage"] for s in stages[0]] == ["stage0", "dagger1"]
    assert EpisodeDataset(tmp_path / "w1" / "data").content_hash() == EpisodeDataset(tmp_path / "w2" / "data").content_hash()


class InterruptAt(ScriptedScores):
    """Scores like ScriptedScores but raises at validation ``stop`` (1-based): the run dies inside
    that epoch, after the previous epoch's checkpoint, as a kill would leave it."""

    def __init__(self, rates: list[float], stop: int) -> None:
        super().__init__(rates)
        self.stop = stop

    def __call__(self, policy) -> dict:
        if len(self.seen) + 1 == self.stop:
            raise KeyboardInterrupt("killed")
        return super().__call__(policy)


def test_the_auxiliary_readout_trains_beside_the_policy_and_a_resume_reproduces_the_run(tmp_path):
    """aux_readout > 0: the readout's loss is logged, it falls, the policy keeps exactly its own
    weights (nothing of the readout is in them), and a run that died after epoch 2 resumes to the
    weights of the uninterrupted run (the readout and its Adam moments are in the checkpoint)."""
    dataset = _dataset(tmp_path / "data", episodes=6)
    select = SelectSection(metric="closed_loop", every_epochs=1, episodes=2)
    config = TrainConfig(epochs=4, batch_size=4, seq_len=8, stride=8, val_fraction=0.2, threads=1, lr=0.01,
                         aux_readout=0.5)
    whole = _policy()
    train_behaviour_cloning(whole, dataset, config, tmp_path / "whole", progress=False,
                            validator=ScriptedScores([0.1, 0.2, 0.3, 0.4]), select=select)
    history = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    aux = [h["train_aux_readout_loss"] for h in history]
    assert aux[-1] < 0.5 * aux[0]  # brightness of the left half -> steering: a linear readout of the CNN learns it
    assert whole.state_dict().keys() == _policy().state_dict().keys()

    with pytest.raises(KeyboardInterrupt):
        train_behaviour_cloning(_policy(), dataset, config, tmp_path / "killed", progress=False,
                                validator=InterruptAt([0.1, 0.2, 0.3, 0.4], stop=3), select=select)
    saved = json.loads((tmp_path / "killed" / "checkpoint" / "trainer.json").read_text())
    assert saved["trainer"]["epoch"] == 1
    resumed = _policy()
    train_behaviour_cloning(resumed, dataset, config, tmp_path / "killed", resume=True, progress=False,
                            validator=ScriptedScores([0.3, 0.4]), select=select)
    assert _same_weights(resumed.state_dict(), whole.state_dict())

    plain = _policy()
    train_behaviour_cloning(plain, dataset, dataclasses.replace(config, aux_readout=0.0), tmp_path / "plain",
                            progress=False, validator=ScriptedScores([0.1, 0.2, 0.3, 0.4]), select=select)
    assert not _same_weights(plain.state_dict(), whole.state_dict())  # the readout's gradient reached the CNN


def test_the_readout_starts_silent_and_its_gradient_reaches_the_cnn_not_the_core():
    """Zero weights at the action midpoint, no draw from torch's generator; its loss alone moves the
    perception CNN's weights and none of the core's."""
    from lnn_control.train.bc import _losses
    from lnn_control.train.readout import FeatureReadout
    from lnn_control.train.windows import Window, assemble_batch

    policy = _policy()
    before = torch.get_rng_state()
    readout = FeatureReadout(policy.config.core_input_size, torch.tensor([-1.0]), torch.tensor([3.0]))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(readout(torch.randn(2, 5, policy.config.core_input_size)), torch.full((2, 5, 1), 1.0))
    with pytest.raises(ValueError, match="in_features must be ≥ 1"):
        FeatureReadout(0, torch.tensor([-1.0]), torch.tensor([1.0]))

    with tempfile.TemporaryDirectory() as root:
        dataset = _dataset(Path(root) / "data", episodes=1, steps=8)
        episodes = {0: dataset[0]}
        batch = assemble_batch(episodes, [Window(0, 0, 8)], 0.05)
    readout = FeatureReadout(policy.config.core_input_size, torch.tensor([-1.0]), torch.tensor([1.0]))
    with torch.no_grad():
        readout.weight.fill_(0.1)
    _, aux = _losses(policy, batch.images, batch, torch.tensor([1.0]), readout)
    assert aux is not None
    aux.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.perception.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in policy.core.parameters())
    with pytest.raises(ValueError, match=r"aux_readout must be in \[0, 10\]"):
        TrainConfig(aux_readout=-0.5)


def test_the_core_learns_at_its_own_rate_with_core_lr_scale(tmp_path):
    """core_lr_scale 5: the core's parameters are Adam's second group at 5 × lr, so its first step
    (about lr × scale per weight, whatever the gradient's size) is five times the CNN's; scale 1 keeps
    one group and the resume fingerprint of runs before the option existed."""
    from lnn_control.train.bc import _parameter_groups, _settings_fingerprint

    policy = _policy()
    groups = _parameter_groups(policy, list(policy.parameters()), 5.0)
    assert [g["lr_scale"] for g in groups] == [1.0, 5.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in policy.core.parameters()}
    assert len(_parameter_groups(policy, list(policy.parameters()), 1.0)) == 1

    dataset = _dataset(tmp_path / "data", episodes=4, steps=8)  # 3 training windows: one optimiser step
    config = TrainConfig(epochs=1, batch_size=16, seq_len=8, stride=8, val_fraction=0.25, threads=1, lr=1e-3,
                         core_lr_scale=5.0)
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    train_behaviour_cloning(policy, dataset, config, tmp_path / "run", progress=False)
    after = policy.state_dict()
    core_keys = [k for k in before if k.startswith("core.")]
    cnn_keys = [k for k in before if k.startswith("perception.")]
    assert core_keys and cnn_keys
    step = {k: float((after[k] - before[k]).abs().max()) for k in before}
    assert max(step[k] for k in core_keys) == pytest.approx(5e-3, rel=0.05)
    assert max(step[k] for k in cnn_keys) == pytest.approx(1e-3, rel=0.05)

    assert _settings_fingerprint(TrainConfig(core_lr_scale=1.0), None, False) == "c0850f7619c16b98"
    assert _settings_fingerprint(config, None, False) != _settings_fingerprint(
        dataclasses.replace(config, core_lr_scale=1.0), None, False)
    with pytest.raises(ValueError, match=r"core_lr_scale must be in \(0, 100\]"):
        TrainConfig(core_lr_scale=0.0)
