"""Named policy presets: defaults, overrides, seeding, baselines with the same perception."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnn_control.policies.presets import PRESETS, build_policy
from lnn_control.spec import ActionFrame, ActionSpec, ObservationSpec


def test_car_preset_defaults() -> None:
    policy = build_policy("ncp19_car", core="gru")
    assert policy.observation_spec == ObservationSpec((64, 128, 3))
    assert policy.action_spec == ActionSpec(("steering",), (-1.0,), (1.0,), ("normalized",), ActionFrame.FLU)
    assert policy.config.control_rate_hz == 20.0
    assert policy.config.core == {"type": "gru", "input_size": 32, "units": 19, "output_size": 1}
    action = policy.act({"image": np.zeros((64, 128, 3), np.uint8)}, 0.05)
    assert action.shape == (1,) and -1.0 <= float(action[0]) <= 1.0


def test_drone_presets_have_four_flight_commands() -> None:
    for name in ("ncp19_drone", "ncp34_drone"):
        policy = build_policy(name, core="ctrnn", hidden_size=7)
        assert policy.action_spec.names == ("vx", "vy", "vz", "yaw_rate")
        assert policy.action_spec.units == ("m/s", "m/s", "m/s", "rad/s")
        assert policy.core.units == 7 and policy.core.output_size == 4


def test_overrides_follow_the_env_specs() -> None:
    observations = ObservationSpec((48, 96, 3), ("speed",), ("m/s",))
    actions = ActionSpec(("steering",), (-0.5,), (0.5,), ("rad",))
    policy = build_policy(
        "ncp19_car", core="lstm", observation_spec=observations, action_spec=actions, control_rate_hz=30.0,
        extras_scale=(0.25,),
    )
    assert (policy.config.perception.image_height, policy.config.perception.image_width) == (48, 96)
    assert policy.core.input_size == 33 and policy.config.control_rate_hz == 30.0
    action = policy.act({"image": np.zeros((48, 96, 3), np.uint8), "speed": np.ones(1, np.float32)}, 0.03)
    assert -0.5 <= float(action[0]) <= 0.5


def test_same_seed_same_weights_without_touching_the_global_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_policy("ncp19_car", core="ctrnn", seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_policy("ncp19_car", core="ctrnn", seed=5)
    c = build_policy("ncp19_car", core="ctrnn", seed=6)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert not torch.equal(a.perception.head.weight, c.perception.head.weight)
    rebuilt = build_policy(a.config, seed=5)
    assert rebuilt.config == a.config
    assert torch.equal(rebuilt.perception.head.weight, build_policy(a.config, seed=5).perception.head.weight)


def test_bad_names_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown policy preset 'ncp19_boat'"):
        build_policy("ncp19_boat", core="gru")
    with pytest.raises(ValueError, match="unknown core 'rnn'"):
        build_policy("ncp19_car", core="rnn")  # type: ignore[arg-type]


def test_every_preset_is_listed_with_its_wiring() -> None:
    assert sorted(PRESETS) == ["ncp19_car", "ncp19_drone", "ncp34_drone"]
    assert all(preset.wiring == name for name, preset in PRESETS.items())
