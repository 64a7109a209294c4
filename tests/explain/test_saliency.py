"""Saliency on real frames with real policies; zero CNN weights give zero gradient saliency, and
saturated sensory synapses give vanished gradients that the analysis reports instead of drawing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lnn_control.explain.grad import encode, frames_to_float
from lnn_control.explain.saliency import (
    VANISHED_GRADIENT,
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
def test_road_carries_more_saliency_than_the_sky(lane_policy, unsaturated_lane_policy, lane_frames, method: str) -> None:
    """Real frames, the simulator's road/sky masks: per frame, the road holds more saliency mass than
    the sky, and more saliency per pixel too (so it is not just the road's area). VisualBackProp on the
    shipped policy; SmoothGrad on a policy whose gradients have not vanished (the shipped one's have,
    on most frames: ``test_saturated_sensory_synapses_give_vanished_gradients_that_are_reported``)."""
    if method == "visualbackprop":
        maps = visual_backprop(lane_policy, lane_frames.frames)
    else:
        maps = _smoothgrad(unsaturated_lane_policy, lane_frames.frames, lane_frames.speeds)
    for saliency, road, sky in zip(maps, lane_frames.road, lane_frames.sky):
        assert road.any() and sky.any()
        assert saliency.std() > 0.0  # not constant
        assert saliency[road].sum() > saliency[sky].sum()
        assert saliency[road].mean() > saliency[sky].mean()


def test_zero_cnn_weights_give_zero_gradient_saliency(unsaturated_lane_policy, lane_frames) -> None:
    frames, speeds = lane_frames.frames[:3], lane_frames.speeds[:3]
    assert np.abs(_smoothgrad(unsaturated_lane_policy, frames, speeds)).max() > VANISHED_GRADIENT  # it does look
    blind = copy.deepcopy(unsaturated_lane_policy)
    with torch.no_grad():
        for module in blind.perception.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.zero_()
    maps = _smoothgrad(blind, frames, speeds)
    assert np.all(maps == 0.0)
    assert np.all(normalize_map(maps[0]) == 0.0)


def test_saturated_sensory_synapses_give_vanished_gradients_that_are_reported(unsaturated_lane_policy,
                                                                             lane_frames) -> None:
    """Scaling the CNN's 32 features by 1000 (head weights and bias) pushes every LTC sensory synapse
    deep into its sigmoid's flat tails, as training did to the shipped policy's: the pixel gradients
    vanish. The analysis then draws no SmoothGrad map (all zero, not normalised underflow), keeps the
    peaks for the count in explain.json, and gives those frames no SSIM and no mass share; VisualBackProp
    reads activations and still finds the road."""
    from lnn_control.explain.analysis import analyse
    from lnn_control.explain.attention import summarize
    from lnn_control.explain.recording import Recording

    saturated = copy.deepcopy(unsaturated_lane_policy)
    with torch.no_grad():
        saturated.perception.head.weight.mul_(1000.0)
        saturated.perception.head.bias.mul_(1000.0)
    steps = 4
    frames = lane_frames.frames[:steps]
    recording = Recording(
        source="test", condition="rain:3", frames=frames, clean_frames=frames.copy(),
        extras=lane_frames.speeds[:steps].astype(np.float32), dt=np.full(steps, 0.05), times=np.arange(steps) * 0.05,
        actions=np.full((steps, 1), np.nan, np.float32), action_names=("steering",),
    )
    looking = analyse(unsaturated_lane_policy, recording)
    assert (looking.smoothgrad_peaks["frames"] > VANISHED_GRADIENT).all()
    flat = analyse(saturated, recording)
    vanished = flat.smoothgrad_peaks["frames"] < VANISHED_GRADIENT
    assert vanished.all(), flat.smoothgrad_peaks["frames"]
    assert np.all(flat.maps["smoothgrad"] == 0.0) and np.all(flat.clean_maps["smoothgrad"] == 0.0)
    # the cause, measured: the features left the sensory synapses' sensitive range
    assert looking.sensory_saturation.max() < 0.9 and flat.sensory_saturation.min() > 0.95
    np.testing.assert_allclose(flat.feature_magnitude, 1000.0 * looking.feature_magnitude, rtol=1e-3)
    masks = {"road": lane_frames.road[:steps], "sky": lane_frames.sky[:steps]}
    summary = summarize(flat.maps, flat.clean_maps, masks)
    assert summary["smoothgrad"]["ssim_clean_vs_condition"] is None
    assert summary["smoothgrad"]["per_frame"]["ssim_clean_vs_condition"] == [None] * steps
    assert summary["smoothgrad"]["mass_share"]["road"]["condition"] is None
    assert summary["visualbackprop"]["ssim_clean_vs_condition"] == pytest.approx(1.0)  # identical twins
    assert summary["visualbackprop"]["mass_share"]["road"]["condition"] > summary["visualbackprop"]["mass_share"]["sky"]["condition"]


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
