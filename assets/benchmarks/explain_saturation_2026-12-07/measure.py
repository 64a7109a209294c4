"""Median |CNN feature| and the median share of saturated LTC image synapses of lane bundles.

    python measure.py DATASET BUNDLE [BUNDLE ...]   (BUNDLE: a folder, or a shipped policy's name)

300 frames (every 10th frame of every tenth episode of DATASET, a collected lane dataset); the
features with zero velocity extras; saturation as ``explain`` measures it
(``lnn_control.explain.internals.ltc_sensory_saturation``, slope < ``SATURATED_SLOPE``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.explain.internals import ltc_sensory_saturation
from lnn_control.policies.bundle import load_policy
from lnn_control.runtime.launch import resolve_policy_path


def main(dataset_path: str, bundles: list[str]) -> None:
    torch.set_num_threads(1)
    dataset = EpisodeDataset(dataset_path)
    step = max(1, len(dataset) // 10)
    frames = np.concatenate([dataset[i].image[::10] for i in range(0, len(dataset), step)])[:300]
    for bundle in bundles:
        policy = load_policy(resolve_policy_path(bundle)).eval()
        with torch.no_grad():
            features = policy.perception(torch.from_numpy(frames))
            extras = torch.zeros(features.shape[0], len(policy.config.observation_spec.extras))
            saturated = ltc_sensory_saturation(policy.core, torch.cat([features, extras], 1), features.shape[1])
        print(f"{bundle}: median |x| {features.abs().median().item():.2f}, "
              f"saturated share (median frame) {saturated.median().item():.2f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
