"""Saliency on real frames with the shipped policy; zero CNN weights give zero gradient saliency."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lnn_control.explain.grad import encode, frames_to_float
from lnn_control.explain.saliency import (
    SmoothGradConfig,
    core_inputs,
    normalize_map,
    smoothgrad_step,
    visual_backprop,
)


def _smoothgrad(policy, frames, speeds, samples: int = 4) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    state = policy.core.initial_state(1)
    inputs = core_inputs(policy, frames, speeds)
    maps = []
    for t, (frame, speed) in enumerate(zip(frames, speeds)):
        future = [(inputs[k], 0.05) for k in range(t + 1, min(t + 3, len(frames)))]
        step = smoothgrad_step(policy, frame, speed, state, 0.05, SmoothGradConfig(samples=samples), generator,
                               future)
        maps.append(step.saliency)
        state = step.state
    return np.stack(maps)


def test_float_encoder_is_the_policy_perception(lane_policy, lane_frames) -> None:
    frames = lane_frames.frames[:3]
    with torch.no_grad():
        expected = lane_policy.perception(torch.from_numpy(frames))
        got = encode(lane_policy, frames_to_float(frames))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("method", ["visualbackprop", "smoothgrad"])
def test_road_carries_more_saliency_than_the_sky(lane_policy, lane_frames, method: str) -> None:
    """Real frames, shipped policy, the simulator's road/sky masks: per frame, the road holds more
    saliency mass than the sky, and more saliency per pixel too (so it is not just the road's area)."""
    if method == "visualbackprop":
        maps = visual_backprop(lane_policy, lane_frames.frames)
    else:
        maps = _smoothgrad(lane_policy, lane_frames.frames, lane_frames.speeds)
    for saliency, road, sky in zip(maps, lane_frames.road, lane_frames.sky):
        assert road.any() and sky.any()
        assert saliency.std() > 0.0  # not constant
        assert saliency[road].sum() > saliency[sky].sum()
        assert saliency[road].mean() > saliency[sky].mean()


def test_zero_cnn_weights_give_zero_gradient_saliency(lane_policy, lane_frames) -> None:
    frames, speeds = lane_frames.frames[:3], lane_frames.speeds[:3]
    assert np.abs(_smoothgrad(lane_policy, frames, speeds)).max() > 0  # the real policy does look
    blind = copy.deepcopy(lane_policy)
    with torch.no_grad():
        for module in blind.perception.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.zero_()
    maps = _smoothgrad(blind, frames, speeds)
    assert np.all(maps == 0.0)
    assert np.all(normalize_map(maps[0]) == 0.0)


def test_smoothgrad_is_deterministic_and_validates_its_settings(lane_policy, lane_frames) -> None:
    first = _smoothgrad(lane_policy, lane_frames.frames[:2], lane_frames.speeds[:2])
    second = _smoothgrad(lane_policy, lane_frames.frames[:2], lane_frames.speeds[:2])
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="samples must be an integer ≥ 1"):
        SmoothGradConfig(samples=0)
    with pytest.raises(ValueError, match=r"noise must be a fraction of the pixel range in \[0, 1\]"):
        SmoothGradConfig(noise=2.0)
    with pytest.raises(ValueError, match=r"horizon must be an integer in 1..20"):
        SmoothGradConfig(horizon=0)


@pytest.mark.parametrize("core", ["ltc", "cfc", "wired_ctrnn", "lstm", "gru", "ctrnn", "feedforward"])
def test_saliency_works_for_every_core_type(core: str, lane_frames) -> None:
    from lnn_control.explain.analysis import analyse
    from lnn_control.explain.recording import Recording
    from lnn_control.policies.presets import build_policy
    from lnn_control.spec import ObservationSpec

    policy = build_policy("ncp19_car", core=core, seed=1, observation_spec=ObservationSpec((64, 128, 3), ("speed",), ("m/s",)))
    steps = 5
    recording = Recording(
        source="test", condition="clean", frames=lane_frames.frames[:steps], clean_frames=None,
        extras=lane_frames.speeds[:steps].astype(np.float32), dt=np.full(steps, 0.05), times=np.arange(steps) * 0.05,
        actions=np.full((steps, 1), np.nan, np.float32), action_names=("steering",),
    )
    analysis = analyse(policy, recording)
    for method, maps in analysis.maps.items():
        assert maps.shape == (steps, 64, 128), method
        assert np.isfinite(maps).all(), method
        # every frame with a full horizon (3 steps) after it reaches the actions, for every core
        assert all(m.max() > 0 for m in maps[: steps - 2]), method
    assert analysis.states.shape == (steps, policy.state_size)
    if core == "ltc":
        assert analysis.internals[0] == "tau_s" and (analysis.internals[1] > 0).all()
    elif core == "cfc":
        assert analysis.internals[0] == "gate"
        assert ((analysis.internals[1] > 0) & (analysis.internals[1] < 1)).all()
    else:
        assert analysis.internals is None
