"""Where a drone run's image signal stops: its stage-0 weights' CNN features and LTC sensory synapses.

    python measure.py DATASET RUN [RUN ...]   (RUN: a `lnn-control train` output folder)

For each run, the kept stage-0 weights (``RUN/train/stage0/best.safetensors``; the architecture from
``RUN/policy``) run on the first 40 steps of 24 episodes spread over DATASET (a collected drone
dataset; the first 8 steps of each left out, the core starts from rest). Printed per run, as JSON:

- ``feature_abs_median``: median |CNN feature|;
- ``feature_std``: each feature's standard deviation across the frames, mean over the features;
- ``saturated_share``: median over the frames of the share of image synapses whose sigmoid slope is
  below ``SATURATED_SLOPE`` (``lnn_control.explain.internals.ltc_sensory_saturation``, as ``explain``);
- ``synapse_std``: each image synapse's activation ``sigmoid(sigma (x - mu))`` standard deviation across
  the frames, mean over the synapses: how much of the frame reaches the inter neurons;
- ``neuron_std``: each neuron's potential's standard deviation across the frames, mean over the 19.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.explain.internals import ltc_sensory_saturation
from lnn_control.policies.bundle import load_policy
from lnn_control.train.windows import Window, assemble_batch


def measure(run: Path, dataset: EpisodeDataset, episodes: int = 24, steps: int = 40, settle: int = 8) -> dict:
    policy = load_policy(run / "policy")
    policy.load_state_dict(load_file(run / "train" / "stage0" / "best.safetensors"))
    policy.eval()
    chosen = np.linspace(0, len(dataset) - 1, episodes).round().astype(int)
    picked = {int(i): dataset[int(i)] for i in chosen}
    batch = assemble_batch(picked, [Window(i, 0, min(steps, len(e.label))) for i, e in picked.items()], 0.05)
    core = policy.core
    with torch.no_grad():
        features = policy.perception(torch.from_numpy(batch.images))  # [B,T,F]
        x = torch.cat([features, torch.from_numpy(batch.extras) * policy.extras_scale], -1)
        p = core.effective_parameters()
        image = p["s_src"] < features.shape[-1]
        mapped = x * p["input_w"] + p["input_b"]
        synapses = torch.sigmoid(p["s_sigma"][image] * (mapped[..., p["s_src"][image]] - p["s_mu"][image]))
        state, potentials = core.initial_state(x.shape[0]), []
        for t in range(x.shape[1]):
            _, state = core.step(x[:, t], state, 1.0)
            potentials.append(state)
        neurons = torch.stack(potentials, 1)  # [B,T,N]
    mask = torch.from_numpy(batch.mask.astype(bool)).clone()
    mask[:, :settle] = False
    saturated = ltc_sensory_saturation(core, x[mask], features.shape[-1])
    return {
        "feature_abs_median": round(float(features[mask].abs().median()), 3),
        "feature_std": round(float(features[mask].std(0).mean()), 3),
        "saturated_share": round(float(saturated.median()), 3),
        "synapse_std": round(float(synapses[mask].std(0).mean()), 4),
        "neuron_std": round(float(neurons[mask].std(0).mean()), 3),
    }


def main(dataset_path: str, runs: list[str]) -> None:
    torch.set_num_threads(1)
    dataset = EpisodeDataset(dataset_path)
    for run in runs:
        print(json.dumps({"run": Path(run).name, **measure(Path(run), dataset)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
