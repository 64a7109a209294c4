"""Collection with per-episode noise: the same dataset whatever the worker count and however the
collection is split (a resume), on the real lane env (PyBullet, short roads) and a real process pool."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lnn_control.data.collect import CollectConfig, collect
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.parallel.executor import make_executor

CONFIG = CollectConfig(task="lane-keeping", backend="pybullet", episodes=3, seed=5, noise_std=0.2,
                       conditions=["clean", "rain:2"], env_kwargs={"road_length": 3.0},
                       noise_seeding="per_episode")


def _episodes(folder: Path) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    dataset = EpisodeDataset(folder)
    return [(dataset.metadata(i), dataset[i].action, dataset[i].image) for i in range(len(dataset))]


def _assert_same(a: Path, b: Path) -> None:
    assert EpisodeDataset(a).content_hash() == EpisodeDataset(b).content_hash()


@pytest.mark.slow
def test_two_workers_write_the_dataset_one_worker_writes(tmp_path: Path) -> None:
    serial = collect(CONFIG, tmp_path / "serial", progress=False)
    with make_executor("local", 2) as pool:
        parallel = collect(CONFIG, tmp_path / "parallel", progress=False, executor=pool)
    assert (parallel.steps, parallel.expert_successes) == (serial.steps, serial.expert_successes)
    _assert_same(tmp_path / "serial", tmp_path / "parallel")
    episodes = _episodes(tmp_path / "parallel")
    assert [m["seed"] for m, _, _ in episodes] == [5, 6, 7]
    assert [m["condition"] for m, _, _ in episodes] == ["clean", "rain:2", "clean"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the workers' staging folder is gone


@pytest.mark.slow
def test_a_dagger_round_on_two_workers_writes_the_dataset_the_serial_round_writes(tmp_path: Path) -> None:
    """The learner drives in the workers (loaded from a bundle, one thread) exactly as in this
    process: the same applied actions, labels and frames, byte for byte."""
    import torch

    from lnn_control.data.collect import env_specs, make_env
    from lnn_control.policies.presets import build_policy

    probe = make_env("lane-keeping", "pybullet", "clean", 0, road_length=3.0)
    obs_spec, act_spec = env_specs(probe)
    probe.close()
    learner = build_policy("ncp19_car", core="ltc", seed=2, observation_spec=obs_spec, action_spec=act_spec)
    learner.eval()
    dagger = replace(CONFIG, learner_mix=0.7)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the training process's threads; the workers run one
    try:
        serial = collect(dagger, tmp_path / "serial", learner=learner, progress=False)
    finally:
        torch.set_num_threads(threads)
    with make_executor("local", 2) as pool:
        parallel = collect(dagger, tmp_path / "parallel", learner=learner, progress=False, executor=pool)
    assert parallel.steps == serial.steps
    _assert_same(tmp_path / "serial", tmp_path / "parallel")
    assert all(m["mode"] == "dagger" for m, _, _ in _episodes(tmp_path / "parallel"))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the learner's bundle went with the staging


def test_a_collection_in_two_parts_equals_one_in_one_go(tmp_path: Path) -> None:
    collect(CONFIG, tmp_path / "whole", progress=False)
    collect(replace(CONFIG, episodes=1), tmp_path / "parts", progress=False)
    collect(replace(CONFIG, episodes=2, first_index=1), tmp_path / "parts", progress=False)  # a resume
    _assert_same(tmp_path / "whole", tmp_path / "parts")
    # the noise really differs per episode (not one stream restarted)
    (_, a0, _), (_, a1, _), _ = _episodes(tmp_path / "whole")
    assert not np.array_equal(a0[:10], a1[:10])


def test_shared_noise_is_the_default_and_refuses_an_executor(tmp_path: Path) -> None:
    shared = replace(CONFIG, noise_seeding="shared")
    assert CollectConfig().noise_seeding == "shared"  # the shipped recipes' data stays what it was
    with pytest.raises(ValueError, match="per_episode"):
        collect(shared, tmp_path / "x", progress=False, executor=object())
    with pytest.raises(ValueError, match="noise_seeding must be"):
        CollectConfig(noise_seeding="per_step")  # type: ignore[arg-type]


def test_the_recipe_asks_for_per_episode_noise_before_parallel_collection() -> None:
    from lnn_control.train.recipe import CollectSection

    assert CollectSection(workers=2, noise_seeding="per_episode").workers == 2
    with pytest.raises(ValueError, match="collect.workers > 1 needs collect.noise_seeding: per_episode"):
        CollectSection(workers=2)
    with pytest.raises(ValueError, match="collect.workers must be ≥ 1"):
        CollectSection(workers=0, noise_seeding="per_episode")
