"""Fine-tuning from a launch file: init_from, mixed datasets with weights, freeze, provenance.

Real parts throughout: datasets written to disk by EpisodeWriter, bundles by save_policy, real
training steps through train_behaviour_cloning and run_pipeline (no simulator: these runs train on
the given datasets only, as a real-robot fine-tune does)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_control.config import ConfigError, load_dataclass
from lnn_control.data.episodes import DatasetError, DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.data.mixture import DatasetMix, MixSource
from lnn_control.policies.bundle import load_policy, save_policy
from lnn_control.policies.presets import build_policy
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec
from lnn_control.train import pipeline
from lnn_control.train.bc import TrainConfig, train_behaviour_cloning
from lnn_control.train.checkpoint import CheckpointError
from lnn_control.train.recipe import (
    CollectSection,
    DaggerSection,
    DatasetEntry,
    PolicySection,
    TrainRecipe,
    check_launch,
    load_train_launch,
)
from lnn_control.train.sampling import WeightedSampler, WindowPlan, apportion, plan_windows
from lnn_control.train.selection import SelectSection

OBS = ObservationSpec((64, 128, 3), ("speed",), ("m/s",))
STEER = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
TINY = TrainConfig(epochs=1, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1, lr=0.01)


def _dataset(root: Path, episodes: int = 4, steps: int = 16, seed: int = 0, action: ActionSpec = STEER,
             obs: ObservationSpec = OBS) -> Path:
    """Steering that follows the brightness of the image's left half (learnable), written to disk."""
    writer = EpisodeWriter(root, DatasetManifest(observation_spec=obs, action_spec=action, created_by="test"))
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        writer.begin_episode()
        for t in range(steps):
            level = int(rng.integers(0, 256))
            image = np.zeros(obs.image_shape, np.uint8)
            image[:, : obs.image_shape[1] // 2] = level
            label = np.full(action.size, level / 255.0 - 0.5, np.float32)
            writer.add_step({"image": image, "speed": np.float32([1.0])}, label, label, timestamp=0.05 * t)
        writer.end_episode({})
    return root


def _bundle(root: Path, core: str = "cfc", seed: int = 7, label_std: list[float] | None = None) -> Path:
    """A bundle with non-default output scaling, so a fresh initialisation would be visible."""
    policy = build_policy("ncp19_car", core=core, seed=seed, observation_spec=OBS, action_spec=STEER,
                          control_rate_hz=20.0)
    with torch.no_grad():
        policy.output_gain.fill_(0.37)
        policy.output_bias.fill_(-0.21)
    selection = {"label_std": label_std} if label_std is not None else {}
    return save_policy(policy, root, {"command": "test", "dataset_hash": "abc", "selection": selection})


def _launch(datasets: list[Path], weights: list[float] | None = None, **changes) -> TrainRecipe:
    """A pure-data recipe: no collection, no DAgger, validation-loss selection (no simulator)."""
    weights = weights or [1.0] * len(datasets)
    launch = TrainRecipe(
        collect=CollectSection(episodes=0), dagger=DaggerSection(rounds=0),
        policy=PolicySection(core="cfc", preset="ncp19_car"), select=SelectSection(metric="val_loss"),
        train=TINY, datasets=tuple(DatasetEntry(str(p), w) for p, w in zip(datasets, weights)),
    )
    return dataclasses.replace(launch, **changes)


def _state(policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


# --- init_from --------------------------------------------------------------------------------------


def test_init_from_loads_the_bundle_exactly_before_the_first_step(tmp_path, monkeypatch):
    bundle = _bundle(tmp_path / "bundle", label_std=[0.3])
    data = _dataset(tmp_path / "data")
    seen: list[tuple[dict, list | None]] = []
    from lnn_control.train import restarts as restarts_module

    real = restarts_module.train_behaviour_cloning

    def spy(policy, dataset, config, out, **kwargs):  # snapshot, then the real trainer
        seen.append((_state(policy), kwargs.get("label_std")))
        return real(policy, dataset, config, out, **kwargs)

    monkeypatch.setattr(restarts_module, "train_behaviour_cloning", spy)  # stage 0 (and its restarts) trains there
    out = pipeline.run_pipeline(_launch([data], init_from=str(bundle)), "# ft", tmp_path / "run", progress=False)
    start, label_std = seen[0]
    expected = load_policy(bundle).state_dict()
    assert start.keys() == expected.keys() and all(torch.equal(start[k], expected[k]) for k in expected)
    assert float(start["output_gain"][0]) == pytest.approx(0.37)  # not re-initialised from the labels
    assert label_std == [0.3]  # the bundle's loss units
    trained = load_policy(out).state_dict()
    assert not torch.equal(trained["output_bias"], expected["output_bias"])  # and it trained from there
    assert json.loads((out / "config.json").read_text())["provenance"]["selection"]["label_std"] == [0.3]


def test_init_from_a_bundle_of_another_architecture_is_refused(tmp_path):
    data = _dataset(tmp_path / "data")
    ltc = _bundle(tmp_path / "ltc", core="ltc")
    with pytest.raises(ConfigError, match=r'core\.type: recipe "cfc", bundle "ltc"'):
        pipeline.run_pipeline(_launch([data], init_from=str(ltc)), "", tmp_path / "a", progress=False)
    # same network, other action limits in the data (the policy's spec follows the data here)
    narrow = ActionSpec(("steering",), (-0.5,), (0.5,), ("normalized",), ActionFrame.FLU)
    other = _dataset(tmp_path / "narrow", action=narrow)
    with pytest.raises(ConfigError, match=r"action_spec\.high: recipe \[0\.5\], bundle \[1\.0\]"):
        pipeline.run_pipeline(_launch([other], init_from=str(_bundle(tmp_path / "cfc"))), "", tmp_path / "b",
                              progress=False)
    with pytest.raises(ConfigError, match="no shipped bundle of that name .*lane_keeping_ncp19"):
        pipeline.run_pipeline(_launch([data], init_from="no_such_bundle"), "", tmp_path / "c", progress=False)


def test_init_from_a_bundle_written_before_feature_norm_existed(tmp_path):
    """A bundle whose config has no perception.feature_norm computes 'none': a recipe with 'none'
    fine-tunes it, one with 'layer_tanh' is refused and told which key differs."""
    data = _dataset(tmp_path / "data")
    old = _bundle(tmp_path / "old")
    config_path = old / "config.json"
    config = json.loads(config_path.read_text())
    del config["policy"]["perception"]["feature_norm"]
    config_path.write_text(json.dumps(config))
    pipeline.run_pipeline(_launch([data], init_from=str(old)), "", tmp_path / "a", progress=False)
    bounded = dataclasses.replace(_launch([data], init_from=str(old)),
                                  policy=PolicySection(core="cfc", preset="ncp19_car", feature_norm="layer_tanh"))
    with pytest.raises(ConfigError, match=r'perception\.feature_norm: recipe "layer_tanh", bundle "none"'):
        pipeline.run_pipeline(bounded, "", tmp_path / "b", progress=False)


def test_init_from_reads_a_packed_bundle_and_a_shipped_name(tmp_path):
    import hashlib

    from lnn_control.policies.bundle import pack_policy
    from lnn_control.train.init_from import read_init_bundle

    folder = _bundle(tmp_path / "bundle", label_std=[0.3])
    packed = read_init_bundle(str(pack_policy(folder, tmp_path / "bundle.zip")))
    assert packed.config_sha256 == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    assert packed.model_sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert packed.label_std == [0.3]
    shipped = read_init_bundle("lane_keeping_ncp19")
    assert shipped.path.name == "lane_keeping_ncp19" and shipped.policy_config["core"]["type"] == "ltc"
    with pytest.raises(ConfigError, match="an ONNX export holds no training weights"):
        read_init_bundle("car.onnx")


# --- mixing -----------------------------------------------------------------------------------------


def test_apportion_gives_exact_shares():
    assert apportion([0.75, 0.25], 12) == [9, 3]
    assert apportion([0.5, 0.5], 7) == [4, 3]  # tie: the earlier dataset
    assert apportion([1 / 3] * 3, 10) == [4, 3, 3]
    assert sum(apportion([0.1, 0.2, 0.7], 101)) == 101


def test_mixing_weights_give_the_requested_share_of_windows_deterministically(tmp_path):
    big = EpisodeDataset(_dataset(tmp_path / "big", episodes=4, steps=40))  # 3 training episodes x 5 windows
    small = EpisodeDataset(_dataset(tmp_path / "small", episodes=4, steps=16, seed=1))  # 3 x 2 windows
    mix = DatasetMix([MixSource("big", big, 1.0), MixSource("small", small, 3.0)])
    assert mix.shares == [0.25, 0.75]

    def epochs(seed: int) -> tuple[list[list], WindowPlan]:
        rng = np.random.default_rng(seed)
        plan = plan_windows(mix, seq_len=8, stride=8, val_fraction=0.25, rng=rng)
        return [plan.sampler.epoch(rng) for _ in range(3)], plan

    (drawn, plan) = epochs(0)
    assert isinstance(plan.sampler, WeightedSampler)
    assert [len(g.windows) > 0 for g in plan.validation] == [True, True]  # a validation split per dataset
    size = len(plan.sampler)
    assert size == 3 * 5 + 3 * 2  # as many as all training windows together
    for windows in drawn:
        counts = Counter(mix.locate(w.episode)[0] for w in windows)
        assert (counts[0], counts[1]) == tuple(apportion([0.25, 0.75], size)) == (5, 16)
        train_ids = set(plan.train_ids)
        assert all(w.episode in train_ids for w in windows)
        small_windows = [w for w in windows if mix.locate(w.episode)[0] == 1]
        assert len(set(small_windows)) == 6  # the small dataset: every window, then repeats
    again, _ = epochs(0)
    assert again == drawn
    other, _ = epochs(1)
    assert other != drawn


def test_datasets_with_different_specs_do_not_mix(tmp_path):
    steer = EpisodeDataset(_dataset(tmp_path / "a"))
    other_obs = ObservationSpec((64, 128, 3), ("speed",), ("km/h",))
    kmh = EpisodeDataset(_dataset(tmp_path / "b", obs=other_obs))
    with pytest.raises(DatasetError, match=r"dataset b .*observation spec differs from dataset a's \(extra_units"):
        DatasetMix([MixSource("a", steer), MixSource("b", kmh)])
    with pytest.raises(DatasetError, match=r"dataset\(s\) \['a'\] given more than once"):
        DatasetMix([MixSource("a", steer), MixSource("a", steer, 2.0)])
    with pytest.raises(DatasetError, match="weight must be a finite number > 0"):
        DatasetMix([MixSource("a", steer, 0.0)])
    # through the recipe: the second dataset's spec differs from the first's
    with pytest.raises(ConfigError, match="observation spec differs"):
        pipeline.run_pipeline(_launch([tmp_path / "a", tmp_path / "b"]), "", tmp_path / "run", progress=False)


def test_a_resume_with_other_weights_is_refused(tmp_path):
    a = EpisodeDataset(_dataset(tmp_path / "a"))
    b = EpisodeDataset(_dataset(tmp_path / "b", seed=1))
    policy = build_policy("ncp19_car", core="cfc", observation_spec=OBS, action_spec=STEER, control_rate_hz=20.0)
    mix = DatasetMix([MixSource("a", a, 1.0), MixSource("b", b, 1.0)])
    result = train_behaviour_cloning(policy, mix, TINY, tmp_path / "train", progress=False)
    assert set(result.history[0]["val_loss_per_dataset"]) == {"a", "b"}
    reweighted = DatasetMix([MixSource("a", a, 1.0), MixSource("b", b, 2.0)])
    with pytest.raises(CheckpointError, match="other training settings"):
        train_behaviour_cloning(policy, reweighted, TINY, tmp_path / "train", resume=True, progress=False)


# --- freeze -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("freeze", ["perception", "core"])
def test_freeze_keeps_the_frozen_part_bit_identical_and_trains_the_rest(tmp_path, freeze):
    data = EpisodeDataset(_dataset(tmp_path / "data"))
    policy = build_policy("ncp19_car", core="cfc", observation_spec=OBS, action_spec=STEER, control_rate_hz=20.0)
    before = _state(policy)
    train_behaviour_cloning(policy, data, dataclasses.replace(TINY, epochs=2), tmp_path / "train", progress=False,
                            freeze=freeze)
    after = policy.state_dict()
    frozen = [k for k in before if k.startswith(f"{freeze}.")]  # parameters and buffers
    others = [k for k, _ in policy.named_parameters() if not k.startswith(f"{freeze}.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert [k for k in others if torch.equal(before[k], after[k])] == []  # every other parameter trained
    assert all(p.requires_grad for p in policy.parameters())  # flags restored after training
    with pytest.raises(ValueError, match=r"freeze must be one of \['none', 'perception', 'core'\], got 'cnn'"):
        train_behaviour_cloning(policy, data, TINY, tmp_path / "x", progress=False, freeze="cnn")


# --- provenance, launch files and the command line ----------------------------------------------------


def test_the_bundle_records_every_dataset_hash_weight_and_the_init_bundle(tmp_path):
    init = _bundle(tmp_path / "bundle")
    real = _dataset(tmp_path / "real", episodes=3)
    sim = _dataset(tmp_path / "sim", episodes=4, seed=2)
    launch = _launch([real, sim], [3.0, 1.0], init_from=str(init), freeze="core")
    out = pipeline.run_pipeline(launch, "# finetune", tmp_path / "run", progress=False)
    provenance = json.loads((out / "config.json").read_text())["provenance"]
    records = provenance["datasets"]
    assert [r["hash"] for r in records] == [EpisodeDataset(real).content_hash(), EpisodeDataset(sim).content_hash()]
    assert [(r["name"], r["episodes"], r["weight"], r["share"]) for r in records] == [
        (str(real), 3, 3.0, 0.75), (str(sim), 4, 1.0, 0.25)]
    assert provenance["dataset_hash"] == DatasetMix([MixSource(str(real), EpisodeDataset(real), 3.0),
                                                     MixSource(str(sim), EpisodeDataset(sim), 1.0)]).content_hash()
    config = json.loads((init / "config.json").read_text())
    assert provenance["init_from"]["model_sha256"] == config["model_sha256"]
    assert provenance["init_from"]["bundle"] == str(init) and provenance["init_from"]["dataset_hash"] == "abc"
    assert provenance["freeze"] == "core" and provenance["training_conditions"] == ["recorded"]
    assert provenance["selection"]["metric"] == "val_loss" and provenance["selection"]["validation"] is None
    assert not (tmp_path / "run" / "data").exists()  # nothing collected
    # freeze: core: the core is the bundle's, bit for bit
    start, trained = load_policy(init).state_dict(), load_policy(out).state_dict()
    assert all(torch.equal(start[k], trained[k]) for k in start if k.startswith("core."))
    assert not all(torch.equal(start[k], trained[k]) for k in start if k.startswith("perception."))
    # same seed, same data, same weights => the same bundle weights, byte for byte
    again = pipeline.run_pipeline(launch, "# finetune", tmp_path / "again", progress=False)
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_the_shipped_finetune_launch_file_and_its_checks(tmp_path):
    launch, text = load_train_launch("lane_keeping_finetune")
    assert launch.init_from == "lane_keeping_ncp19" and launch.collect.episodes == 0 and launch.datasets == ()
    assert "init_from" in text
    with pytest.raises(ConfigError, match="no training data: collect.episodes is 0 and 'datasets' is empty"):
        check_launch(launch)
    with pytest.raises(ConfigError, match="dagger.rounds is 1 but collect.episodes is 0"):
        check_launch(dataclasses.replace(launch, datasets=(DatasetEntry("d"),), dagger=DaggerSection(rounds=1)))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['wieght'\] at datasets\[0\]"):
        load_dataclass(TrainRecipe, {"datasets": [{"path": "d", "wieght": 2}]}, "ft.yaml")
    with pytest.raises(ConfigError, match="'freeze' is 'cnn'; allowed values"):
        load_dataclass(TrainRecipe, {"freeze": "cnn"}, "ft.yaml")
    with pytest.raises(ConfigError, match="weight of d must be a finite number > 0"):
        load_dataclass(TrainRecipe, {"datasets": [{"path": "d", "weight": 0}]}, "ft.yaml")
    with pytest.raises(ConfigError, match=r"datasets\[0\]: .*missing is not a folder"):
        pipeline.run_pipeline(dataclasses.replace(launch, datasets=(DatasetEntry(str(tmp_path / "missing")),)), "",
                              tmp_path / "run", progress=False)


def test_the_dataset_flag_appends_weighted_datasets():
    from lnn_control.cli.train import FREEZE_CHOICES, apply_overrides, parse_dataset, register
    from lnn_control.train.freeze import FREEZE_KINDS

    assert FREEZE_CHOICES == FREEZE_KINDS  # the CLI's copy (no torch import to parse arguments)

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--launch", "x", "--out", "o", "--dataset", "data_real:3",
                              "--dataset", "runs/a:b/data", "--init-from", "lane_keeping_ncp19", "--freeze", "core"])
    launch = apply_overrides(TrainRecipe(datasets=(DatasetEntry("sim", 2.0),)), args)
    assert launch.datasets == (DatasetEntry("sim", 2.0), DatasetEntry("data_real", 3.0), DatasetEntry("runs/a:b/data"))
    assert launch.init_from == "lane_keeping_ncp19" and launch.freeze == "core"
    assert parse_dataset("d:0.25") == ("d", 0.25)
    with pytest.raises(argparse.ArgumentTypeError, match="weight of d must be a finite number > 0, got -1"):
        parse_dataset("d:-1")
