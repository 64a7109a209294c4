"""The lane camera masks agree with what the simulators draw (both backends)."""

from __future__ import annotations

import numpy as np
import pytest

from lnn_control.envs.lane_keeping.backend import VisualVariation


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_road_and_sky_masks_match_the_rendered_colours(backend: str) -> None:
    from lnn_control.data.collect import make_env
    from lnn_control.envs.lane_keeping.camera_mask import camera_masks

    env = make_env("lane-keeping", backend, "clean", 1001)
    colours = VisualVariation()
    asphalt = np.array(colours.asphalt_color) * 255
    grass = np.array(colours.grass_color) * 255
    sky = np.array(colours.sky_color) * 255
    try:
        obs, _ = env.reset(seed=1001)
        for step in range(60):
            obs, *_ = env.step(env.unwrapped.expert_action())
            if step % 20 != 19:
                continue
            masks = camera_masks(env)
            image = obs["image"].astype(float)
            # classify every pixel by its nearest base colour (lines are brighter than all three)
            distance = np.stack([np.linalg.norm(image - c, axis=-1) for c in (asphalt, grass, sky)])
            nearest = distance.argmin(axis=0)
            plain = distance.min(axis=0) < 90  # leaves out painted lines and shading extremes
            road, sky_mask = masks["road"], masks["sky"]
            assert 0.3 < road.mean() < 0.9 and 0.02 < sky_mask.mean() < 0.3
            # masks and colours agree on ≥ 95 % of the plain road and sky pixels (grass, the remainder, 85 %:
            # MuJoCo shades the far ground)
            agree_road = (nearest[road & plain] == 0).mean()
            agree_grass = (nearest[~road & ~sky_mask & plain] == 1).mean()
            agree_sky = (nearest[sky_mask & plain] == 2).mean()
            assert agree_road > 0.95 and agree_grass > 0.85 and agree_sky > 0.95, (agree_road, agree_grass, agree_sky)
    finally:
        env.close()


def test_masks_need_a_reset_env() -> None:
    import gymnasium as gym

    import lnn_control.envs  # noqa: F401
    from lnn_control.envs.lane_keeping.camera_mask import camera_masks

    env = gym.make("lnn_control/LaneKeeping-v0")
    try:
        with pytest.raises(RuntimeError, match="call reset"):
            camera_masks(env)
    finally:
        env.close()
