"""Policies on the liquid cores (LTC, CfC on the NCP19 wirings): streaming == training, the compiled
streaming stepper == the torch core, bundles keep the wiring, ONNX Runtime == torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_control.export.onnx import export_onnx
from lnn_control.export.onnx_policy import OnnxPolicy
from lnn_control.nn.perception import PerceptionConfig
from lnn_control.policies.bundle import load_policy, save_policy
from lnn_control.policies.policy import COMPILED_STEPPERS, Policy
from lnn_control.policies.presets import build_policy
from lnn_control.spec import ObservationSpec

H, W = 32, 64
LIQUID = ["ltc", "cfc"]


def make_policy(core: str, preset: str = "ncp19_car", seed: int = 0) -> Policy:
    observations = ObservationSpec((H, W, 3), ("speed",), ("m/s",))
    perception = PerceptionConfig(image_height=H, image_width=W, conv_channels=(8, 8, 8), kernel_sizes=(5, 3, 3),
                                  strides=(2, 2, 2), features=32)
    return build_policy(preset, core=core, seed=seed, observation_spec=observations, perception=perception).eval()


def episode(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (steps, H, W, 3), dtype=np.uint8)
    speeds = rng.uniform(0.0, 3.0, (steps, 1)).astype(np.float32)
    dts = rng.uniform(0.02, 0.15, steps).astype(np.float32)  # irregular sampling, seconds
    return images, speeds, dts


def stream(policy: Policy, images: np.ndarray, speeds: np.ndarray, dts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    policy.reset()
    actions = [policy.act({"image": images[t], "speed": speeds[t]}, float(dts[t])) for t in range(len(dts))]
    return np.stack(actions), policy.neuron_activity()


@pytest.mark.parametrize("core", LIQUID)
def test_car_preset_uses_the_19_neuron_wiring(core: str) -> None:
    policy = make_policy(core)
    wiring = policy.config.core["wiring"]
    assert policy.state_size == 19 and policy.core.output_size == 1
    assert policy.config.core["type"] == core and isinstance(wiring, dict)
    drone = make_policy(core, preset="ncp19_drone")
    assert drone.state_size == 19 and drone.core.output_size == 4


@pytest.mark.parametrize("core", LIQUID)
def test_streaming_act_equals_training_forward(core: str) -> None:
    policy = make_policy(core)
    images, speeds, dts = episode(6)
    with torch.no_grad():
        actions, state = policy(torch.from_numpy(images)[None], torch.from_numpy(speeds)[None],
                                torch.from_numpy(dts)[None])
    for compiled in (False, True):
        policy.use_compiled_stepper = compiled
        streamed, activity = stream(policy, images, speeds, dts)
        np.testing.assert_allclose(streamed, actions[0].numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(activity, state[0].numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("core", sorted(COMPILED_STEPPERS))
def test_compiled_stepper_is_used_and_follows_weight_updates(core: str) -> None:
    policy = make_policy(core)
    images, speeds, dts = episode(4, seed=1)
    stream(policy, images, speeds, dts)
    assert policy._stream.stepper is not None  # the fast path really ran
    first = policy._stream.stepper
    with torch.no_grad():
        next(policy.core.parameters()).mul_(1.2)  # an in-place update, as an optimiser step does
    policy.use_compiled_stepper = False
    expected = stream(policy, images, speeds, dts)
    policy.use_compiled_stepper = True
    got = stream(policy, images, speeds, dts)
    assert policy._stream.stepper is not first
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("core", LIQUID)
def test_bundle_round_trip_keeps_wiring_and_actions(core: str, tmp_path: Path) -> None:
    policy = make_policy(core, seed=3)
    save_policy(policy, tmp_path / "b", {"command": "test", "seed": 3})
    loaded = load_policy(tmp_path / "b")
    assert loaded.config.core == policy.core.config()
    images, speeds, dts = episode(5, seed=2)
    np.testing.assert_array_equal(stream(loaded, images, speeds, dts)[0], stream(policy, images, speeds, dts)[0])


@pytest.mark.parametrize("core", LIQUID)
def test_onnx_runtime_matches_torch(core: str, tmp_path: Path) -> None:
    policy = make_policy(core, seed=4)
    policy.use_compiled_stepper = False
    engine = OnnxPolicy(export_onnx(policy, tmp_path / "p.onnx"))
    images, speeds, dts = episode(6, seed=4)
    torch_actions, torch_state = stream(policy, images, speeds, dts)
    onnx_actions, onnx_state = stream(engine, images, speeds, dts)  # type: ignore[arg-type]
    np.testing.assert_allclose(onnx_actions, torch_actions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(onnx_state, torch_state, rtol=0, atol=1e-5)
