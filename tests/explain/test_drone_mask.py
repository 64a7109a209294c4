"""The drone camera masks agree with what the simulators draw (both backends)."""

from __future__ import annotations

import numpy as np
import pytest


def _grow(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_trunk_target_and_sky_masks_match_the_rendered_colours(backend: str) -> None:
    from lnn_control.data.collect import make_env
    from lnn_control.envs.drone_forest.backend import VisualVariation
    from lnn_control.envs.drone_forest.camera_mask import camera_masks

    env = make_env("drone-forest", backend, "clean", 1000)
    try:
        obs, _ = env.reset(seed=1000)
        forest = env.unwrapped.forest
        palette = np.array([forest.trunk_color, forest.ground_color, forest.foliage_color,
                            VisualVariation().sky_color, VisualVariation().target_color]) * 255
        checked = 0
        for step in range(120):
            obs, *_ = env.step(env.unwrapped.expert_action())
            if step % 40 != 39:
                continue
            masks = camera_masks(env)
            image = obs["image"].astype(float)
            # nearest base colour per pixel, in chromaticity (r, g, b) / sum so shading does not matter
            chroma = image / np.maximum(image.sum(-1, keepdims=True), 1.0)
            base = palette / palette.sum(-1, keepdims=True)
            nearest = np.linalg.norm(chroma[..., None, :] - base, axis=-1).argmin(-1)
            assert masks["trunks"].mean() > 0.05 and masks["sky"].mean() > 0.02
            assert (nearest[masks["trunks"]] == 0).mean() > 0.8
            # the sky is a few % of the frame in fragments between canopies: one-pixel edges weigh a lot
            assert (nearest[masks["sky"]] == 3).mean() > 0.75
            # the beacon is a few pixels wide: compare within one pixel (the renderers' pixel centres
            # and hexagonal trunks differ from the exact geometry by about that much)
            red = nearest == 4
            if masks["target"].sum() >= 4:
                assert _grow(red)[masks["target"]].mean() > 0.8
                assert _grow(masks["target"])[red].mean() > 0.8
                checked += 1
        assert checked >= 1  # the beacon is in view on this forest
    finally:
        env.close()
