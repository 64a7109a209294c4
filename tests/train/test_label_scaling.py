"""BC loss scaling: a small-variance action component is not drowned by a large one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_control.data.episodes import DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.policies.presets import build_policy
from lnn_control.spec import ActionSpec, ObservationSpec
from lnn_control.train.bc import TrainConfig, init_output_layer, normalised_labels

SPEC = ActionSpec(names=("vx", "vy", "vz", "yaw_rate"), low=(-2.0, -1.0, -1.0, -1.0), high=(2.0, 1.0, 1.0, 1.0),
                  units=("m/s", "m/s", "m/s", "rad/s"))
OBS = ObservationSpec(image_shape=(64, 128, 3))


def _dataset(root: Path) -> EpisodeDataset:
    writer = EpisodeWriter(root, DatasetManifest(observation_spec=OBS, action_spec=SPEC, created_by="test"))
    rng = np.random.default_rng(0)
    for _ in range(2):
        writer.begin_episode()
        for t in range(10):
            label = np.array([1.6 + 0.05 * rng.standard_normal(), 0.1 * rng.standard_normal(), 0.0, -0.3])
            writer.add_step({"image": np.zeros((64, 128, 3), np.uint8)}, label, label, timestamp=0.05 * t)
        writer.end_episode({})
    return EpisodeDataset(root)


def test_labels_normalise_by_the_action_range(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    labels = normalised_labels(iter(dataset), SPEC)
    assert labels.shape == (20, 4)
    assert labels[:, 0].mean() == pytest.approx(0.8, abs=0.03)  # 1.6 m/s of ±2 m/s
    assert labels[:, 1].std() == pytest.approx(0.1, abs=0.04)


def test_fresh_policy_starts_at_the_mean_label_with_gains_of_one_label_std(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    policy = build_policy("ncp19_drone", core="cfc", observation_spec=OBS, action_spec=SPEC, control_rate_hz=20.0)
    init_output_layer(policy, dataset)
    with torch.no_grad():
        at_zero = policy.squash(torch.zeros(1, 4)).numpy()[0]
    mean = np.concatenate([e.label for e in dataset]).mean(axis=0)
    np.testing.assert_allclose(at_zero, mean, atol=1e-5)
    # gain: the label std in normalised units, floored at 0.05 (vz and yaw_rate are constant here)
    expected = np.maximum(normalised_labels(iter(dataset), SPEC).std(axis=0), 0.05)
    np.testing.assert_allclose(policy.output_gain.detach().numpy(), expected, rtol=1e-5)
    gain = policy.output_gain.detach().numpy()
    assert gain[2] == pytest.approx(0.05) and 0.05 < gain[1] < 0.2


def test_bad_scaling_settings_are_named() -> None:
    with pytest.raises(ValueError, match="label_scaling"):
        TrainConfig(label_scaling="variance")
    with pytest.raises(ValueError, match="min_label_std"):
        TrainConfig(min_label_std=0.0)


def test_an_output_layer_fitted_to_the_fresh_core_spreads_and_centres_its_output(tmp_path: Path) -> None:
    """output_spread 0.5: the fresh LTC's output, measured on the data, is centred on the mean label
    and spread over half a label std (a fresh drone NCP's motors vary by only ~0.01–0.07 across frames);
    on frames that never change the gain stops at 50 × the default."""
    from lnn_control.train.bc import core_output_statistics

    writer = EpisodeWriter(tmp_path / "noisy", DatasetManifest(observation_spec=OBS, action_spec=SPEC, created_by="test"))
    rng = np.random.default_rng(1)
    for _ in range(3):
        writer.begin_episode()
        for t in range(20):
            label = np.array([1.6 + 0.05 * rng.standard_normal(), 0.1 * rng.standard_normal(), 0.0, -0.3])
            image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
            writer.add_step({"image": image}, label, label, timestamp=0.05 * t)
        writer.end_episode({})
    noisy = EpisodeDataset(tmp_path / "noisy")
    policy = build_policy("ncp19_drone", core="ltc", observation_spec=OBS, action_spec=SPEC, control_rate_hz=20.0)
    init_output_layer(policy, noisy)
    default_gain = policy.output_gain.detach().numpy().copy()
    core_mean, core_std = core_output_statistics(policy, noisy)
    assert np.all(core_std > 0.001) and np.all(core_std < 0.3)  # a fresh core barely answers its input
    init_output_layer(policy, noisy, output_spread=0.5)
    np.testing.assert_allclose(policy.output_gain.detach().numpy(), default_gain * 0.5 / np.maximum(core_std, 0.5 / 50),
                               rtol=1e-5)
    with torch.no_grad():
        at_core_mean = policy.squash(torch.as_tensor(core_mean, dtype=torch.float32)[None]).numpy()[0]
    np.testing.assert_allclose(at_core_mean, np.concatenate([e.label for e in noisy]).mean(axis=0), atol=1e-4)

    blank = _dataset(tmp_path / "blank")  # every frame black: the core's output does not vary
    policy = build_policy("ncp19_drone", core="ltc", observation_spec=OBS, action_spec=SPEC, control_rate_hz=20.0)
    init_output_layer(policy, blank)
    default_gain = policy.output_gain.detach().numpy().copy()
    init_output_layer(policy, blank, output_spread=0.5)
    np.testing.assert_allclose(policy.output_gain.detach().numpy(), 50 * default_gain, rtol=1e-5)
    with pytest.raises(ValueError, match=r"output_spread must be in \[0, 2\]"):
        TrainConfig(output_spread=3.0)
