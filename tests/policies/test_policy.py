"""Policy: training forward and streaming act agree, dt in seconds, output scaling, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lnn_control.config import load_dataclass
from lnn_control.nn.baselines import BASELINE_CORES
from lnn_control.nn.perception import PerceptionConfig
from lnn_control.policies.policy import OutputSquash, Policy, PolicyConfig
from lnn_control.spec import ActionSpec, ObservationSpec

H, W = 24, 32
RATE = 20.0


def make_config(
    kind: str = "ctrnn",
    extras: tuple[str, ...] = ("speed",),
    actions: int = 2,
    squash: OutputSquash = OutputSquash.TANH,
    extras_scale: tuple[float, ...] = (),
) -> PolicyConfig:
    perception = PerceptionConfig(
        image_height=H, image_width=W, conv_channels=(4, 8), kernel_sizes=(3, 3), strides=(2, 2), features=6
    )
    names = ("steering", "throttle", "a2", "a3")[:actions]
    core = BASELINE_CORES[kind](perception.features + len(extras), 5, actions)
    return PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=ObservationSpec((H, W, 3), extras, tuple("m/s" for _ in extras)),
        action_spec=ActionSpec(names, (-1.0, 0.0, -2.0, -3.0)[:actions], (1.0, 2.0, 2.0, 3.0)[:actions],
                               ("normalized",) * actions),
        control_rate_hz=RATE,
        output_squash=squash,
        extras_scale=extras_scale,
    )


def make_policy(seed: int = 0, **kwargs) -> Policy:
    torch.manual_seed(seed)
    return Policy(make_config(**kwargs)).eval()


def episode(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (steps, H, W, 3), dtype=np.uint8)
    speeds = rng.uniform(0.0, 3.0, (steps, 1)).astype(np.float32)
    dts = rng.uniform(0.02, 0.12, steps).astype(np.float32)  # irregular sampling, seconds
    return images, speeds, dts


@pytest.mark.parametrize("kind", sorted(BASELINE_CORES))
def test_streaming_act_equals_training_forward(kind: str) -> None:
    policy = make_policy(kind=kind)
    images, speeds, dts = episode(6)
    with torch.no_grad():
        batch_actions, final_state = policy(
            torch.from_numpy(images)[None], torch.from_numpy(speeds)[None], torch.from_numpy(dts)[None]
        )
    policy.reset()
    for t in range(6):
        action = policy.act({"image": images[t], "speed": speeds[t]}, float(dts[t]))
        assert action.dtype == np.float32 and action.shape == (2,)
        np.testing.assert_allclose(action, batch_actions[0, t].numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(policy.neuron_activity(), final_state[0].numpy(), rtol=0, atol=1e-5)


def test_dt_seconds_are_converted_to_nominal_steps() -> None:
    policy = make_policy(kind="ctrnn")
    images, speeds, _ = episode(1)
    obs = {"image": images[0], "speed": speeds[0]}
    x_features = policy.perception(torch.from_numpy(images[:1]))
    x = torch.cat([x_features, torch.from_numpy(speeds[:1])], dim=1)
    with torch.no_grad():
        _, expected = policy.core.step(x, policy.core.initial_state(1), 3.0)  # 3 nominal steps
    policy.reset()
    policy.act(obs, 3.0 / RATE)
    np.testing.assert_allclose(policy.neuron_activity(), expected[0].numpy(), rtol=0, atol=1e-6)
    policy.reset()
    policy.act(obs, 1.0 / RATE)
    assert np.abs(policy.neuron_activity() - expected[0].numpy()).max() > 1e-3


def test_reset_restarts_from_the_initial_state() -> None:
    policy = make_policy(kind="gru")
    images, speeds, dts = episode(4, seed=1)
    assert np.array_equal(policy.neuron_activity(), np.zeros(5, np.float32))
    runs = []
    for _ in range(2):
        policy.reset()
        runs.append([policy.act({"image": images[t], "speed": speeds[t]}, float(dts[t])) for t in range(4)])
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))
    assert np.abs(policy.neuron_activity()).max() > 0


def test_actions_stay_inside_the_action_spec() -> None:
    for squash in OutputSquash:
        policy = make_policy(kind="feedforward", squash=squash)
        with torch.no_grad():
            policy.output_gain.fill_(100.0)
            policy.output_bias.copy_(torch.tensor([50.0, -50.0]))
        images, speeds, dts = episode(1, seed=2)
        action = policy.act({"image": images[0], "speed": speeds[0]}, 0.05)
        np.testing.assert_array_equal(action, np.array([1.0, 0.0], np.float32))


def test_tanh_squash_maps_zero_output_to_the_middle_of_the_range() -> None:
    policy = make_policy(kind="feedforward", actions=3)
    actions = policy.squash(torch.zeros(1, 3))
    torch.testing.assert_close(actions, torch.tensor([[0.0, 1.0, 0.0]]))


def test_extras_scale_multiplies_the_extras() -> None:
    scaled = make_policy(kind="feedforward", extras_scale=(0.5,))
    plain = make_policy(kind="feedforward")
    images, _, _ = episode(1, seed=3)
    a = scaled.act({"image": images[0], "speed": np.array([2.0], np.float32)}, 0.05)
    b = plain.act({"image": images[0], "speed": np.array([1.0], np.float32)}, 0.05)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_same_seed_same_actions_different_seed_different_actions() -> None:
    images, speeds, _ = episode(1, seed=4)
    obs = {"image": images[0], "speed": speeds[0]}
    a, b, c = (make_policy(seed=s).act(obs, 0.05) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_policy_without_extras_takes_none() -> None:
    policy = make_policy(kind="gru", extras=())
    images, _, dts = episode(3)
    actions, _ = policy(torch.from_numpy(images)[None], None, torch.from_numpy(dts)[None])
    assert actions.shape == (1, 3, 2)
    assert policy.act({"image": images[0]}, 0.05).shape == (2,)


def test_config_round_trips_through_json() -> None:
    config = make_config(extras_scale=(0.25,), squash=OutputSquash.CLIP)
    data = json.loads(json.dumps(config.to_dict()))
    assert load_dataclass(PolicyConfig, data, "config.json") == config


def test_behaviour_cloning_fits_a_visual_steering_rule() -> None:
    """Steer toward the bright half of the frame: the whole stack (CNN + core + squash) learns it."""
    torch.manual_seed(11)
    policy = Policy(make_config(kind="gru", extras=(), actions=1))
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.01)
    rng = np.random.default_rng(11)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        side = rng.integers(0, 2, (8, 3))
        images = rng.integers(0, 60, (8, 3, H, W, 3), dtype=np.uint8)
        for b in range(8):
            for t in range(3):
                cols = slice(0, W // 2) if side[b, t] else slice(W // 2, W)
                images[b, t, :, cols] += 150
        return torch.from_numpy(images), torch.from_numpy((side * 1.4 - 0.7).astype(np.float32))[..., None]

    losses = []
    for _ in range(60):
        images, target = batch()
        actions, _ = policy(images, None, 1.0 / RATE)
        loss = (actions - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:5]), (losses[:5], losses[-5:])


@pytest.mark.parametrize(
    ("observation", "dt", "match"),
    [
        ([1, 2], 0.05, "must be a dict"),
        ({"speed": np.zeros(1, np.float32)}, 0.05, r"missing \['image'\]"),
        ({"image": np.zeros((H, W, 3), np.uint8)}, 0.05, r"missing \['speed'\]"),
        ({"image": np.zeros((H, W, 3), np.float32), "speed": np.zeros(1)}, 0.05, "uint8"),
        ({"image": np.zeros((W, H, 3), np.uint8), "speed": np.zeros(1)}, 0.05, r"expects \(24, 32, 3\)"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.array([np.nan])}, 0.05, "finite"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.zeros(2)}, 0.05, "shape"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": "fast"}, 0.05, "number"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.zeros(1)}, 0.0, "dt_seconds"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.zeros(1)}, float("nan"), "dt_seconds"),
        ({"image": np.zeros((H, W, 3), np.uint8), "speed": np.zeros(1)}, "0.05", "dt_seconds"),
    ],
)
def test_bad_observation_raises_value_error_and_keeps_state(observation, dt, match: str) -> None:
    policy = make_policy()
    images, speeds, _ = episode(1)
    policy.act({"image": images[0], "speed": speeds[0]}, 0.05)
    before = policy.neuron_activity()
    with pytest.raises(ValueError, match=match):
        policy.act(observation, dt)
    np.testing.assert_array_equal(policy.neuron_activity(), before)


def test_bad_training_inputs_raise_value_error() -> None:
    policy = make_policy()
    images = torch.zeros(1, 2, H, W, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\[B,T,H,W,3\]"):
        policy(images[0], torch.zeros(1, 2, 1), 0.05)
    with pytest.raises(ValueError, match=r"\[1,2,1\]"):
        policy(images, torch.zeros(1, 2, 3), 0.05)
    with pytest.raises(ValueError, match="required"):
        policy(images, None, 0.05)
    with pytest.raises(ValueError, match="dt"):
        policy(images, torch.zeros(1, 2, 1), -0.05)


def test_mismatched_configs_raise_value_error() -> None:
    config = make_config()
    with pytest.raises(ValueError, match="does not match the perception input"):
        PolicyConfig(config.perception, config.core, ObservationSpec((H + 1, W, 3)), config.action_spec, RATE)
    with pytest.raises(ValueError, match="control_rate_hz"):
        PolicyConfig(config.perception, config.core, config.observation_spec, config.action_spec, 0.0)
    with pytest.raises(ValueError, match="extras_scale"):
        make_config(extras_scale=(1.0, 2.0))
    wrong_input = dict(config.core, input_size=config.core["input_size"] + 1)
    with pytest.raises(ValueError, match="input_size=7"):
        Policy(PolicyConfig(config.perception, wrong_input, config.observation_spec, config.action_spec, RATE))
    wrong_output = dict(config.core, output_size=3)
    with pytest.raises(ValueError, match="2 outputs"):
        Policy(PolicyConfig(config.perception, wrong_output, config.observation_spec, config.action_spec, RATE))
    with pytest.raises(ValueError, match="does not match config.core"):
        Policy(config, core=BASELINE_CORES["gru"](7, 5, 2))
