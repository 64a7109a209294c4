"""The per-epoch perception health probe: it flags an LTC whose image synapses saturated (the drone
stall), stays quiet for a healthy one, changes nothing in training, and lands in metrics.jsonl."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_control.data.episodes import DatasetManifest, EpisodeDataset, EpisodeWriter
from lnn_control.nn.perception import FeatureNorm
from lnn_control.policies.presets import build_policy
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec
from lnn_control.train.bc import TrainConfig, train_behaviour_cloning
from lnn_control.train.health import SATURATION_WARNING, perception_health

SPEC = ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
OBS = ObservationSpec((64, 128, 3))


def _dataset(root: Path, episodes: int = 4, steps: int = 24) -> EpisodeDataset:
    """Random frames (what the probe reads is the features' scale, not their meaning), zero labels, on disk."""
    writer = EpisodeWriter(root, DatasetManifest(observation_spec=OBS, action_spec=SPEC, created_by="test"))
    frames = np.random.default_rng(1).integers(0, 256, (episodes, steps, 64, 128, 3), dtype=np.uint8)
    for episode in frames:
        writer.begin_episode()
        for t, frame in enumerate(episode):
            writer.add_step({"image": frame}, np.zeros(1, np.float32), np.zeros(1, np.float32), timestamp=0.05 * t)
        writer.end_episode({})
    return EpisodeDataset(root)


def _policy(core: str = "ltc", feature_norm: FeatureNorm = FeatureNorm.NONE):
    return build_policy("ncp19_car", core=core, seed=0, observation_spec=OBS, action_spec=SPEC, control_rate_hz=20.0,
                        feature_norm=feature_norm)


def _drifted(policy):
    """The stalled runs' signature: the CNN head's output scaled up until its features are far off the synapses' mu."""
    head = [m for m in policy.perception.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(500.0)
        head.bias.fill_(60.0)
    return policy


def _episodes(dataset: EpisodeDataset) -> dict:
    return {i: dataset[i] for i in range(len(dataset))}


def test_saturated_image_synapses_are_measured_and_warned_about(tmp_path):
    episodes = _episodes(_dataset(tmp_path / "data"))
    stalled = perception_health(_drifted(_policy()), episodes, list(episodes))
    assert stalled["feature_abs_median"] > 5.0
    assert stalled["image_synapse_saturation"] >= SATURATION_WARNING
    assert "feature_norm: layer_tanh" in stalled["warning"]


def test_bounded_features_keep_the_synapses_live_and_other_cores_report_features_only(tmp_path):
    episodes = _episodes(_dataset(tmp_path / "data"))
    bounded = perception_health(_drifted(_policy(feature_norm=FeatureNorm.LAYER_TANH)), episodes, list(episodes))
    assert bounded["feature_abs_median"] <= 1.0  # tanh bounds every feature
    assert bounded["image_synapse_saturation"] < SATURATION_WARNING and "warning" not in bounded
    cfc = perception_health(_policy(core="cfc"), episodes, [0, 2])
    assert set(cfc) == {"feature_abs_median"}
    with pytest.raises(ValueError, match="at least one episode id"):
        perception_health(_policy(), episodes, [])


def test_the_probe_changes_no_weight_and_no_random_draw(tmp_path):
    episodes = _episodes(_dataset(tmp_path / "data"))
    policy = _policy()
    policy.train()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    perception_health(policy, episodes, list(episodes))
    assert policy.training
    assert all(torch.equal(before[k], v) for k, v in policy.state_dict().items())
    assert torch.equal(torch_state, torch.get_rng_state()) and np.array_equal(numpy_state, np.random.get_state()[1])


def test_every_metrics_line_carries_the_probe_and_a_stall_is_logged(tmp_path, caplog):
    dataset = _dataset(tmp_path / "data")
    config = TrainConfig(epochs=2, batch_size=4, seq_len=8, stride=8, val_fraction=0.25, threads=1, lr=1e-6)
    with caplog.at_level(logging.WARNING, logger="lnn_control.train.bc"):
        train_behaviour_cloning(_drifted(_policy()), dataset, config, tmp_path / "train", progress=False)
    history = [json.loads(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert all(line["perception_health"]["image_synapse_saturation"] >= SATURATION_WARNING for line in history)
    assert "image synapses are saturated" in caplog.text and "epoch 1:" in caplog.text
