"""Closed-form continuous-time (CfC) cores, dense and wired (Hasani et al. 2022, "Closed-form
continuous-time neural networks"; the same parametrisation as ``ncps.torch.CfC``).

One update of a CfC neuron from the inputs ``u`` it sees (input features and neuron states) over an
elapsed time ``t`` (nominal control steps, 1.0 = one step, the ``ncps`` convention)::

    ff1, ff2, a, b = heads(u)                        # four linear heads (after the backbone, if any)
    default:  h' = tanh(ff1) * (1 - s) + s * tanh(ff2),   s = sigmoid(a * t + b)
    no_gate:  h' = tanh(ff1) + s * tanh(ff2)
    pure:     h' = A - A * exp(-t * (|w_tau| + |ff1|)) * ff1   (one head, per-neuron A and w_tau)

Shapes: ``forward(x[B,T,F], state[B,S] | None, dt) -> (y[B,T,O], state[B,S])`` with ``dt`` a float, ``[B]``
or ``[B,T]`` (elapsed time per sample and step; per-sample ``dt`` is correct for any batch size);
``step(x[B,F], state[B,S], dt) -> (y[B,O], state[B,S])`` runs the very same code path with ``T = 1``.

Dense CfC (``CfC(input_size, units=64)``): a backbone MLP on ``concat(x, h)`` (``backbone_layers`` layers of
``backbone_units``, LeCun tanh by default) feeds the heads; output = the whole state (or a linear
projection of it with ``proj_size``). Speed: the backbone's input half ``x @ W_x`` is computed for all
``T`` steps in one matmul before the time loop, and the four heads are one fused matmul.

Wired CfC (``CfC(input_size, wiring)``): one CfC neuron per wiring neuron, updated layer by layer in the
wiring's signal-flow order (NCP: inter -> command -> motor); within one step a layer sees the *new* states
of earlier layers and the *previous* states of its own and later layers. State layout: neuron index
order (motor ``0..motor-1`` first, as in the wiring); output = ``state[:, :motor]`` (or its projection).
Speed: masks, polarity and the layer permutation are folded into layer-blocked effective matrices once per
``forward`` (cached across no-grad calls); the sensory projection runs for all ``T`` steps in one matmul;
with gradients the whole recurrence is one autograd node with a hand-written BPTT (tested equal to autograd
through the step loop), its weight gradients one matmul over all ``B*T`` rows. For batch-1 streaming use
the compiled :class:`lnn_control.nn.cfc_stepper.CfCStepper`; the autograd kernels are in
:mod:`lnn_control.nn.cfc_kernels`.

The two cells (one update step each, dense and wired) and the deliberate differences of the wired
cell from ``ncps.torch.WiredCfCCell`` are in :mod:`lnn_control.nn.cfc_cells`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lnn_control.nn.cfc_cells import (
    BackboneActivation,
    CfCCell,
    WiredCfCCell,
    _check_int,
    _enum,
)
from lnn_control.nn.cfc_kernels import CfCMode
from lnn_control.nn.contract import (
    check_batch_size,
    check_sequence,
    check_state,
    check_step_input,
    expand_dt,
)
from lnn_control.nn.wirings import Wiring


class CfC(nn.Module):
    """CfC recurrent core (the project's core contract); dense when ``units`` is an int, wired for a Wiring.

    ``CfC(32, 64)``: dense, 64 units, output = state. ``CfC(32, ncp19_car())``: wired, output = motor neurons.
    ``proj_size``: optional linear readout of the output. See the module docstring for the maths and
    :mod:`lnn_control.nn.cfc_cells` for the differences from ``ncps``.
    """

    kind = "cfc"

    def __init__(self, input_size: int, units: int | Wiring, mode: CfCMode | str = CfCMode.DEFAULT, *,
                 backbone_units: int | None = None, backbone_layers: int | None = None,
                 backbone_dropout: float | None = None, activation: BackboneActivation | str | None = None,
                 proj_size: int | None = None, ncps_compat: bool | None = None, self_memory: bool | None = None) -> None:
        """Dense options (``backbone_*``, ``activation``; defaults 128, 1, 0.0, lecun_tanh) and wired options
        (``ncps_compat``, ``self_memory``; defaults False, True) are refused for the other kind of core."""
        super().__init__()
        self.input_size = _check_int("input_size", input_size, 1)
        self.mode = _enum(CfCMode, "mode", mode)
        self.cell: CfCCell | WiredCfCCell
        dense_options = {"backbone_units": backbone_units, "backbone_layers": backbone_layers,
                         "backbone_dropout": backbone_dropout, "activation": activation}
        wired_options = {"ncps_compat": ncps_compat, "self_memory": self_memory}
        misplaced = [name for name, value in (wired_options if not isinstance(units, Wiring) else dense_options).items()
                     if value is not None]
        if misplaced:
            kind = "a dense" if not isinstance(units, Wiring) else "a wired"
            raise ValueError(f"{misplaced} do not apply to {kind} CfC; remove them "
                             "(backbone_*/activation: dense only; ncps_compat/self_memory: wired only)")
        if isinstance(units, Wiring):
            ncps_compat = False if ncps_compat is None else ncps_compat
            self_memory = True if self_memory is None else self_memory
            if units.input_dim is None:
                units.build(self.input_size)
            if units.input_dim != self.input_size:
                raise ValueError(f"input_size {self.input_size} does not match the wiring's input_dim {units.input_dim}")
            self.cell = WiredCfCCell(units, self.mode, ncps_compat=ncps_compat, self_memory=self_memory)
            self.wiring: Wiring | None = units
            base_output = units.output_dim
        else:
            self.cell = CfCCell(
                self.input_size, units, self.mode,
                128 if backbone_units is None else backbone_units,
                1 if backbone_layers is None else backbone_layers,
                0.0 if backbone_dropout is None else backbone_dropout,
                BackboneActivation.LECUN_TANH if activation is None else activation,
            )
            self.wiring = None
            base_output = self.cell.units
        self.units = self.cell.units
        self.state_size = self.cell.units
        self.proj_size = None if proj_size is None else _check_int("proj_size", proj_size, 1)
        self.projection = None if self.proj_size is None else nn.Linear(base_output, self.proj_size)
        self.output_size = base_output if self.proj_size is None else self.proj_size
        self._motor = base_output

    # ------------------------------------------------------------------ contract
    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zero state ``[batch_size, state_size]``."""
        check_batch_size(batch_size)
        reference = next(self.cell.parameters())
        return torch.zeros(batch_size, self.state_size, device=reference.device, dtype=reference.dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None,
                dt: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a sequence: ``x[B,T,F]`` -> ``(y[B,T,O], final state[B,S])``; ``dt`` float, ``[B]`` or ``[B,T]``."""
        check_sequence(x, self.input_size)
        batch, steps = x.shape[0], x.shape[1]
        state = self.initial_state(batch) if state is None else state
        check_state(state, batch, self.state_size)
        elapsed = expand_dt(dt, batch, steps, dtype=x.dtype, device=x.device)
        return self._sequence(x, state, elapsed)

    def step(self, x: torch.Tensor, state: torch.Tensor,
             dt: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step: ``x[B,F]`` -> ``(y[B,O], state[B,S])``; same code path as :meth:`forward`."""
        check_step_input(x, self.input_size)
        check_state(state, x.shape[0], self.state_size)
        elapsed = expand_dt(dt, x.shape[0], 1, dtype=x.dtype, device=x.device)
        y, new_state = self._sequence(x.unsqueeze(1), state, elapsed)
        return y[:, 0], new_state

    def _sequence(self, x: torch.Tensor, state: torch.Tensor,
                  elapsed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.cell
        dtype = next(cell.parameters()).dtype  # inputs follow the weights (a float64 frame into a float32 core)
        x, state, elapsed = x.to(dtype), state.to(dtype), elapsed.to(dtype)
        cell.prepare()
        projected = cell.project_inputs(x)  # [B,T,*]: the input half of the first layer, all steps at once
        history = cell.run_sequence(projected, cell.to_internal(state), elapsed.unsqueeze(-1))
        states = cell.from_internal(history)  # [B,T,N] neuron order
        y = states[..., : self._motor]
        if self.projection is not None:
            y = self.projection(y)
        return y, states[:, -1]

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """JSON-serialisable architecture (wired: the wiring's exact matrices); ``build_core`` rebuilds it."""
        common = {"type": self.kind, "input_size": self.input_size, "mode": self.mode.value,
                  "proj_size": self.proj_size}
        if isinstance(self.cell, WiredCfCCell):
            return {**common, "wiring": self.cell.wiring.to_dict(), "ncps_compat": self.cell.ncps_compat,
                    "self_memory": self.cell.self_memory}
        cell = self.cell
        return {**common, "units": cell.units, "backbone_units": cell.backbone_units,
                "backbone_layers": cell.backbone_layers, "backbone_dropout": cell.backbone_dropout,
                "activation": cell.activation.value}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CfC:
        """Rebuild from :meth:`config` output; unknown or missing keys raise ``ValueError`` naming them."""
        if not isinstance(config, Mapping):
            raise ValueError(f"cfc config must be a mapping, got {type(config).__name__}")
        if config.get("type", cls.kind) != cls.kind:
            raise ValueError(f"cfc config has type {config['type']!r}, expected 'cfc'")
        wired = "wiring" in config
        required = {"input_size", "wiring"} if wired else {"input_size", "units"}
        optional = ({"mode", "proj_size", "ncps_compat", "self_memory"} if wired else
                    {"mode", "proj_size", "backbone_units", "backbone_layers", "backbone_dropout", "activation"})
        keys = set(config) - {"type"}
        missing, unknown = sorted(required - keys), sorted(keys - required - optional)
        if missing:
            raise ValueError(f"cfc config is missing key(s) {missing}; required: {sorted(required)}")
        if unknown:
            raise ValueError(f"cfc config has unknown key(s) {unknown}; allowed: {sorted(required | optional)}")
        options = {key: config[key] for key in optional if key in config and key != "mode"}
        units = Wiring.from_dict(config["wiring"]) if wired else config["units"]
        return cls(config["input_size"], units, config.get("mode", CfCMode.DEFAULT.value), **options)
