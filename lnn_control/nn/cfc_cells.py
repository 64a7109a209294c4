"""The CfC cells behind :class:`lnn_control.nn.cfc.CfC`: one update step each, dense
(:class:`CfCCell`) and wired (:class:`WiredCfCCell`). The maths, shapes and speed notes are in
:mod:`lnn_control.nn.cfc`; the autograd kernels both cells call are in
:mod:`lnn_control.nn.cfc_kernels`.

Deliberate differences from ``ncps.torch.WiredCfCCell`` (ours, the default, ``ncps_compat=False``):

1. **Polarity is honoured.** A synapse's polarity fixes the sign of its weight in the two state heads
   (``ff1``, ``ff2``): the effective weight is ``polarity * |w|``. The time-gate heads (``a``, ``b``) see
   the same synapses with free-sign weights (a time constant has no excitatory/inhibitory meaning).
   ``ncps`` ignores polarity (it only uses ``|adjacency|`` as a mask).
2. **Only wired synapses exist.** A neuron sees exactly the synapses of the wiring (sensory and
   neuron-to-neuron, *including recurrent command->command synapses*, which use the previous state),
   plus its own previous state (``self_memory=True``: the closed-form solution's dependence on its own
   initial state, the counterpart of an LTC membrane; the self term has a free sign). ``ncps`` instead
   connects every neuron to every neuron of its own layer (dense intra-layer recurrence) and feeds a
   layer only from the layer just before it, so recurrent command synapses in the adjacency have no
   effect beyond that dense block.
3. **Time gates are masked** like the state heads. ``ncps`` masks only ``ff1``/``ff2``, so every neuron's
   time gate reads all inputs of its layer (every sensory feature for the inter layer).
4. **State in neuron order.** ``ncps`` keeps the wired state in layer order (inter, command, motor);
   we keep neuron-index order so ``state[:, :motor]`` is the output (use
   :func:`lnn_control.nn.interop_cfc.state_from_ncps` / ``state_to_ncps`` to convert).
5. **dt per sample**: ``ncps`` squeezes ``timespans[:, t]`` and breaks for batch > 1; ours broadcasts ``[B]``.
6. **pure mode init**: ``w_tau = 0.1`` (not 0, where ``|w_tau|`` has no gradient) and ``A = 1`` (``ncps``
   declares 0 and 1 but then overwrites both with a Xavier draw, so ``A`` may start negative).

``ncps_compat=True`` reproduces ``ncps``' wired behaviour exactly (dense intra-layer recurrence, previous
layer only, no polarity, unmasked time gates); :func:`lnn_control.nn.interop_cfc.cfc_from_ncps` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from lnn_control.nn.cfc_kernels import (
    CfCMode,
    WiredPlan,
    WiredSequence,
    closed_form_update,
    wired_run,
)
from lnn_control.nn.contract import expand_dt
from lnn_control.nn.wirings import Wiring

_W_TAU_INIT = 0.1  # not 0: d|w|/dw is 0 there, so w_tau would never train


class BackboneActivation(str, Enum):
    """Activation of the dense backbone layers."""

    LECUN_TANH = "lecun_tanh"
    SILU = "silu"
    RELU = "relu"
    TANH = "tanh"
    GELU = "gelu"


_E = TypeVar("_E", bound=Enum)


def _enum(cls: type[_E], name: str, value: Any) -> _E:
    try:
        return cls(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = [member.value for member in cls]
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def lecun_tanh(x: torch.Tensor) -> torch.Tensor:
    """``1.7159 * tanh(0.666 * x)`` (the ``ncps`` constants)."""
    return 1.7159 * torch.tanh(0.666 * x)


_ACTIVATIONS: dict[BackboneActivation, Callable[[torch.Tensor], torch.Tensor]] = {
    BackboneActivation.LECUN_TANH: lecun_tanh,
    BackboneActivation.SILU: functional.silu,
    BackboneActivation.RELU: torch.relu,
    BackboneActivation.TANH: torch.tanh,
    BackboneActivation.GELU: functional.gelu,
}


class CfCCell(nn.Module):
    """Dense CfC cell: backbone MLP on ``concat(x, h)`` then fused heads ``[ff1; ff2; a; b]`` (or ``ff1`` for pure).

    ``forward(x[B,F], h[B,N], elapsed[B,1] or float) -> h'[B,N]``; the core :class:`CfC` uses the split
    :meth:`project_inputs` / :meth:`update` path so the input half of the first layer runs once for all steps.
    """

    def __init__(self, input_size: int, units: int, mode: CfCMode | str = CfCMode.DEFAULT,
                 backbone_units: int = 128, backbone_layers: int = 1, backbone_dropout: float = 0.0,
                 activation: BackboneActivation | str = BackboneActivation.LECUN_TANH) -> None:
        super().__init__()
        self.input_size = _check_int("input_size", input_size, 1)
        self.units = _check_int("units", units, 1)
        self.mode = _enum(CfCMode, "mode", mode)
        self.backbone_layers = _check_int("backbone_layers", backbone_layers, 0)
        self.backbone_units = _check_int("backbone_units", backbone_units, 1)
        if isinstance(backbone_dropout, bool) or not isinstance(backbone_dropout, (int, float)) or not (
            0.0 <= backbone_dropout < 1.0
        ):
            raise ValueError(f"backbone_dropout must be a number in [0, 1), got {backbone_dropout!r}")
        self.backbone_dropout = float(backbone_dropout)
        self.activation = _enum(BackboneActivation, "activation", activation)
        self.heads_count = 1 if self.mode is CfCMode.PURE else 4
        first_out = self.backbone_units if self.backbone_layers else self.heads_count * self.units
        # First layer split into its input and recurrent halves (concat(x, h) @ W == x @ W_x + h @ W_h).
        self.input_weight = nn.Parameter(torch.empty(first_out, self.input_size))
        self.recurrent_weight = nn.Parameter(torch.empty(first_out, self.units))
        self.first_bias = nn.Parameter(torch.empty(first_out))
        self.hidden_layers = nn.ModuleList(
            nn.Linear(self.backbone_units, self.backbone_units) for _ in range(max(self.backbone_layers - 1, 0))
        )
        self.dropout = nn.Dropout(self.backbone_dropout)
        self.heads = (
            nn.Linear(self.backbone_units, self.heads_count * self.units) if self.backbone_layers else None
        )
        if self.mode is CfCMode.PURE:
            self.w_tau = nn.Parameter(torch.full((self.units,), _W_TAU_INIT))
            self.amplitude = nn.Parameter(torch.ones(self.units))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights per head (fan sizes as one ``Linear(F+N, out)``), uniform biases."""
        fan_in = self.input_size + self.units
        out = self.backbone_units if self.backbone_layers else self.units
        bound = math.sqrt(6.0 / (fan_in + out))
        with torch.no_grad():
            self.input_weight.uniform_(-bound, bound)
            self.recurrent_weight.uniform_(-bound, bound)
            self.first_bias.uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
            for layer in self.hidden_linears:
                nn.init.xavier_uniform_(layer.weight)
            if self.heads is not None:
                head_bound = math.sqrt(6.0 / (self.backbone_units + self.units))
                self.heads.weight.uniform_(-head_bound, head_bound)

    @property
    def state_size(self) -> int:
        return self.units

    @property
    def hidden_linears(self) -> list[nn.Linear]:
        """``hidden_layers`` typed as what they are: the backbone's ``nn.Linear`` layers after the first."""
        return [layer for layer in self.hidden_layers if isinstance(layer, nn.Linear)]

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Input half of the first layer for every step at once: ``[..., F] -> [..., first_out]``."""
        return functional.linear(x, self.input_weight, self.first_bias)

    def update(self, projected: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """One step from the projected input ``[B, first_out]``, state ``[B,N]`` and ``elapsed`` ``[B,1]``."""
        pre = torch.addmm(projected, h, self.recurrent_weight.t())
        if self.heads is not None:  # a backbone (backbone_layers > 0), which ends in the heads
            act = _ACTIVATIONS[self.activation]
            z = act(pre)
            for layer in self.hidden_layers:
                z = act(layer(z))
                if self.backbone_dropout > 0.0:
                    z = self.dropout(z)
            pre = self.heads(z)
        return closed_form_update(self.mode, pre, elapsed, self.units,
                                  getattr(self, "w_tau", None), getattr(self, "amplitude", None))

    def forward(self, x: torch.Tensor, h: torch.Tensor, elapsed: float | torch.Tensor = 1.0) -> torch.Tensor:
        elapsed = _elapsed_column(elapsed, x.shape[0], x.device)
        return self.update(self.project_inputs(x), h, elapsed)

    def run_sequence(self, projected: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """All steps: projected ``[B,T,*]``, ``h`` ``[B,N]``, ``elapsed`` ``[B,T,1]`` -> states ``[B,T,N]``."""
        # unbind (not projected[:, t]): its backward stacks once instead of a full-size zero tensor per step
        history = []
        for projected_t, elapsed_t in zip(projected.unbind(1), elapsed.unbind(1)):
            h = self.update(projected_t, h, elapsed_t)
            history.append(h)
        return torch.stack(history, dim=1)

    def to_internal(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def from_internal(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def prepare(self) -> None:
        """Dense cells need no per-forward preparation (kept for symmetry with :class:`WiredCfCCell`)."""


def _elapsed_column(elapsed: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    return expand_dt(elapsed, batch, 1, device=device)


# WiredCfCCell.prepare's effective matrices: sensory [F,G], recurrent [N,G], bias [G], the
# feed-forward blocks per target layer, and (pure mode) w_tau and A in internal order
_Prepared = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[list[torch.Tensor]], list[torch.Tensor]]


class WiredCfCCell(nn.Module):
    """CfC neurons connected by a :class:`~lnn_control.nn.wirings.Wiring` (the update rule is in
    :mod:`lnn_control.nn.cfc`, the differences from ``ncps`` in this module's docstring).

    Parameters in neuron order: ``sensory_weight [H,F,N]``, ``neuron_weight [H,N,N]`` (``[h, i, j]`` =
    synapse ``i -> j`` in head ``h``), ``bias [H,N]``; heads ``H`` = ``ff1, ff2, a, b`` (pure: ``ff1``).
    Masks and polarity signs are buffers derived from the wiring; :meth:`prepare` turns them into
    layer-blocked effective matrices once per ``forward``.
    """

    # buffers derived from the wiring (registered in __init__; declared here for their type)
    sensory_mask: torch.Tensor
    recurrent_mask: torch.Tensor
    feedforward_mask: torch.Tensor
    sensory_sign: torch.Tensor
    neuron_sign: torch.Tensor
    perm: torch.Tensor
    inverse_perm: torch.Tensor
    columns: torch.Tensor

    def __init__(self, wiring: Wiring, mode: CfCMode | str = CfCMode.DEFAULT, ncps_compat: bool = False,
                 self_memory: bool = True) -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise ValueError(f"wiring must be a lnn_control.nn.wirings.Wiring, got {type(wiring).__name__}")
        if wiring.sensory_adjacency is None:
            raise ValueError("wiring is not built: call wiring.build(input_size) first")
        self.wiring = wiring
        self.mode = _enum(CfCMode, "mode", mode)
        self.ncps_compat = _check_bool("ncps_compat", ncps_compat)
        self.self_memory = _check_bool("self_memory", self_memory)
        self.input_size = int(wiring.sensory_adjacency.shape[0])
        self.units = wiring.units
        self.heads_count = 1 if self.mode is CfCMode.PURE else 4
        heads, n, f = self.heads_count, self.units, self.input_size
        sensory_mask, recurrent_mask, feedforward_mask, sensory_sign, neuron_sign = self._masks()
        self.register_buffer("sensory_mask", torch.from_numpy(sensory_mask))
        self.register_buffer("recurrent_mask", torch.from_numpy(recurrent_mask))
        self.register_buffer("feedforward_mask", torch.from_numpy(feedforward_mask))
        self.register_buffer("sensory_sign", torch.from_numpy(sensory_sign))
        self.register_buffer("neuron_sign", torch.from_numpy(neuron_sign))
        self.sensory_weight = nn.Parameter(torch.empty(heads, f, n))
        self.neuron_weight = nn.Parameter(torch.empty(heads, n, n))
        self.bias = nn.Parameter(torch.empty(heads, n))
        if self.mode is CfCMode.PURE:
            self.w_tau = nn.Parameter(torch.full((n,), _W_TAU_INIT))
            self.amplitude = nn.Parameter(torch.ones(n))
        # Internal (layer-blocked) order: neurons of layer 0, then layer 1, ...
        order = np.concatenate([np.asarray(group, dtype=np.int64) for group in wiring.layers])
        self.register_buffer("perm", torch.from_numpy(order))
        self.register_buffer("inverse_perm", torch.from_numpy(np.argsort(order)))
        sizes = [len(group) for group in wiring.layers]
        self.layer_bounds = [(int(s), int(s + k)) for s, k in zip(np.cumsum([0, *sizes[:-1]]), sizes)]
        self._column_sizes = [self.heads_count * k for k in sizes]
        columns = [h * n + np.asarray(group, dtype=np.int64) for group in wiring.layers for h in range(heads)]
        self.register_buffer("columns", torch.from_numpy(np.concatenate(columns)))
        internal_ff = feedforward_mask.sum(axis=0)[order][:, order]  # [N,N] internal order, any head
        self.feedforward_sources: list[list[int]] = []
        for target, (t0, t1) in enumerate(self.layer_bounds):
            self.feedforward_sources.append([
                source for source, (s0, s1) in enumerate(self.layer_bounds[:target]) if internal_ff[s0:s1, t0:t1].any()
            ])
        self._prepared: _Prepared | None = None
        self._prepared_key: tuple[tuple[int, int, torch.dtype], ...] | None = None
        self.reset_parameters()

    # ------------------------------------------------------------------ structure
    def _masks(self) -> tuple[np.ndarray, ...]:
        """0/1 masks and polarity signs (0 = free sign) in ``[H, source, target]`` neuron order."""
        wiring, heads, n = self.wiring, self.heads_count, self.units
        sensory = np.asarray(wiring.sensory_adjacency, dtype=np.float32)
        adjacency = np.asarray(wiring.adjacency, dtype=np.float32)
        layer_of = np.empty(n, dtype=np.int64)
        for index, group in enumerate(wiring.layers):
            layer_of[np.asarray(group, dtype=np.int64)] = index
        earlier = layer_of[:, None] < layer_of[None, :]  # [i, j]: i's layer precedes j's
        state_heads = 1 if self.mode is CfCMode.PURE else 2
        shape_s, shape_n = (heads, sensory.shape[0], n), (heads, n, n)
        sensory_mask = np.zeros(shape_s, np.float32)
        recurrent_mask = np.zeros(shape_n, np.float32)
        feedforward_mask = np.zeros(shape_n, np.float32)
        sensory_sign = np.zeros(shape_s, np.float32)
        neuron_sign = np.zeros(shape_n, np.float32)
        if self.ncps_compat:
            first = layer_of == 0
            previous = layer_of[:, None] + 1 == layer_of[None, :]
            same = layer_of[:, None] == layer_of[None, :]
            for h in range(heads):
                gated = h < state_heads  # ncps masks ff1/ff2 only
                sensory_mask[h][:, first] = (sensory[:, first] != 0) if gated else 1.0
                feedforward_mask[h] = previous * ((adjacency != 0) if gated else 1.0)
                recurrent_mask[h] = same
            return sensory_mask, recurrent_mask, feedforward_mask, sensory_sign, neuron_sign
        connected = adjacency != 0
        diagonal = np.eye(n, dtype=bool)
        for h in range(heads):
            sensory_mask[h] = sensory != 0
            feedforward_mask[h] = connected & earlier
            recurrent_mask[h] = (connected & ~earlier) | (diagonal if self.self_memory else False)
            if h < state_heads:
                sensory_sign[h] = sensory
                neuron_sign[h] = adjacency
                if self.self_memory:
                    np.fill_diagonal(neuron_sign[h], 0.0)
        return sensory_mask, recurrent_mask, feedforward_mask, sensory_sign, neuron_sign

    @property
    def state_size(self) -> int:
        return self.units

    @property
    def synapse_count(self) -> int:
        """Synapses actually used (any head), sensory plus neuron-to-neuron."""
        used = (self.sensory_mask.sum(0) > 0).sum() + ((self.recurrent_mask + self.feedforward_mask).sum(0) > 0).sum()
        return int(used)

    def reset_parameters(self) -> None:
        """Uniform weights scaled by each neuron's fan-in (``sqrt(3 / fan_in)``); uniform biases."""
        with torch.no_grad():
            fan_in = (self.sensory_mask.sum(1) + self.recurrent_mask.sum(1) + self.feedforward_mask.sum(1)).clamp(min=1)
            bound = torch.sqrt(3.0 / fan_in)  # [H, N]
            self.sensory_weight.uniform_(-1.0, 1.0).mul_(bound[:, None, :])
            self.neuron_weight.uniform_(-1.0, 1.0).mul_(bound[:, None, :])
            self.bias.uniform_(-1.0, 1.0).mul_(bound)

    # ------------------------------------------------------------------ maths
    @staticmethod
    def _signed(weight: torch.Tensor, sign: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(sign != 0, sign * weight.abs(), weight) * mask

    def _blocked(self, matrix: torch.Tensor, permute_rows: bool) -> torch.Tensor:
        """``[H, rows, N]`` -> ``[rows, H*N]`` with columns layer-blocked (and rows internal if neurons)."""
        heads, rows, n = matrix.shape
        flat = matrix.permute(1, 0, 2).reshape(rows, heads * n).index_select(1, self.columns)
        return flat.index_select(0, self.perm) if permute_rows else flat

    def effective_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sensory [F,G], recurrent [N,G], feedforward [N,G], bias [G])``, layer-blocked, masked, signed."""
        neuron = torch.where(self.neuron_sign != 0, self.neuron_sign * self.neuron_weight.abs(), self.neuron_weight)
        sensory = self._signed(self.sensory_weight, self.sensory_sign, self.sensory_mask)
        return (
            self._blocked(sensory, permute_rows=False),
            self._blocked(neuron * self.recurrent_mask, permute_rows=True),
            self._blocked(neuron * self.feedforward_mask, permute_rows=True),
            self.bias.reshape(-1).index_select(0, self.columns),
        )

    def prepare(self) -> None:
        """Compute the effective matrices once per forward (reused across no-grad calls while weights are unchanged)."""
        if torch.is_grad_enabled():
            self._prepared_key = None
        else:
            key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters())
            if key == self._prepared_key and self._prepared is not None:
                return
            self._prepared_key = key
        sensory, recurrent, feedforward, bias = self.effective_weights()
        blocks = []
        heads = self.heads_count
        for target, (t0, t1) in enumerate(self.layer_bounds):
            cols = slice(heads * t0, heads * t1)
            blocks.append([feedforward[s0:s1, cols] for s0, s1 in
                           (self.layer_bounds[source] for source in self.feedforward_sources[target])])
        extras: list[torch.Tensor] = []
        if self.mode is CfCMode.PURE:
            extras = [self.w_tau.index_select(0, self.perm), self.amplitude.index_select(0, self.perm)]
        self._prepared = (sensory, recurrent, bias, blocks, extras)

    def _prepared_weights(self) -> _Prepared:
        if self._prepared is None:
            raise RuntimeError("WiredCfCCell: call prepare() first (CfC.forward and step do)")
        return self._prepared

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Sensory part of every head for all steps at once: ``[..., F] -> [..., G]``."""
        sensory, _, bias, _, _ = self._prepared_weights()
        return functional.linear(x, sensory.t(), bias)

    def update(self, projected: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """One step in internal (layer) order: projected ``[B,G]``, ``h`` ``[B,N]``, ``elapsed`` ``[B,1]``."""
        _, recurrent, _, blocks, extras = self._prepared_weights()
        pre = torch.addmm(projected, h, recurrent)
        # one split (its backward is one cat) rather than per-layer slices (a full-size zero tensor each)
        per_layer = pre.split(self._column_sizes, dim=1) if len(self._column_sizes) > 1 else (pre,)
        new_layers: list[torch.Tensor] = []
        for target, (t0, t1) in enumerate(self.layer_bounds):
            layer_pre = per_layer[target]
            for source, block in zip(self.feedforward_sources[target], blocks[target]):
                layer_pre = torch.addmm(layer_pre, new_layers[source], block)
            if extras:
                new_layers.append(closed_form_update(self.mode, layer_pre, elapsed, t1 - t0,
                                                     extras[0][t0:t1], extras[1][t0:t1]))
            else:
                new_layers.append(closed_form_update(self.mode, layer_pre, elapsed, t1 - t0))
        return new_layers[0] if len(new_layers) == 1 else torch.cat(new_layers, dim=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor, elapsed: float | torch.Tensor = 1.0) -> torch.Tensor:
        """One step in neuron order: ``x[B,F]``, ``h[B,N]`` -> ``h'[B,N]``."""
        self.prepare()
        elapsed = _elapsed_column(elapsed, x.shape[0], x.device)
        return self.from_internal(self.update(self.project_inputs(x), self.to_internal(h), elapsed))

    def run_sequence(self, projected: torch.Tensor, h: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """All steps (internal order): projected ``[B,T,G]``, ``h`` ``[B,N]``, ``elapsed`` ``[B,T,1]`` -> ``[B,T,N]``.

        Same numbers as looping :meth:`update`; with gradients it runs as one node with hand-written BPTT,
        and on CPU (with or without gradients) as compiled kernels.
        """
        _, recurrent, _, blocks, extras = self._prepared_weights()
        w_tau, amplitude = (extras[0], extras[1]) if extras else (None, None)
        plan = WiredPlan(self.mode, self.layer_bounds, self._column_sizes, self.feedforward_sources)
        flat = [block for layer_blocks in blocks for block in layer_blocks]
        if torch.is_grad_enabled() or WiredSequence.runs_compiled(projected):
            return WiredSequence.apply(plan, projected, h, elapsed, recurrent, w_tau, amplitude, *flat)
        return wired_run(plan, projected, h, elapsed, recurrent, w_tau, amplitude, blocks, None)

    def to_internal(self, state: torch.Tensor) -> torch.Tensor:
        return state.index_select(1, self.perm)

    def from_internal(self, h: torch.Tensor) -> torch.Tensor:
        return h.index_select(h.dim() - 1, self.inverse_perm)
