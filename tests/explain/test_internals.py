"""LTC time constants against finite differences of the core itself; CfC gates against the update."""

from __future__ import annotations

import pytest
import torch

from lnn_control.explain.internals import (
    cfc_gates,
    cfc_heads,
    ltc_derivative,
    ltc_time_constants,
    neuron_groups,
    select_groups,
)
from lnn_control.nn.cfc import CfC
from lnn_control.nn.ltc import LTC
from lnn_control.nn.wirings import NCP


def small_ltc() -> LTC:
    wiring = NCP(3, 2, 1, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=2, seed=3)
    core = LTC(wiring.build(4), ode_unfolds=1, seed=5).double()
    core.compiled = False
    with torch.no_grad():  # spread the parameters so every synapse matters
        core.vleak.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(1))
    return core


def test_ltc_derivative_matches_finite_difference_of_the_core_step() -> None:
    core = small_ltc()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 0.5
    h = 1e-6  # one semi-implicit Euler sub-step of h nominal steps: (v(h) - v) / h -> dv/dt
    _, after = core.step(x, v, h)
    finite = (after - v) / h
    torch.testing.assert_close(ltc_derivative(core, x, v), finite, rtol=1e-4, atol=1e-6)


def test_ltc_time_constant_is_minus_the_inverse_self_sensitivity() -> None:
    """d(dv_j/dt)/dv_j = -1/tau_j for a neuron without a self-synapse (finite difference)."""
    core = small_ltc()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, generator=gen, dtype=torch.float64)
    v = torch.randn(1, 6, generator=gen, dtype=torch.float64) * 0.5
    tau, _ = ltc_time_constants(core, x, v)
    self_synapse = core.wiring.adjacency.diagonal() != 0
    checked = 0
    for j in range(6):
        if self_synapse[j]:
            continue
        eps = 1e-5
        up, down = v.clone(), v.clone()
        up[0, j] += eps
        down[0, j] -= eps
        h = 1e-7
        rate = [(core.step(x, s, h)[1][0, j].detach() - s[0, j]) / h for s in (up, down)]
        slope = (rate[0] - rate[1]) / (2 * eps)
        assert float(slope) == pytest.approx(-1.0 / float(tau[0, j]), rel=1e-3)
        checked += 1
    assert checked >= 4
    assert bool((tau > 0).all())


def test_ltc_time_constant_shrinks_when_synapses_open() -> None:
    core = small_ltc()
    x = torch.zeros(1, 4, dtype=torch.float64)
    low, _ = ltc_time_constants(core, x - 5.0, torch.zeros(1, 6, dtype=torch.float64))
    high, _ = ltc_time_constants(core, x + 5.0, torch.zeros(1, 6, dtype=torch.float64))
    inter = neuron_groups(core)["inter"]  # sensory synapses drive the inter neurons
    assert not torch.allclose(low[0, inter], high[0, inter])


@pytest.mark.parametrize("mode", ["default", "no_gate"])
@pytest.mark.parametrize("wired", [True, False])
def test_cfc_gates_reconstruct_the_step(mode: str, wired: bool) -> None:
    """The returned gate, put into the closed-form update, gives the core's own new state."""
    torch.manual_seed(0)
    wiring = NCP(3, 2, 1, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=2, seed=3)
    core = CfC(4, wiring.build(4) if wired else 6, mode, **({} if wired else {"backbone_layers": 0}))
    gen = torch.Generator().manual_seed(4)
    x, before = torch.randn(2, 4, generator=gen), torch.randn(2, 6, generator=gen) * 0.5
    _, after = core.step(x, before, 1.7)
    heads = cfc_heads(core, x, before, after, 1.7)
    gate = heads["gate"]
    assert gate.shape == (2, 6) and bool(((gate > 0) & (gate < 1)).all())
    torch.testing.assert_close(cfc_gates(core, x, before, after, 1.7), gate)
    if mode == "default":
        rebuilt = heads["ff1"] * (1 - gate) + gate * heads["ff2"]
    else:
        rebuilt = heads["ff1"] + gate * heads["ff2"]
    torch.testing.assert_close(rebuilt, after, rtol=1e-5, atol=1e-6)


def test_unknown_neuron_group_names_the_allowed_groups() -> None:
    groups = neuron_groups(small_ltc())
    assert list(groups) == ["motor", "command", "inter"]
    assert select_groups(groups, ["command"]) == {"command": groups["command"]}
    with pytest.raises(ValueError, match=r"unknown neuron group\(s\) \['sensory'\].*\['command', 'inter', 'motor'\]"):
        select_groups(groups, ["sensory"])
