"""Small episode datasets for the LeRobot tests, written by the project's real :class:`EpisodeWriter`.

Frames are drawn road scenes (sky, grass, a grey road whose centre follows the steering, a dashed
centre line that moves with time, mild texture), so the video codec sees what it sees in
simulation rather than white noise. Timestamps are irregular (a measured 20 Hz loop with jitter
and one late frame), extras and labels smooth, applied actions the labels plus exploration noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lnn_control.data.episodes import DatasetManifest, EpisodeWriter
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec

H, W = 48, 96
PERIOD = 0.05
T0 = 1234.5
LENGTHS = (37, 52, 1, 23)
MANIFEST = DatasetManifest(
    observation_spec=ObservationSpec(image_shape=(H, W, 3), extras=("speed",), extra_units=("m/s",)),
    action_spec=ActionSpec(names=("steering", "throttle"), low=(-1.0, 0.0), high=(1.0, 1.0),
                           units=("normalized", "normalized"), frame=ActionFrame.FLU),
    created_by="lerobot testkit",
)


def road_frame(t: float, steering: float, rng: np.random.Generator) -> np.ndarray:
    """A 48x96 RGB road scene at time t (s) for a steering command in [-1, 1]."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    image = np.empty((H, W, 3), np.float32)
    horizon = H * 0.35
    sky = yy < horizon
    image[sky] = np.stack([110 + yy[sky], 160 + yy[sky], np.full(sky.sum(), 235.0)], axis=-1)
    image[~sky] = (70, 140, 60)
    depth = np.clip((yy - horizon) / (H - horizon), 0, 1)
    centre = W / 2 + 20 * steering * (1 - depth)
    half = 4 + 30 * depth
    road = (~sky) & (np.abs(xx - centre) < half)
    image[road] = (95, 95, 100)
    dashes = road & (np.abs(xx - centre) < 0.8 + depth) & (((yy * 0.5 + 8 * t) % 6) < 3)
    image[dashes] = (240, 240, 240)
    image += rng.normal(0, 2, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(root: Path, lengths: tuple[int, ...] = LENGTHS, seed: int = 7) -> Path:
    """Episodes of ``lengths`` steps into a new dataset at ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    writer = EpisodeWriter(root, MANIFEST)
    clock = T0
    for index, steps in enumerate(lengths):
        writer.begin_episode()
        phase = rng.uniform(0, 2 * np.pi)
        for k in range(steps):
            dt = PERIOD + rng.uniform(-0.004, 0.004) + (0.031 if k == 5 else 0.0)
            clock += dt
            steering = float(np.sin(phase + 0.2 * k))
            label = np.array([steering, 0.5 + 0.3 * np.cos(phase + 0.1 * k)], np.float32)
            applied = np.clip(label + rng.normal(0, 0.05, 2), [-1, 0], [1, 1]).astype(np.float32)
            observation = {"image": road_frame(clock, steering, rng), "speed": np.array([1.2 + 0.01 * k], np.float32)}
            writer.add_step(observation, applied, label, timestamp=clock)
        writer.end_episode({"seed": 100 + index, "mode": "expert", "condition": "clean", "success": index % 2 == 0})
        clock += 3.0  # a reset between episodes
    return root
