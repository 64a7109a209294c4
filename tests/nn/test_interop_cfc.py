"""``from_ncps`` for ``ncps.torch.CfC``: our converted core reproduces the ncps module exactly (<= 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")

from lnn_control.nn.cfc import CfC  # noqa: E402
from lnn_control.nn.cfc_stepper import CfCStepper  # noqa: E402
from lnn_control.nn.interop import from_ncps  # noqa: E402
from lnn_control.nn.interop_cfc import state_from_ncps, state_to_ncps, wiring_from_ncps  # noqa: E402

MODES = ["default", "no_gate", "pure"]
TOLERANCE = 1e-5


def _ncps_model(kind: str, mode: str, seed: int, features: int = 7):  # noqa: ANN202
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if kind == "dense":
        return ncps_torch.CfC(features, int(rng.integers(3, 12)), mode=mode, backbone_units=int(rng.integers(4, 20)))
    if kind == "dense_no_backbone":
        return ncps_torch.CfC(features, 6, mode=mode, backbone_layers=0)
    if kind == "dense_deep_gelu_proj":
        return ncps_torch.CfC(features, 5, proj_size=2, mode=mode, backbone_layers=3, backbone_units=9,
                              activation="gelu")
    if kind == "ncp":
        inter, command, motor = (int(v) for v in rng.integers(2, 6, size=3))
        wiring = ncps_wirings.NCP(inter, command, motor, sensory_fanout=int(rng.integers(1, inter + 1)),
                                  inter_fanout=int(rng.integers(1, command + 1)),
                                  recurrent_command_synapses=int(rng.integers(0, 5)),
                                  motor_fanin=int(rng.integers(1, command + 1)), seed=seed)
        return ncps_torch.CfC(features, wiring, mode=mode)
    if kind == "auto_ncp":
        return ncps_torch.CfC(features, ncps_wirings.AutoNCP(int(rng.integers(8, 20)), 2, seed=seed), mode=mode)
    if kind == "auto_ncp_proj":
        return ncps_torch.CfC(features, ncps_wirings.AutoNCP(12, 3, seed=seed), proj_size=2, mode=mode)
    raise AssertionError(kind)


KINDS = ["dense", "dense_no_backbone", "dense_deep_gelu_proj", "ncp", "auto_ncp", "auto_ncp_proj"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_and_states_match_ncps(kind: str, mode: str, seed: int) -> None:
    theirs = _ncps_model(kind, mode, seed)
    ours = from_ncps(theirs)
    assert isinstance(ours, CfC)
    generator = torch.Generator().manual_seed(seed + 10)
    # batch 1 with timespans (the only batched timespans ncps gets right)
    x = torch.randn(1, 9, 7, generator=generator) * 2
    spans = torch.rand(1, 9, generator=generator) * 2 + 0.05
    with torch.no_grad():
        y_theirs, h_theirs = theirs(x, timespans=spans)
        y_ours, h_ours = ours(x, dt=spans)
    assert y_ours.shape == y_theirs.shape
    assert (y_ours - y_theirs).abs().max() <= TOLERANCE
    assert (state_to_ncps(ours, h_ours) - h_theirs).abs().max() <= TOLERANCE
    # batch > 1 without timespans, from a non-zero initial state in ncps layout
    x = torch.randn(5, 6, 7, generator=generator)
    h0_theirs = torch.randn(5, ours.state_size, generator=generator) * 0.5
    with torch.no_grad():
        y_theirs, h_theirs = theirs(x, h0_theirs)
        y_ours, h_ours = ours(x, state_from_ncps(ours, h0_theirs))
    assert (y_ours - y_theirs).abs().max() <= TOLERANCE
    assert (state_to_ncps(ours, h_ours) - h_theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("mode", MODES)
def test_per_sample_dt_for_any_batch_matches_ncps_run_per_sample(mode: str) -> None:
    theirs = _ncps_model("auto_ncp", mode, 3)
    ours = from_ncps(theirs)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(4, 5, 7, generator=generator)
    spans = torch.rand(4, 5, generator=generator) * 3 + 0.1
    with torch.no_grad():
        y_ours, _ = ours(x, dt=spans)
        for b in range(4):
            y_theirs, _ = theirs(x[b: b + 1], timespans=spans[b: b + 1])
            assert (y_ours[b] - y_theirs[0]).abs().max() <= TOLERANCE


def test_converted_wiring_keeps_adjacency_polarity_and_layers() -> None:
    theirs = _ncps_model("ncp", "default", 2)
    ours = from_ncps(theirs)
    wiring = theirs.rnn_cell._wiring
    assert np.array_equal(ours.wiring.adjacency, wiring.adjacency_matrix)
    assert np.array_equal(ours.wiring.sensory_adjacency, wiring.sensory_adjacency_matrix)
    assert [g.tolist() for g in ours.wiring.layers] == [list(wiring.get_neurons_of_layer(i)) for i in range(3)]
    assert ours.config()["ncps_compat"] is True
    assert np.array_equal(wiring_from_ncps(wiring).adjacency, wiring.adjacency_matrix)


def test_converted_model_runs_in_the_compiled_stepper() -> None:
    theirs = _ncps_model("auto_ncp", "default", 5)
    stepper = CfCStepper.from_module(from_ncps(theirs))
    x = torch.randn(1, 6, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y_theirs, _ = theirs(x)
    ours = np.stack([stepper.step(x[0, t].numpy(), 1.0) for t in range(6)])
    assert np.abs(ours - y_theirs[0].numpy()).max() <= TOLERANCE


def test_converted_model_trains_like_ncps() -> None:
    """Same gradients on the same loss: the conversion is a faithful re-parametrisation."""
    theirs = _ncps_model("ncp", "default", 6)
    ours = from_ncps(theirs)
    x = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(2))
    theirs(x)[0].square().sum().backward()
    ours(x)[0].square().sum().backward()
    first = theirs.rnn_cell._layers[0]
    neurons = torch.as_tensor(ours.wiring.layers[0])
    expected = (first.ff1.weight.grad * first.sparsity_mask)[:, :7].t()  # [F, n_inter]
    got = ours.cell.sensory_weight.grad[0][:, neurons]
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ncps_torch.CfC(4, 6, mixed_memory=True), "mixed_memory"),
        (lambda: ncps_torch.CfC(4, 6, batch_first=False), "batch_first"),
        (lambda: ncps_torch.CfC(4, ncps_wirings.FullyConnected(6, 2)), "last layer"),
        (lambda: ncps_torch.LSTMCell(4, 6) if hasattr(ncps_torch, "LSTMCell") else torch.nn.GRU(4, 6), "ncps"),
    ],
)
def test_unsupported_modules_are_refused_with_a_reason(build, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        from_ncps(build())
