"""End to end on a real simulator: collect → train (BC + one DAgger round) → bundle → evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.evaluate.closed_loop import EvalConfig, evaluate, policy_controller
from lnn_control.train.bc import TrainConfig
from lnn_control.train.pipeline import run_pipeline
from lnn_control.train.recipe import CollectSection, DaggerSection, PolicySection, TrainRecipe

SHORT_ROAD = {"road_length": 6.0}


def _evaluate_one_episode(policy, task: str, conditions: list[str], env_kwargs: dict) -> dict:
    """One held-out episode per condition on PyBullet, through the eval runner the CLI uses."""
    return evaluate(
        EvalConfig(task=task, backend="pybullet", conditions=conditions, episodes=1, env_kwargs=env_kwargs),
        policy_controller(policy),
        reset=policy.reset,
        policy=policy,
        progress=False,
    )


def _tiny_launch(core: str, task: str = "lane-keeping", preset: str = "ncp19_car", env_kwargs: dict = SHORT_ROAD,
                 seed: int = 3, expert_episodes: int = 3, conditions: tuple[str, ...] = ("clean", "rain:2"),
                 batch_size: int = 8, feature_norm: str = "none") -> TrainRecipe:
    """A launch small enough for a test: a few expert episodes, one DAgger episode, one epoch each."""
    return TrainRecipe(
        task=task,
        backend="pybullet",
        seed=seed,
        env_kwargs=env_kwargs,
        collect=CollectSection(episodes=expert_episodes, noise_std=0.1, domain_randomization=True, conditions=list(conditions)),
        dagger=DaggerSection(rounds=1, episodes=1, learner_mix=0.5, epochs=1),
        policy=PolicySection(core=core, preset=preset, feature_norm=feature_norm),
        train=TrainConfig(epochs=1, batch_size=batch_size, seq_len=8, stride=8, val_fraction=0.34, threads=1),
    )


@pytest.mark.slow
def test_tiny_collect_train_eval_with_ltc(tmp_path: Path) -> None:
    from lnn_control.policies.bundle import load_policy

    out = tmp_path / "run"
    bundle = run_pipeline(_tiny_launch("ltc"), "# launch text", out, progress=False)
    dataset = EpisodeDataset(out / "data")
    assert len(dataset) == 4  # 3 expert episodes + 1 DAgger episode
    assert [e.metadata["mode"] for e in dataset] == ["expert", "expert", "expert", "dagger"]
    assert {e.metadata["condition"] for e in dataset} == {"clean", "rain:2"}
    assert all(e.metadata["seed"] < 1000 for e in dataset)  # training seeds only

    config = json.loads((bundle / "config.json").read_text())
    provenance = config["provenance"]
    assert provenance["dataset_hash"] == dataset.content_hash()
    assert provenance["launch_file"] == "# launch text"
    assert provenance["seed"] == 3 and provenance["git_commit"]
    assert len(provenance["metrics"]["val_loss_per_stage"]) == 2
    assert (out / "train" / "stage0" / "metrics.jsonl").read_text().count("\n") == 1

    policy = load_policy(bundle)
    assert policy.core.config()["type"] == "ltc"
    results = _evaluate_one_episode(policy, "lane-keeping", ["clean", "noise:3"], SHORT_ROAD)
    for condition in ("clean", "noise:3"):
        aggregate = results["conditions"][condition]["aggregate"]
        assert 0.0 <= aggregate["success_rate"] <= 1.0
        assert aggregate["distance_m"] > 0.0
        assert results["conditions"][condition]["episodes"][0]["seed"] == 1000

    # resuming reuses the episodes and checkpoints: nothing is collected twice
    run_pipeline(_tiny_launch("ltc"), "# launch text", out, resume=True, progress=False)
    assert len(EpisodeDataset(out / "data")) == 4


SMALL_FOREST = {"forest_config": {"area_size": 20.0, "density": 3.0, "target_distance_range": [5.0, 7.0]}}


@pytest.mark.slow
def test_tiny_drone_collect_train_eval(tmp_path: Path) -> None:
    """The drone is a second row of the same pipeline: 4 actions, 3 velocity extras, drone metrics."""
    from lnn_control.policies.bundle import load_policy

    launch = _tiny_launch("cfc", task="drone-forest", preset="ncp19_drone", env_kwargs=SMALL_FOREST, seed=5,
                          expert_episodes=2, conditions=("clean", "fog:2"), batch_size=4, feature_norm="layer_tanh")
    out = tmp_path / "drone"
    bundle = run_pipeline(launch, "# drone launch", out, progress=False)
    dataset = EpisodeDataset(out / "data")
    assert [e.metadata["mode"] for e in dataset] == ["expert", "expert", "dagger"]
    first = dataset[0]
    assert first.action.shape[1] == 4 and first.label.shape[1] == 4  # (vx, vy, vz, yaw_rate)
    assert first.image.shape[1:] == (64, 128, 3)

    policy = load_policy(bundle)
    assert policy.core.config()["type"] == "cfc"
    assert policy.config.perception.feature_norm.value == "layer_tanh"  # the recipe's policy.feature_norm
    assert policy.action_spec.names == ("vx", "vy", "vz", "yaw_rate")
    assert policy.observation_spec.extras == ("vx", "vy", "vz")
    results = _evaluate_one_episode(policy, "drone-forest", ["clean", "wind:3"], SMALL_FOREST)
    for condition in ("clean", "wind:3"):
        aggregate = results["conditions"][condition]["aggregate"]
        assert set(aggregate) >= {"success_rate", "collision_rate", "mean_path_length_m", "min_clearance_m"}
        assert aggregate["mean_path_length_m"] > 0.0
        assert results["conditions"][condition]["episodes"][0]["seed"] == 1000
