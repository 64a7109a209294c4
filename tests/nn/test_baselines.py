"""Baseline cores (LSTM, GRU, CT-RNN, feed-forward) honour the recurrent-core contract."""

from __future__ import annotations

import json

import pytest
import torch

from lnn_control.nn.baselines import (
    BASELINE_CORES,
    CTRNNCore,
    build_baseline,
)

KINDS = sorted(BASELINE_CORES)


def _core(kind: str, seed: int = 0, input_size: int = 5, units: int = 7, output_size: int = 2):
    torch.manual_seed(seed)
    return BASELINE_CORES[kind](input_size, units, output_size)


def _inputs(batch: int, steps: int, features: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_four_baselines() -> None:
    assert KINDS == ["ctrnn", "feedforward", "gru", "lstm"]


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_state_sizes(kind: str) -> None:
    core = _core(kind)
    expected_state = {"lstm": 14, "gru": 7, "ctrnn": 7, "feedforward": 1}[kind]
    assert (core.input_size, core.output_size, core.state_size) == (5, 2, expected_state)
    assert core.initial_state(3).shape == (3, expected_state)
    y, state = core(_inputs(3, 4))
    assert y.shape == (3, 4, 2) and state.shape == (3, expected_state)


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_forward_equals_streaming_steps(kind: str) -> None:
    core = _core(kind, seed=1)
    x = _inputs(2, 6, seed=1)
    dt = torch.rand(2, 6, generator=torch.Generator().manual_seed(2)) + 0.5
    y_seq, final = core(x, dt=dt)
    state = core.initial_state(2)
    for t in range(6):
        y_t, state = core.step(x[:, t], state, dt[:, t])
        torch.testing.assert_close(y_t, y_seq[:, t], rtol=0, atol=1e-6)
    torch.testing.assert_close(state, final, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_config_is_json_and_rebuilds_the_same_network(kind: str) -> None:
    core = _core(kind, seed=3)
    config = json.loads(json.dumps(core.config()))
    assert config["type"] == kind
    rebuilt = build_baseline(config)
    rebuilt.load_state_dict(core.state_dict())
    x = _inputs(2, 3, seed=3)
    torch.testing.assert_close(rebuilt(x)[0], core(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_core_registry_builds_the_baselines(kind: str) -> None:
    from lnn_control.nn.cores import build_core

    core = _core(kind, seed=11)
    rebuilt = build_core(core.config())
    assert type(rebuilt) is type(core) and rebuilt.config() == core.config()


def test_lstm_state_is_h_then_c() -> None:
    core = _core("lstm", seed=4)
    x = _inputs(1, 3, seed=4)
    _, state = core(x)
    _, (h, c) = core.rnn(x)
    torch.testing.assert_close(state, torch.cat([h[0], c[0]], dim=1))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_discrete_time_cores_ignore_dt_value(kind: str) -> None:
    core = _core(kind, seed=5)
    x = _inputs(2, 4, seed=5)
    torch.testing.assert_close(core(x, dt=1.0)[0], core(x, dt=3.5)[0], rtol=0, atol=0)


def test_ctrnn_integrates_elapsed_time_exactly_without_recurrence() -> None:
    torch.manual_seed(6)
    core = CTRNNCore(3, 4, 1)
    with torch.no_grad():
        core.recurrent.weight.zero_()  # constant drive -> exponential Euler is exact
    x = torch.randn(1, 3)
    state = torch.randn(1, 4)
    _, two_halves = core.step(x, core.step(x, state, 0.7)[1], 1.3)
    _, one_step = core.step(x, state, 2.0)
    torch.testing.assert_close(two_halves, one_step, rtol=1e-6, atol=1e-6)
    target = torch.tanh(core.input_map(x))
    expected = target + (state - target) * torch.exp(-2.0 / core.tau())
    torch.testing.assert_close(one_step, expected, rtol=1e-6, atol=1e-6)


def test_ctrnn_is_stable_for_a_long_gap_and_depends_on_dt() -> None:
    core = _core("ctrnn", seed=7)
    x = _inputs(1, 1, seed=7)[:, 0]
    state = torch.full((1, 7), 5.0)
    with torch.no_grad():
        _, short = core.step(x, state, 0.1)
        _, long = core.step(x, state, 1000.0)
    assert torch.isfinite(long).all() and float(long.abs().max()) <= 1.0 + 1e-6
    assert float((short - long).abs().max()) > 1.0


def test_per_sample_dt_matches_running_each_sample_alone() -> None:
    core = _core("ctrnn", seed=8)
    x = _inputs(2, 5, seed=8)
    dt = torch.tensor([[0.5, 1.0, 2.0, 0.3, 1.0], [1.5, 0.2, 1.0, 4.0, 0.7]])
    y, state = core(x, dt=dt)
    for b in range(2):
        y_b, state_b = core(x[b : b + 1], dt=dt[b : b + 1])
        torch.testing.assert_close(y[b : b + 1], y_b, rtol=0, atol=1e-6)
        torch.testing.assert_close(state[b : b + 1], state_b, rtol=0, atol=1e-6)


def test_feedforward_is_memoryless_with_zero_dummy_state() -> None:
    core = _core("feedforward", seed=9)
    x = _inputs(1, 4, seed=9)
    y, state = core(x, state=torch.ones(1, 1))
    reversed_y, _ = core(x.flip(1))
    torch.testing.assert_close(reversed_y.flip(1), y)
    assert torch.equal(state, torch.zeros(1, 1))


@pytest.mark.parametrize("kind", ["lstm", "gru", "ctrnn"])
def test_recurrent_cores_learn_a_one_step_memory_task(kind: str) -> None:
    """y_t = x_{t-1}: impossible without memory, quickly learned by a recurrent core."""
    torch.manual_seed(10)
    core = BASELINE_CORES[kind](1, 8, 1)
    optimizer = torch.optim.Adam(core.parameters(), lr=0.03)
    generator = torch.Generator().manual_seed(10)
    losses = []
    for _ in range(150):
        x = torch.randn(16, 8, 1, generator=generator)
        y, _ = core(x)
        loss = (y[:, 1:] - x[:, :-1]).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (kind, losses[0], losses[-1])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c(torch.randn(2, 3)), r"\[B,T,F\]"),
        (lambda c: c(torch.randn(2, 3, 4)), "F=5"),
        (lambda c: c(torch.full((1, 2, 5), float("nan"))), "NaN"),
        (lambda c: c(torch.zeros(1, 2, 5, dtype=torch.int64)), "floating"),
        (lambda c: c(torch.randn(1, 2, 5), dt=0.0), "dt"),
        (lambda c: c(torch.randn(1, 2, 5), dt=-1.0), "dt"),
        (lambda c: c(torch.randn(1, 2, 5), dt=torch.ones(3)), "dt must be"),
        (lambda c: c(torch.randn(1, 2, 5), dt=torch.tensor([[1.0, float("inf")]])), "dt"),
        (lambda c: c(torch.randn(1, 2, 5), state=torch.zeros(1, 3)), "state"),
        (lambda c: c.step(torch.randn(2, 5), torch.zeros(1, c.state_size)), "state"),
        (lambda c: c.initial_state(0), "batch_size"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_raises_value_error(kind: str, call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(_core(kind))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"type": "transformer", "input_size": 1, "units": 1, "output_size": 1}, "unknown baseline"),
        ({"type": "lstm", "input_size": 1, "units": 1}, "missing"),
        ({"type": "gru", "input_size": 1, "units": 1, "output_size": 1, "layers": 2}, "unknown key"),
        ({"type": "ctrnn", "input_size": 1, "units": 0, "output_size": 1}, "units"),
        ({"type": "ctrnn", "input_size": 1, "units": 2, "output_size": 1, "unfolds": 0}, "unfolds"),
        ({"type": "lstm", "input_size": 1.5, "units": 2, "output_size": 1}, "input_size"),
    ],
)
def test_bad_config_raises_value_error(config: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_baseline(config)
