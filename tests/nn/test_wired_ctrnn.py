"""The NCP-wired CT-RNN: the LTC's exact synapses, measured dt honoured, streaming = sequence, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lnn_control.nn.cores import build_core
from lnn_control.nn.wired_ctrnn import WiredCTRNN
from lnn_control.nn.wirings import wiring_from_name


def _core(seed: int = 0) -> WiredCTRNN:
    torch.manual_seed(seed)
    return WiredCTRNN(wiring_from_name("ncp19_car", input_dim=33))


def test_only_the_wirings_synapses_carry_signal() -> None:
    core = _core()
    wiring = core.wiring
    assert (core.input_size, core.state_size, core.output_size) == (33, 19, 1)
    assert core.synapse_count() == int(np.abs(wiring.adjacency).sum() + np.abs(wiring.sensory_adjacency).sum())
    # initial signs follow the synapse polarities
    signs = torch.sign(core.recurrent_weight.detach()) * core.recurrent_mask
    assert torch.equal(signs, torch.from_numpy(wiring.adjacency.astype(np.float32)))
    # gradients reach only existing synapses
    x = torch.randn(2, 5, 33)
    y, _ = core(x)
    y.sum().backward()
    grad = core.recurrent_weight.grad * (1 - core.recurrent_mask)
    assert float(grad.abs().sum()) == 0.0
    assert float((core.sensory_weight.grad * core.sensory_mask).abs().sum()) > 0.0
    # an input feature with no sensory synapse changes nothing
    unwired = int(np.flatnonzero(np.abs(wiring.sensory_adjacency).sum(axis=1) == 0)[0]) if (
        np.abs(wiring.sensory_adjacency).sum(axis=1) == 0).any() else None
    if unwired is not None:
        x2 = x.clone()
        x2[..., unwired] += 5.0
        assert torch.allclose(core(x)[0], core(x2)[0])


def test_elapsed_time_matters_and_streaming_matches_the_sequence() -> None:
    core = _core()
    x = torch.randn(1, 6, 33, generator=torch.Generator().manual_seed(1))
    dt = torch.tensor([[1.0, 2.0, 0.5, 3.0, 1.0, 1.5]])
    with torch.no_grad():
        y_seq, state_seq = core(x, dt=dt)
        y_one, _ = core(x, dt=1.0)
        state = core.initial_state(1)
        steps = []
        for t in range(6):
            y, state = core.step(x[:, t], state, dt[:, t])
            steps.append(y)
    assert torch.allclose(torch.stack(steps, dim=1), y_seq, atol=1e-6)
    assert torch.allclose(state, state_seq, atol=1e-6)
    assert not torch.allclose(y_seq, y_one)  # the measured dt changes the dynamics


def test_config_round_trips_through_json_and_the_registry() -> None:
    core = _core(seed=3)
    config = json.loads(json.dumps(core.config()))
    rebuilt = build_core(config)
    assert isinstance(rebuilt, WiredCTRNN)
    rebuilt.load_state_dict(core.state_dict())
    x = torch.randn(2, 4, 33)
    assert torch.allclose(rebuilt(x)[0], core(x)[0])
    with pytest.raises(ValueError, match="unknown key"):
        build_core({**config, "units": 5})


def test_a_policy_with_the_wired_ctrnn_core_shares_the_ltc_wiring_and_round_trips_as_a_bundle(tmp_path) -> None:
    from lnn_control.policies.bundle import load_policy, save_policy
    from lnn_control.policies.presets import build_policy

    ltc = build_policy("ncp19_car", core="ltc", seed=0)
    ctrnn = build_policy("ncp19_car", core="wired_ctrnn", seed=0)
    assert ctrnn.config.core["wiring"] == ltc.config.core["wiring"]
    save_policy(ctrnn, tmp_path / "bundle", {"command": "test"})
    loaded = load_policy(tmp_path / "bundle")
    frame = np.full((64, 128, 3), 90, np.uint8)
    assert np.array_equal(loaded.act({"image": frame}, 0.05), ctrnn.act({"image": frame}, 0.05))
