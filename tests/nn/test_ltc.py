"""LTC core: contract, numerics (sequence == step, compiled == torch, gradients), dt semantics, validation."""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest
import torch

from lnn_control.nn.cores import build_core
from lnn_control.nn.ltc import LTC, Positivity
from lnn_control.nn.ltc_kernels import compiled_recurrence, compiled_sensory, kernel_threads
from lnn_control.nn.ltc_stepper import LTCStepper
from lnn_control.nn.wirings import NCP, AutoNCP, FullyConnected, Wiring, ncp19_car


def _inputs(batch: int, steps: int, features: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_contract_attributes():
    core = LTC(ncp19_car())
    assert (core.input_size, core.output_size, core.state_size) == (32, 1, 19)
    y, state = core(_inputs(3, 5, 32))
    assert y.shape == (3, 5, 1) and state.shape == (3, 19)
    assert core.initial_state(2).shape == (2, 19) and not core.initial_state(2).any()
    y1, s1 = core.step(_inputs(3, 1, 32)[:, 0], core.initial_state(3), 1.0)
    assert y1.shape == (3, 1) and s1.shape == (3, 19)


@pytest.mark.parametrize("compiled", [True, False])
def test_sequence_equals_steps_and_state_passing(compiled):
    core = LTC(AutoNCP(12, 3, seed=4).build(6), seed=1)
    core.compiled = compiled
    x = _inputs(2, 9, 6, seed=1)
    dt = torch.rand(2, 9, generator=torch.Generator().manual_seed(2)) + 0.2
    with torch.no_grad():
        y, final = core(x, dt=dt)
        state = core.initial_state(2)
        outputs = []
        for t in range(9):
            out, state = core.step(x[:, t], state, dt[:, t])
            outputs.append(out)
        y_first, mid = core(x[:, :4], dt=dt[:, :4])
        y_rest, final_split = core(x[:, 4:], mid, dt=dt[:, 4:])
    torch.testing.assert_close(torch.stack(outputs, 1), y, atol=1e-6, rtol=0)
    torch.testing.assert_close(state, final, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat([y_first, y_rest], 1), y, atol=1e-6, rtol=0)
    torch.testing.assert_close(final_split, final, atol=1e-6, rtol=0)
    # the output is the motor neurons (0..2) through the affine output map
    torch.testing.assert_close(y[:, -1], final[:, :3] * core.output_w + core.output_b)


def test_compiled_and_torch_paths_agree_in_values_and_gradients():
    core = LTC(NCP(5, 4, 2, 3, 2, 4, 2, seed=8).build(7), seed=2).double()
    x = _inputs(3, 6, 7, seed=3).double()
    v0 = torch.randn(3, 11, dtype=torch.float64)
    dt = torch.rand(3, 6, dtype=torch.float64) + 0.3
    results = []
    for compiled in (True, False):
        core.compiled = compiled
        core.zero_grad()
        y, final = core(x, v0, dt)
        (y.square().sum() + final.sin().sum()).backward()
        results.append((y.detach(), {name: p.grad.clone() for name, p in core.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=0)
    for name, grad in results[0][1].items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, results[1][1][name], atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize(("batch", "threads"), [(67, 1), (3, 2)])
def test_compiled_kernels_split_the_batch_into_chunks(batch, threads):
    """Several chunks: 67 rows on one thread (two uneven chunks of <= 64 rows), 3 rows on two threads."""
    core = LTC(AutoNCP(9, 2, seed=3).build(5), seed=4).double()
    x = _inputs(batch, 4, 5, seed=7).double()
    v0 = torch.randn(batch, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    dt = torch.rand(batch, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9)) + 0.3
    before = torch.get_num_threads()
    results = []
    try:
        torch.set_num_threads(threads)
        for compiled in (True, False):
            core.compiled = compiled
            core.zero_grad()
            state = v0.clone().requires_grad_()
            y, final = core(x, state, dt)
            (y.square().sum() + final.sin().sum()).backward()
            grads = {name: p.grad.clone() for name, p in core.named_parameters()}
            results.append((y.detach(), final.detach(), state.grad, grads))
    finally:
        torch.set_num_threads(before)
    for got, expected in zip(results[0][:3], results[1][:3]):
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-10)
    for name, grad in results[0][3].items():
        torch.testing.assert_close(grad, results[1][3][name], atol=1e-10, rtol=1e-8, msg=name)


def test_compiled_backward_matches_finite_differences():
    generator = torch.Generator().manual_seed(5)
    batch, steps, units = 2, 3, 4
    src = torch.tensor([0, 1, 2, 3, 3, 1])
    tgt = torch.tensor([1, 2, 3, 0, 3, 1])
    k = src.shape[0]

    def rand(*shape: int, low: float = 0.2, high: float = 1.0) -> torch.Tensor:
        value = torch.rand(*shape, generator=generator, dtype=torch.float64) * (high - low) + low
        return value.requires_grad_()

    inputs = (
        rand(batch, units, low=-0.5, high=0.5), rand(batch, steps, units), rand(batch, steps, units, low=1.0, high=2.0),
        rand(batch, steps, units), rand(k, low=1.0, high=4.0), rand(k), rand(k), rand(k, low=-1.0, high=1.0),
    )
    assert torch.autograd.gradcheck(lambda *a: compiled_recurrence(*a, src, tgt, 3), inputs)


def test_compiled_sensory_backward_matches_finite_differences():
    """The fused sensory kernel pair: inputs feed several targets, one target has two synapses."""
    generator = torch.Generator().manual_seed(6)
    src = torch.tensor([0, 0, 1, 2, 2])
    tgt = torch.tensor([0, 2, 1, 1, 3])

    def rand(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        value = torch.rand(*shape, generator=generator, dtype=torch.float64) * (high - low) + low
        return value.requires_grad_()

    inputs = (rand(3, 2, 3), rand(5, low=1.0, high=4.0), rand(5), rand(5, low=0.2, high=1.0), rand(5))
    assert torch.autograd.gradcheck(lambda *a: compiled_sensory(*a, src, tgt, 4), inputs)


def test_a_one_thread_run_stays_on_one_thread_after_the_kernels_start():
    """A fresh process (Numba's pool not yet launched): launching it must not reset torch's count."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); from lnn_control.nn.ltc import LTC; "
            "from lnn_control.nn.wirings import ncp19_car; core = LTC(ncp19_car(input_dim=8), seed=0); "
            "core(torch.randn(4, 3, 8))[0].sum().backward(); print(torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip().splitlines()[-1] == "1"


def test_parallel_kernels_follow_torch_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert kernel_threads() == 1
        torch.set_num_threads(64)
        assert kernel_threads() == min(64, numba.config.NUMBA_NUM_THREADS) == numba.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_per_sample_dt_equals_batch_one_runs():
    core = LTC(ncp19_car(), seed=6)
    x = _inputs(4, 7, 32, seed=4)
    dt = torch.tensor([[0.5], [1.0], [2.0], [3.5]]).expand(4, 7) * torch.linspace(0.5, 1.5, 7)
    with torch.no_grad():
        y, state = core(x, dt=dt)
        for b in range(4):
            y_b, state_b = core(x[b : b + 1], dt=dt[b : b + 1])
            torch.testing.assert_close(y_b[0], y[b], atol=1e-6, rtol=0)
            torch.testing.assert_close(state_b[0], state[b], atol=1e-6, rtol=0)
        # dt given per sample ([B]) is the same as repeating it over time
        y_per_sample, _ = core(x, dt=dt[:, 0])
        y_repeated, _ = core(x, dt=dt[:, :1].expand(4, 7).contiguous())
    torch.testing.assert_close(y_per_sample, y_repeated)
    assert (y[0] - y[3]).abs().max() > 1e-3  # elapsed time changes the dynamics


def test_dt_is_elapsed_time_of_the_ode():
    """With many unfolds the solver converges: one step of dt=2 ~= two steps of dt=1 (constant input)."""
    wiring = ncp19_car(seed=3)
    core = LTC(wiring, ode_unfolds=600, seed=2)
    x = _inputs(2, 1, 32, seed=9)
    with torch.no_grad():
        _, one_long = core(x, dt=2.0)
        _, two_short = core(x.expand(2, 2, 32).contiguous(), dt=1.0)
        _, one_short = core(x, dt=1.0)
    assert (one_long - two_short).abs().max() < 2e-3
    assert (one_long - one_short).abs().max() > 20 * (one_long - two_short).abs().max()
    # and halving dt while doubling the unfolds is the same fused-Euler sub-step
    half = LTC(wiring, ode_unfolds=12, seed=2)
    six = LTC(wiring, ode_unfolds=6, seed=2)
    with torch.no_grad():
        _, a = half(x, dt=2.0)
        _, b = six(x.expand(2, 2, 32).contiguous(), dt=1.0)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_gradients_finite_over_64_steps_and_training_reduces_loss():
    core = LTC(ncp19_car(), seed=0)
    x = _inputs(4, 64, 32, seed=5)
    target = torch.sin(torch.linspace(0, 6, 64)).expand(4, 64).unsqueeze(-1)
    optimiser = torch.optim.Adam(core.parameters(), lr=0.02)
    losses = []
    for _ in range(20):
        y, _ = core(x)
        loss = (y - target).square().mean()
        optimiser.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in core.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0]


def test_seeded_determinism():
    a, b, c = LTC(ncp19_car(), seed=11), LTC(ncp19_car(), seed=11), LTC(ncp19_car(), seed=12)
    x = _inputs(2, 5, 32)
    with torch.no_grad():
        assert torch.equal(a(x)[0], b(x)[0])
        assert not torch.equal(a(x)[0], c(x)[0])


def test_config_round_trip_through_build_core_and_json():
    core = LTC(ncp19_car(), ode_unfolds=4, positivity=Positivity.CLAMP)
    config = json.loads(json.dumps(core.config()))
    rebuilt = build_core(config)
    assert isinstance(rebuilt, LTC) and rebuilt.config() == core.config()
    assert np.array_equal(rebuilt.wiring.adjacency, core.wiring.adjacency)
    rebuilt.load_state_dict(core.state_dict())
    x = _inputs(1, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)[0], core(x)[0], atol=0, rtol=0)
    with pytest.raises(ValueError, match="unknown key"):
        build_core({**config, "units": 3})
    with pytest.raises(ValueError, match="positivity"):
        build_core({**config, "positivity": "abs"})
    with pytest.raises(ValueError, match="unknown core type 'ltcx'"):
        build_core({**config, "type": "ltcx"})


def test_positivity_modes():
    soft = LTC(ncp19_car())
    with torch.no_grad():
        soft.w.fill_(-5.0)
    assert (soft.effective_parameters()["w"] > 0).all()
    clamp = LTC(ncp19_car(), positivity=Positivity.CLAMP)
    with torch.no_grad():
        clamp.w.fill_(-5.0)
        clamp.gleak.fill_(-1.0)
    clamp.apply_weight_constraints()
    assert (clamp.w == 0).all() and (clamp.gleak == 0).all()


def test_network_without_recurrent_synapses():
    wiring = Wiring.from_adjacency(np.zeros((3, 3)), np.array([[1, -1, 1], [0, 1, 0]]), output_dim=1)
    core = LTC(wiring).double()
    x = _inputs(2, 4, 2).double()
    core.compiled = True
    compiled = core(x)[0]
    core.compiled = False
    torch.testing.assert_close(compiled, core(x)[0])


def test_bad_inputs_raise_value_errors_naming_the_argument():
    core = LTC(ncp19_car())
    x = _inputs(2, 3, 32)
    with pytest.raises(ValueError, match="x must have shape"):
        core(x[..., :31])
    with pytest.raises(ValueError, match="x contains NaN"):
        core(torch.full((2, 3, 32), float("nan")))
    with pytest.raises(ValueError, match="x must be a floating-point"):
        core(torch.ones(2, 3, 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="dt .* must be finite and > 0"):
        core(x, dt=0.0)
    with pytest.raises(ValueError, match="dt .* must be finite and > 0"):
        core(x, dt=torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="dt must be a float, a tensor"):
        core(x, dt=torch.ones(3))
    with pytest.raises(ValueError, match="state must have shape"):
        core(x, torch.zeros(2, 18))
    with pytest.raises(ValueError, match="batch_size"):
        core.initial_state(0)
    with pytest.raises(ValueError, match="not built"):
        LTC(NCP(3, 2, 1, 2, 2, 1, 1))
    with pytest.raises(ValueError, match="ode_unfolds"):
        LTC(ncp19_car(), ode_unfolds=0)


def test_stepper_matches_torch_path_with_irregular_dt():
    core = LTC(ncp19_car(seed=2), seed=7)
    with torch.no_grad():
        core.output_b.fill_(0.3)
        core.input_b.fill_(-0.1)
    stepper = LTCStepper(core)
    x = _inputs(1, 40, 32, seed=8)
    dt = torch.rand(1, 40, generator=torch.Generator().manual_seed(3)) * 2 + 0.1
    with torch.no_grad():
        y, state = core(x, dt=dt)
    outputs = np.stack([stepper.step(x[0, t].numpy(), float(dt[0, t])) for t in range(40)])
    assert np.abs(outputs - y[0].numpy()).max() <= 1e-5
    assert np.abs(stepper.state - state[0].numpy()).max() <= 1e-5
    stepper.reset()
    assert not stepper.state.any()
    with pytest.raises(ValueError, match="x must have shape"):
        stepper.step(np.zeros(31), 1.0)
    with pytest.raises(ValueError, match="dt"):
        stepper.step(np.zeros(32), -1.0)


def test_dense_constructor_is_fully_connected():
    core = LTC.dense(5, 8, output_size=2, seed=3)
    assert core.wiring.synapse_count == 64 and core.wiring.sensory_synapse_count == 40
    assert isinstance(FullyConnected(4), Wiring)


def test_kernels_compile_without_a_writable_cache(monkeypatch):
    """Numba raises RuntimeError at decoration when no cache folder is writable; jit_kernel then compiles in memory."""
    import numba

    from lnn_control.nn import ltc_kernels

    real_njit = numba.njit

    def njit_without_cache(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real_njit(*args, **kwargs)

    monkeypatch.setattr(ltc_kernels.numba, "njit", njit_without_cache)

    def add_one(value):  # noqa: ANN001, ANN202
        return value + 1.0

    compiled = ltc_kernels.jit_kernel(add_one)
    assert compiled(np.float64(1.5)) == 2.5
    assert type(compiled._cache).__name__ == "NullCache"  # compiled in memory, nothing written
    assert type(ltc_kernels._recurrence_forward._cache).__name__ == "FunctionCache"  # the real kernels do cache


def test_other_dtypes_use_the_torch_path():
    core = LTC(ncp19_car(), seed=4)
    x = _inputs(2, 5, 32, seed=6)
    with torch.no_grad():
        reference, _ = core(x)
        low, state = core.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16 and state.dtype == torch.bfloat16
    assert (low.float() - reference).abs().max() < 0.05
