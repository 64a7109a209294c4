"""from_ncps for ncps.torch.LTC: the converted core gives the same outputs as ncps (float32, <= 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ncps_torch = pytest.importorskip("ncps.torch")
ncps_wirings = pytest.importorskip("ncps.wirings")

from lnn_control.nn.interop import from_ncps  # noqa: E402
from lnn_control.nn.ltc import LTC, Positivity  # noqa: E402


def _ncps_wiring(kind: str, seed: int):  # noqa: ANN202
    if kind == "auto":
        return ncps_wirings.AutoNCP(14, 3, sparsity_level=0.5, seed=seed)
    if kind == "full":
        return ncps_wirings.FullyConnected(7, output_dim=2, erev_init_seed=seed)
    return ncps_wirings.NCP(6, 5, 2, sensory_fanout=3, inter_fanout=2, recurrent_command_synapses=4,
                            motor_fanin=3, seed=seed)


def _reference(kind: str, seed: int, implicit: bool = True):  # noqa: ANN202
    torch.manual_seed(seed)
    model = ncps_torch.LTC(9, _ncps_wiring(kind, seed), implicit_param_constraints=implicit)
    with torch.no_grad():  # move the affine maps off identity so they are exercised
        model.rnn_cell._params["input_b"].uniform_(-0.3, 0.3)
        model.rnn_cell._params["output_w"].uniform_(0.5, 1.5)
        model.rnn_cell._params["output_b"].uniform_(-0.3, 0.3)
    return model


@pytest.mark.parametrize("kind", ["auto", "full", "ncp"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_outputs_match_ncps(kind, seed):
    reference = _reference(kind, seed)
    ours = from_ncps(reference)
    assert isinstance(ours, LTC) and ours.positivity == Positivity.SOFTPLUS
    x = torch.randn(5, 12, 9, generator=torch.Generator().manual_seed(seed))
    h0 = torch.randn(5, reference.state_size, generator=torch.Generator().manual_seed(seed + 10)) * 0.3
    with torch.no_grad():
        y_ref, h_ref = reference(x, h0)
        y, h = ours(x, h0)
    assert (y - y_ref).abs().max() <= 1e-5
    assert (h - h_ref).abs().max() <= 1e-5
    assert np.array_equal(ours.wiring.adjacency, reference.rnn_cell._wiring.adjacency_matrix)
    assert np.array_equal(ours.wiring.sensory_adjacency, reference.rnn_cell._wiring.sensory_adjacency_matrix)


@pytest.mark.parametrize("kind", ["auto", "ncp"])
def test_batch_one_with_timespans_matches_ncps(kind):
    reference = _reference(kind, 4)
    ours = from_ncps(reference)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(1, 15, 9, generator=generator)
    timespans = torch.rand(1, 15, 1, generator=generator) * 2 + 0.1
    with torch.no_grad():
        y_ref, h_ref = reference(x, timespans=timespans)
        y, h = ours(x, dt=timespans[..., 0])
    assert (y - y_ref).abs().max() <= 1e-5 and (h - h_ref).abs().max() <= 1e-5


def test_without_implicit_constraints_uses_clamping():
    reference = _reference("ncp", 5, implicit=False)
    ours = from_ncps(reference)
    assert ours.positivity == Positivity.CLAMP
    x = torch.randn(3, 10, 9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(x)[0] - reference(x)[0]).abs().max() <= 1e-5
    # after the same negative update both clamp identically
    with torch.no_grad():
        reference.rnn_cell._params["w"].sub_(0.5)
        ours.w.sub_(0.5)
    reference.rnn_cell.apply_weight_constraints()
    ours.apply_weight_constraints()
    torch.testing.assert_close(ours.w, reference.rnn_cell._params["w"])


def test_converted_core_trains_per_sample_dt_consistently():
    ours = from_ncps(_reference("auto", 6))
    x = torch.randn(3, 8, 9, generator=torch.Generator().manual_seed(2))
    dt = torch.tensor([0.5, 1.0, 1.7])
    with torch.no_grad():
        y, _ = ours(x, dt=dt)
        for b in range(3):
            assert (ours(x[b : b + 1], dt=dt[b : b + 1])[0][0] - y[b]).abs().max() <= 1e-6


def test_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="mixed_memory=True"):
        from_ncps(ncps_torch.LTC(4, 6, mixed_memory=True))
    with pytest.raises(ValueError, match="not its cell"):
        from_ncps(ncps_torch.LTC(4, 6).rnn_cell)
    with pytest.raises(ValueError, match="from_ncps converts ncps.torch models"):
        from_ncps(torch.nn.Linear(2, 2))


def test_dense_ncps_ltc_from_a_unit_count():
    torch.manual_seed(3)
    reference = ncps_torch.LTC(9, 6)  # ncps builds FullyConnected(6): every neuron is an output
    ours = from_ncps(reference)
    assert (ours.output_size, ours.state_size, ours.wiring.synapse_count) == (6, 6, 36)
    x = torch.randn(4, 10, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y_ref, h_ref = reference(x)
        y, h = ours(x)
    assert (y - y_ref).abs().max() <= 1e-5 and (h - h_ref).abs().max() <= 1e-5
