"""CfC cores (dense and wired) honour the core contract, the wiring, and the closed-form maths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lnn_control.nn.cfc import CfC
from lnn_control.nn.cfc_cells import WiredCfCCell
from lnn_control.nn.cfc_kernels import CfCMode, WiredPlan, WiredSequence, closed_form_update
from lnn_control.nn.cfc_stepper import CfCStepper
from lnn_control.nn.cores import build_core
from lnn_control.nn.ltc_kernels import CHUNK_ROWS
from lnn_control.nn.wirings import NCP, FullyConnected, Wiring, ncp19_car

MODES = [mode.value for mode in CfCMode]


def _small_ncp(seed: int = 3, features: int = 6) -> NCP:
    return NCP(5, 4, 2, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=3, motor_fanin=2,
               seed=seed).build(features)


def _cores(mode: str, seed: int = 0) -> dict[str, CfC]:
    torch.manual_seed(seed)
    return {
        "dense": CfC(6, 8, mode, backbone_units=12),
        "dense_no_backbone": CfC(6, 8, mode, backbone_layers=0),
        "dense_deep_proj": CfC(6, 8, mode, backbone_units=10, backbone_layers=2, activation="silu", proj_size=3),
        "wired": CfC(6, _small_ncp(), mode),
        "wired_compat": CfC(6, _small_ncp(), mode, ncps_compat=True),
    }


def _x(batch: int, steps: int, features: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", MODES)
def test_sequence_equals_streaming_steps_with_per_sample_dt(mode: str) -> None:
    x = _x(3, 7)
    dt = torch.rand(3, 7, generator=torch.Generator().manual_seed(2)) * 2 + 0.1
    for name, core in _cores(mode).items():
        y, final = core(x, dt=dt)
        state = core.initial_state(3)
        outputs = []
        for t in range(7):
            y_t, state = core.step(x[:, t], state, dt[:, t])
            outputs.append(y_t)
        assert torch.allclose(torch.stack(outputs, 1), y, atol=1e-6), name
        assert torch.allclose(state, final, atol=1e-6), name
        assert y.shape == (3, 7, core.output_size) and final.shape == (3, core.state_size)


def test_per_sample_dt_equals_running_each_sample_alone() -> None:
    core = _cores("default")["wired"]
    x = _x(4, 5)
    dt = torch.tensor([0.2, 1.0, 3.0, 0.7])
    y, _ = core(x, dt=dt)
    for b in range(4):
        alone, _ = core(x[b: b + 1], dt=float(dt[b]))
        assert torch.allclose(alone[0], y[b], atol=1e-6)
    # dt changes the answer (time is used), and dt=[B] equals dt=[B,T] filled with the same values
    assert not torch.allclose(core(x, dt=1.0)[0], y)
    assert torch.allclose(core(x, dt=dt[:, None].expand(4, 5))[0], y)


def test_closed_form_default_mode_by_hand() -> None:
    torch.manual_seed(0)
    core = CfC(3, 2, "default", backbone_layers=0)
    cell = core.cell
    x, h, t = torch.randn(1, 3), torch.randn(1, 2), 0.6
    u = torch.cat([x, h], 1)
    weight = torch.cat([cell.input_weight, cell.recurrent_weight], 1)
    heads = u @ weight.t() + cell.first_bias
    ff1, ff2, a, b = heads.split(2, dim=1)
    gate = torch.sigmoid(a * t + b)
    expected = torch.tanh(ff1) * (1 - gate) + gate * torch.tanh(ff2)
    y, state = core.step(x, h, t)
    assert torch.allclose(state, expected, atol=1e-6) and torch.allclose(y, expected, atol=1e-6)


def test_pure_mode_by_hand() -> None:
    torch.manual_seed(0)
    core = CfC(3, 2, "pure", backbone_layers=0)
    with torch.no_grad():
        core.cell.w_tau.copy_(torch.tensor([0.5, -1.0]))
        core.cell.amplitude.copy_(torch.tensor([1.5, -0.3]))
    x, h, t = torch.randn(1, 3), torch.randn(1, 2), 2.0
    ff1 = x @ core.cell.input_weight.t() + h @ core.cell.recurrent_weight.t() + core.cell.first_bias
    a = core.cell.amplitude
    expected = -a * torch.exp(-t * (core.cell.w_tau.abs() + ff1.abs())) * ff1 + a
    assert torch.allclose(core.step(x, h, t)[1], expected, atol=1e-6)


def test_wired_core_honours_the_wiring() -> None:
    """A neuron's new state depends exactly on its synapses, its own state and nothing else."""
    wiring = _small_ncp()
    torch.manual_seed(0)
    core = CfC(6, wiring, "default")
    x = torch.randn(1, 6, requires_grad=True)
    h = torch.randn(1, wiring.units, requires_grad=True)
    _, new = core.step(x, h, 1.0)
    adjacency = wiring.adjacency != 0
    layer_of = np.empty(wiring.units, dtype=int)
    for index, group in enumerate(wiring.layers):
        layer_of[group] = index
    for j in range(wiring.units):
        grad_x, grad_h = torch.autograd.grad(new[0, j], (x, h), retain_graph=True)
        # sensory dependence: direct synapses, or through earlier layers within the same step
        reach_x = wiring.sensory_adjacency[:, j] != 0
        reach_h = np.zeros(wiring.units, dtype=bool)
        reach_h[j] = True  # self memory
        reach_h |= adjacency[:, j] & (layer_of >= layer_of[j])  # recurrent synapses (previous state)
        for i in np.flatnonzero(adjacency[:, j] & (layer_of < layer_of[j])):  # feed-forward: i's new state
            reach_x |= _sensory_reach(wiring, i, layer_of)
            reach_h |= _state_reach(wiring, i, layer_of)
        assert np.array_equal(grad_x[0].numpy() != 0, reach_x), j
        assert np.array_equal(grad_h[0].numpy() != 0, reach_h), j
    # the NCP's recurrent command synapses are used: command neurons see other command neurons' states
    command = wiring.layers[1]
    recurrent = [(i, j) for i in command for j in command if i != j and wiring.adjacency[i, j]]
    assert recurrent, "test wiring should have recurrent command synapses"


def _sensory_reach(wiring: Wiring, neuron: int, layer_of: np.ndarray) -> np.ndarray:
    reach = wiring.sensory_adjacency[:, neuron] != 0
    for i in np.flatnonzero((wiring.adjacency[:, neuron] != 0) & (layer_of < layer_of[neuron])):
        reach = reach | _sensory_reach(wiring, i, layer_of)
    return reach


def _state_reach(wiring: Wiring, neuron: int, layer_of: np.ndarray) -> np.ndarray:
    reach = np.zeros(wiring.units, dtype=bool)
    reach[neuron] = True
    reach |= (wiring.adjacency[:, neuron] != 0) & (layer_of >= layer_of[neuron])
    for i in np.flatnonzero((wiring.adjacency[:, neuron] != 0) & (layer_of < layer_of[neuron])):
        reach |= _state_reach(wiring, i, layer_of)
    return reach


def test_polarity_fixes_the_sign_of_state_head_weights() -> None:
    wiring = _small_ncp()
    core = CfC(6, wiring, "default")
    sensory, recurrent, feedforward, _ = core.cell.effective_weights()
    cell: WiredCfCCell = core.cell
    perm = cell.perm.numpy()
    columns = cell.columns.numpy()
    heads = cell.heads_count
    units = wiring.units
    for position, column in enumerate(columns):
        head, target = divmod(int(column), units)
        if head >= 2:  # time gates: free sign
            continue
        polarity_s = wiring.sensory_adjacency[:, target]
        weights_s = sensory[:, position].detach().numpy()
        assert np.all(np.sign(weights_s[polarity_s != 0]) == polarity_s[polarity_s != 0])
        assert np.all(weights_s[polarity_s == 0] == 0)
        neuron_w = (recurrent + feedforward)[:, position].detach().numpy()  # rows: internal order
        polarity_n = wiring.adjacency[perm, target].astype(float)
        polarity_n[perm == target] = 0  # self memory: free sign
        synapse = polarity_n != 0
        assert np.all(np.sign(neuron_w[synapse]) == polarity_n[synapse])
    assert heads == 4


def test_ncps_compat_layer_structure_differs_from_ours() -> None:
    wiring = _small_ncp()
    ours, compat = CfC(6, wiring).cell, CfC(6, wiring, ncps_compat=True).cell
    # ncps: dense intra-layer recurrence and unmasked time gates => strictly more used connections
    assert compat.synapse_count > ours.synapse_count
    assert compat.sensory_mask[2].sum() > ours.sensory_mask[2].sum()  # time gate a reads every feature
    assert float(compat.neuron_sign.abs().sum()) == 0.0  # no polarity


def test_ncp19_car_core_shapes_and_output_is_motor_state() -> None:
    core = CfC(32, ncp19_car())
    y, state = core(torch.randn(2, 4, 32))
    assert core.output_size == 1 and core.state_size == 19
    assert torch.equal(y[:, -1], state[:, :1])


@pytest.mark.parametrize("mode", MODES)
def test_gradients_are_finite_and_reach_every_used_parameter(mode: str) -> None:
    for name, core in _cores(mode).items():
        y, _ = core(_x(2, 5), dt=torch.rand(2, 5) + 0.1)
        y.square().mean().backward()
        for pname, parameter in core.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), (name, pname)
            assert parameter.grad.abs().sum() > 0, (name, pname)


@pytest.mark.parametrize("mode", MODES)
def test_fused_update_gradients_are_exact(mode: str) -> None:
    """The hand-written backward of the fused update agrees with finite differences (float64)."""
    torch.manual_seed(0)
    core = CfC(4, 3, mode, backbone_layers=0).double()
    x, dt = torch.randn(2, 3, 4, dtype=torch.double), torch.rand(2, 3, dtype=torch.double) + 0.2
    assert torch.autograd.gradcheck(lambda inp: core(inp, dt=dt)[0], (x.requires_grad_(),))
    if mode == "pure":
        heads = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
        w_tau = torch.tensor([0.3, -0.2, 1.0], dtype=torch.double, requires_grad=True)
        amplitude = torch.tensor([1.0, -0.5, 2.0], dtype=torch.double, requires_grad=True)
        elapsed = dt[:, :1]
        assert torch.autograd.gradcheck(
            lambda h, w, a: closed_form_update(CfCMode.PURE, h, elapsed, 3, w, a), (heads, w_tau, amplitude)
        )


def test_determinism_same_seed_same_numbers() -> None:
    a, b = _cores("default", seed=5), _cores("default", seed=5)
    x = _x(2, 4)
    for name in a:
        assert torch.equal(a[name](x)[0], b[name](x)[0]), name
    assert not torch.equal(_cores("default", seed=6)["wired"](x)[0], a["wired"](x)[0])


@pytest.mark.parametrize("name", ["dense", "dense_deep_proj", "wired", "wired_compat"])
def test_config_round_trip_through_build_core(name: str) -> None:
    core = _cores("no_gate")[name]
    config = json.loads(json.dumps(core.config()))
    rebuilt = build_core(config)
    assert isinstance(rebuilt, CfC) and rebuilt.config() == config
    rebuilt.load_state_dict(core.state_dict())
    x = _x(2, 3)
    assert torch.equal(rebuilt(x)[0], core(x)[0])


def test_wired_config_stores_the_adjacency() -> None:
    wiring = _small_ncp()
    config = CfC(6, wiring).config()
    assert np.array_equal(np.asarray(config["wiring"]["adjacency"]), wiring.adjacency)
    assert np.array_equal(np.asarray(config["wiring"]["sensory_adjacency"]), wiring.sensory_adjacency)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c(torch.randn(2, 3, 5)), "shape"),
        (lambda c: c(torch.randn(2, 6)), "shape"),
        (lambda c: c(torch.full((1, 2, 6), float("nan"))), "NaN"),
        (lambda c: c(torch.randn(1, 2, 6), dt=0.0), "dt"),
        (lambda c: c(torch.randn(1, 2, 6), dt=float("nan")), "dt"),
        (lambda c: c(torch.randn(2, 2, 6), dt=torch.ones(3)), "dt"),
        (lambda c: c(torch.randn(2, 2, 6), dt=-torch.ones(2, 2)), "dt"),
        (lambda c: c(torch.randn(2, 2, 6), torch.zeros(2, 3)), "state"),
        (lambda c: c.step(torch.randn(2, 6), torch.full((2, 11), float("inf"))), "state"),
        (lambda c: c.step(torch.randn(2, 2, 6), torch.zeros(2, 11)), "shape"),
        (lambda c: c(torch.ones(1, 2, 6, dtype=torch.long)), "floating"),
        (lambda c: c.initial_state(0), "batch_size"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, message: str) -> None:  # noqa: ANN001
    core = CfC(6, _small_ncp())
    with pytest.raises(ValueError, match=message):
        call(core)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 0}, "units"),
        ({"units": 4, "mode": "fast"}, "mode"),
        ({"units": 4, "activation": "swish"}, "activation"),
        ({"units": 4, "backbone_dropout": 1.5}, "backbone_dropout"),
        ({"units": 4, "backbone_layers": -1}, "backbone_layers"),
        ({"units": 4, "proj_size": 0}, "proj_size"),
        ({"units": FullyConnected(4).build(5)}, "input_size"),
        ({"units": _small_ncp(), "ncps_compat": "yes"}, "ncps_compat"),
        ({"units": _small_ncp(), "backbone_units": 32}, "dense only"),
        ({"units": 4, "self_memory": False}, "wired only"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    units = kwargs.pop("units")
    with pytest.raises(ValueError, match=message):
        CfC(6, units, **kwargs)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "cfc", "input_size": 3}, "missing"),
        ({"type": "cfc", "input_size": 3, "units": 4, "depth": 2}, "unknown"),
        ({"type": "cfc", "input_size": 3, "wiring": {"units": 3}}, "wiring"),
        ({"type": "cfc", "input_size": 3, "units": 4, "ncps_compat": True}, "unknown"),
    ],
)
def test_bad_configs(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_core(config)


@pytest.mark.parametrize("name", ["dense", "dense_no_backbone", "dense_deep_proj", "wired", "wired_compat"])
@pytest.mark.parametrize("mode", MODES)
def test_compiled_stepper_agrees_with_torch(name: str, mode: str) -> None:
    core = _cores(mode)[name]
    stepper = CfCStepper.from_module(core)
    x = _x(1, 12)
    dt = torch.rand(1, 12, generator=torch.Generator().manual_seed(4)) * 2 + 0.05
    y, final = core(x, dt=dt)
    outputs = np.stack([stepper.step(x[0, t].numpy(), float(dt[0, t])) for t in range(12)])
    assert outputs.dtype == np.float32 and outputs.shape == (12, core.output_size)
    assert np.abs(outputs - y[0].detach().numpy()).max() <= 1e-5
    assert np.abs(stepper.state - final[0].detach().numpy()).max() <= 1e-5
    stepper.reset()
    assert not stepper.state.any()
    stepper.state = final[0].detach().numpy()
    y_next, _ = core.step(x[:, 0], final, 0.5)
    assert np.abs(stepper.step(x[0, 0].numpy(), 0.5) - y_next[0].detach().numpy()).max() <= 1e-5


def test_compiled_stepper_rejects_bad_inputs_and_keeps_its_state() -> None:
    stepper = CfCStepper.from_module(CfC(6, _small_ncp()))
    stepper.step(np.ones(6), 1.0)
    before = stepper.state.copy()
    for x, dt, message in [(np.ones(5), 1.0, "shape"), (np.full(6, np.nan), 1.0, "NaN"), (np.ones(6), 0.0, "dt"),
                           (np.ones(6), float("nan"), "dt"), (np.ones(6), "1", "dt")]:
        with pytest.raises(ValueError, match=message):
            stepper.step(x, dt)
    assert np.array_equal(stepper.state, before)
    with pytest.raises(ValueError, match="state"):
        stepper.state = np.zeros(3)
    with pytest.raises(ValueError, match="CfC"):
        CfCStepper.from_module(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("compat", [False, True])
def test_wired_hand_written_bptt_equals_autograd_of_the_step_loop(mode: str, compat: bool) -> None:
    """The fused sequence node (forward and every gradient) equals autograd through per-step updates."""
    torch.manual_seed(0)
    core = CfC(6, _small_ncp(), mode, ncps_compat=compat).double()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 6, dtype=torch.double, generator=generator, requires_grad=True)
    dt = torch.rand(3, 5, dtype=torch.double, generator=generator) + 0.2
    h0 = torch.randn(3, 11, dtype=torch.double, generator=generator, requires_grad=True)
    y, final = core(x, h0, dt=dt)
    fused = torch.autograd.grad(y.square().sum() + final.sin().sum(), [x, h0, *core.parameters()])
    cell = core.cell
    cell.prepare()
    projected, h, history = cell.project_inputs(x), cell.to_internal(h0), []
    for t in range(5):
        h = cell.update(projected[:, t], h, dt[:, t: t + 1])
        history.append(h)
    states = cell.from_internal(torch.stack(history, 1))
    reference = torch.autograd.grad(states[..., :2].square().sum() + states[:, -1].sin().sum(),
                                    [x, h0, *core.parameters()])
    assert torch.allclose(y, states[..., :2], atol=1e-12)
    for got, expected in zip(fused, reference):
        assert torch.allclose(got, expected, atol=1e-10)


def _wired_sequence_inputs(mode: str, wiring: Wiring, batch: int, steps: int,
                           dtype: torch.dtype) -> tuple[WiredPlan, torch.Tensor, list[torch.Tensor]]:
    """``(plan, elapsed[B,T,1], leaves)`` for :class:`WiredSequence` from a fresh wired cell: leaves =
    projected, h0, recurrent, (pure mode) w_tau and amplitude, then the feed-forward blocks."""
    torch.manual_seed(0)
    cell = CfC(int(wiring.sensory_adjacency.shape[0]), wiring, mode).to(dtype).cell
    with torch.no_grad():
        cell.prepare()
        _, recurrent, _, blocks, extras = cell._prepared_weights()
    plan = WiredPlan(cell.mode, cell.layer_bounds, cell._column_sizes, cell.feedforward_sources)
    generator = torch.Generator().manual_seed(1)
    projected = torch.randn(batch, steps, recurrent.shape[1], dtype=dtype, generator=generator)
    h0 = torch.randn(batch, cell.units, dtype=dtype, generator=generator)
    elapsed = torch.rand(batch, steps, 1, dtype=dtype, generator=generator) * 2 + 0.1
    flat = [block for layer_blocks in blocks for block in layer_blocks]
    leaves = [t.detach().clone().requires_grad_() for t in (projected, h0, recurrent, *extras, *flat)]
    return plan, elapsed, leaves


def _wired_sequence(plan: WiredPlan, elapsed: torch.Tensor, *leaves: torch.Tensor) -> torch.Tensor:
    projected, h0, recurrent, *rest = leaves
    w_tau, amplitude, blocks = (rest[0], rest[1], rest[2:]) if plan.mode is CfCMode.PURE else (None, None, rest)
    return WiredSequence.apply(plan, projected, h0, elapsed, recurrent, w_tau, amplitude, *blocks)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_wired_sequence_passes_gradcheck(mode: str) -> None:
    """The compiled kernels' gradients w.r.t. projected, h0, recurrent, every block and (pure) w_tau and
    amplitude agree with finite differences (float64)."""
    plan, elapsed, leaves = _wired_sequence_inputs(mode, _small_ncp(), batch=3, steps=4, dtype=torch.double)
    assert WiredSequence.runs_compiled(leaves[0])
    assert torch.autograd.gradcheck(lambda *inputs: _wired_sequence(plan, elapsed, *inputs), leaves)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_wired_sequence_equals_the_torch_reference(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ncp19_car over several batch chunks on two threads: the compiled kernels give the torch step loop's
    states and gradients, and leave torch's thread count alone."""
    batch = CHUNK_ROWS + 6
    plan, elapsed, leaves = _wired_sequence_inputs(mode, ncp19_car(), batch=batch, steps=6, dtype=torch.double)
    weights = torch.randn(batch, 6, 19, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        compiled = _wired_sequence(plan, elapsed, *leaves)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        compiled = _wired_sequence(plan, elapsed, *leaves)
        compiled_grads = torch.autograd.grad((compiled * weights).sum(), leaves)
    finally:
        torch.set_num_threads(before)
    with monkeypatch.context() as patch:
        patch.setattr(WiredSequence, "runs_compiled", staticmethod(lambda projected: False))
        reference = _wired_sequence(plan, elapsed, *leaves)
        reference_grads = torch.autograd.grad((reference * weights).sum(), leaves)
    assert torch.allclose(compiled, reference, atol=1e-12)
    for got, expected in zip(compiled_grads, reference_grads):
        assert torch.allclose(got, expected, atol=1e-10)
    single = _wired_sequence(plan, elapsed.float(), *(leaf.detach().float() for leaf in leaves))
    assert single.dtype == torch.float32 and torch.allclose(single.double(), reference, atol=1e-5)


def test_cells_step_alone_and_inputs_follow_the_weight_dtype() -> None:
    for core in (_cores("default")["dense"], _cores("default")["wired"]):
        x, state = _x(2, 1)[:, 0], torch.randn(2, core.state_size)
        _, expected = core.step(x, state, 0.7)
        assert torch.allclose(core.cell(x, state, 0.7), expected, atol=1e-6)
        y64, state64 = core.step(x.double(), state.double(), 0.7)
        assert state64.dtype == torch.float32 and torch.allclose(state64, expected)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "pure"])
def test_policy_with_wired_cfc_exports_to_onnx(tmp_path, mode: str) -> None:  # noqa: ANN001
    """The fused autograd nodes trace into a plain ONNX graph; ONNX Runtime agrees with torch."""
    from lnn_control.export.onnx import export_onnx, verify_onnx
    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.policy import Policy, PolicyConfig
    from lnn_control.spec import ActionSpec, ObservationSpec

    torch.manual_seed(0)
    core = CfC(9, NCP(4, 3, 2, 2, 2, 2, 2).build(9), mode)
    perception = PerceptionConfig(image_height=32, image_width=48, conv_channels=(8, 8, 8), kernel_sizes=(5, 3, 3),
                                  strides=(2, 2, 2), features=8)
    config = PolicyConfig(
        perception=perception, core=core.config(),
        observation_spec=ObservationSpec((32, 48, 3), ("speed",), ("m/s",)),
        action_spec=ActionSpec(("vx", "yaw_rate"), (-2.0, -1.0), (2.0, 1.0), ("m/s", "rad/s")),
        control_rate_hz=25.0, extras_scale=(0.5,),
    )
    policy = Policy(config, core=core).eval()
    path = export_onnx(policy, tmp_path / "policy.onnx")
    assert verify_onnx(policy, path) <= 1e-5
