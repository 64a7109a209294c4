"""How much a fresh drone NCP19's motor outputs vary across frames (before the output layer).

    python probe_core_spread.py DATASET     (DATASET: a collected drone dataset, e.g. runs/d_s3/data)

64 windows of 32 frames (every 4th episode, every 60th step), the policy of launch/drone_forest.yaml
built with seeds 0-5; prints each motor's standard deviation across windows at steps 1, 8, 16 and 32
and its mean at step 32.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import torch

from lnn_control.data.episodes import EpisodeDataset
from lnn_control.train.pipeline import _recipe_policy
from lnn_control.train.recipe import load_train_launch


def main(dataset_path: str) -> None:
    torch.set_num_threads(1)
    dataset = EpisodeDataset(dataset_path)
    images, extras = [], []
    for index in range(0, len(dataset), 4):
        episode = dataset[index]
        for start in range(0, len(episode.image) - 32, 60):
            images.append(episode.image[start : start + 32])
            extras.append(episode.extras[start : start + 32])
    image_batch = torch.from_numpy(np.stack(images)[:64])
    extras_batch = torch.from_numpy(np.stack(extras)[:64]).float()
    launch, _ = load_train_launch("drone_forest")
    for seed in range(6):
        policy = _recipe_policy(dataclasses.replace(launch, seed=seed), [], None)
        with torch.no_grad():
            outputs, _, _ = policy.core_pass(image_batch, extras_batch, 0.05)
        spread = {t: np.round(outputs[:, t - 1].std(0).numpy(), 3).tolist() for t in (1, 8, 16, 32)}
        print(seed, "std across windows at step", spread, "mean at 32", np.round(outputs[:, -1].mean(0).numpy(), 2).tolist())


if __name__ == "__main__":
    main(sys.argv[1])
