"""Convert ``ncps.torch.CfC`` modules (ncps 1.0.1) into :class:`lnn_control.nn.cfc.CfC` with identical outputs.

Supported: dense CfC with or without backbone (any activation, dropout, ``proj_size``), and wired CfC on any
``ncps.wirings`` wiring (``NCP``, ``AutoNCP``, ``FullyConnected``, ``Random``); modes ``default``, ``no_gate``,
``pure``. ``mixed_memory=True`` is refused (no LSTM memory cell here). Wired modules are converted with
``ncps_compat=True`` so the ncps wiring semantics (dense intra-layer recurrence, no polarity, unmasked
time gates) are reproduced exactly; outputs agree to float32 rounding (<= 1e-5).

State layout: dense states are identical. ``ncps`` keeps a wired state in *layer* order (inter, command,
motor); ours is in *neuron* order (motor first). :func:`state_from_ncps` / :func:`state_to_ncps` convert.
Outputs ``y`` need no conversion. ``ncps`` reads ``timespans[:, t]`` and only works for batch 1 (or no
timespans); ours takes ``dt`` ``[B,T]`` for any batch.

``ncps`` is only needed by the caller (its module is read through attributes); this module does not import it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lnn_control.nn.cfc import CfC
from lnn_control.nn.cfc_cells import BackboneActivation, CfCCell, WiredCfCCell
from lnn_control.nn.cfc_kernels import CfCMode
from lnn_control.nn.wirings import Wiring

_ACTIVATION_BY_CLASS = {
    "LeCun": BackboneActivation.LECUN_TANH,
    "SiLU": BackboneActivation.SILU,
    "ReLU": BackboneActivation.RELU,
    "Tanh": BackboneActivation.TANH,
    "GELU": BackboneActivation.GELU,
}


def is_ncps_cfc(module: Any) -> bool:
    """True for an ``ncps.torch.CfC`` instance (checked by class name and module, without importing ncps)."""
    cls = type(module)
    return cls.__name__ == "CfC" and cls.__module__.startswith("ncps.")


def wiring_from_ncps(ncps_wiring: Any) -> Wiring:
    """Our :class:`Wiring` with the exact matrices and layers of a built ``ncps.wirings`` wiring."""
    if not getattr(ncps_wiring, "is_built", lambda: False)():
        raise ValueError("ncps wiring is not built: build it (or the CfC that owns it) first")
    layers = [list(map(int, ncps_wiring.get_neurons_of_layer(i))) for i in range(ncps_wiring.num_layers)]
    return Wiring.from_adjacency(
        np.asarray(ncps_wiring.adjacency_matrix).astype(np.int8),
        np.asarray(ncps_wiring.sensory_adjacency_matrix).astype(np.int8),
        int(ncps_wiring.output_dim),
        layers=layers,
    )


def cfc_from_ncps(module: Any) -> CfC:
    """A :class:`CfC` computing exactly what the given ``ncps.torch.CfC`` computes (weights copied)."""
    if not is_ncps_cfc(module):
        raise ValueError(f"module must be an ncps.torch.CfC, got {type(module).__module__}.{type(module).__name__}")
    if module.use_mixed:
        raise ValueError("ncps CfC with mixed_memory=True is not supported; build the ncps module with "
                         "mixed_memory=False")
    if not module.batch_first:
        raise ValueError("ncps CfC with batch_first=False is not supported; build it with batch_first=True "
                         "(our cores take x[B,T,F])")
    proj = None if isinstance(module.fc, nn.Identity) else int(module.fc.out_features)
    source_cell = module.rnn_cell
    if getattr(module, "wired_mode", False):
        ours = _wired_from_ncps(module, proj)
    else:
        ours = _dense_from_ncps(module, source_cell, proj)
    if ours.projection is not None:  # built for proj_size = proj
        with torch.no_grad():
            ours.projection.weight.copy_(module.fc.weight)
            ours.projection.bias.copy_(module.fc.bias)
    ours.train(module.training)
    return ours


def _head_weights(cell: Any, mode: CfCMode) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked head weights ``[H, out, in]`` and biases ``[H, out]`` of an ncps ``CfCCell`` (masks applied)."""
    names = ["ff1"] if mode is CfCMode.PURE else ["ff1", "ff2", "time_a", "time_b"]
    weights, biases = [], []
    for name in names:
        linear = getattr(cell, name)
        weight = linear.weight.detach()
        if cell.sparsity_mask is not None and name in ("ff1", "ff2"):
            weight = weight * cell.sparsity_mask
        weights.append(weight)
        biases.append(linear.bias.detach())
    return torch.stack(weights), torch.stack(biases)


def _dense_from_ncps(module: Any, cell: Any, proj: int | None) -> CfC:
    mode = CfCMode(cell.mode)
    layers = int(cell.backbone_layers)
    if layers:
        first = cell.backbone[0]
        units_b = int(first.out_features)
        activation = _ACTIVATION_BY_CLASS[type(cell.backbone[1]).__name__]
        dropouts = [m.p for m in cell.backbone if isinstance(m, nn.Dropout)]
        dropout = float(dropouts[0]) if dropouts else 0.0
    else:
        units_b, activation, dropout = 128, BackboneActivation.LECUN_TANH, 0.0
    ours = CfC(int(cell.input_size), int(cell.hidden_size), mode, backbone_units=units_b, backbone_layers=layers,
               backbone_dropout=dropout, activation=activation, proj_size=proj)
    target = ours.cell
    assert isinstance(target, CfCCell)  # an int number of units builds a dense cell
    f = target.input_size
    weights, biases = _head_weights(cell, mode)
    heads_w = weights.reshape(-1, weights.shape[-1])  # [H*N, in]
    heads_b = biases.reshape(-1)
    with torch.no_grad():
        if layers:
            first_w, first_b = cell.backbone[0].weight, cell.backbone[0].bias
            assert target.heads is not None  # built with backbone_layers = layers > 0
            target.heads.weight.copy_(heads_w)
            target.heads.bias.copy_(heads_b)
            linears = [m for m in cell.backbone if isinstance(m, nn.Linear)][1:]
            for ours_layer, theirs in zip(target.hidden_linears, linears):
                ours_layer.weight.copy_(theirs.weight)
                ours_layer.bias.copy_(theirs.bias)
        else:
            first_w, first_b = heads_w, heads_b
        target.input_weight.copy_(first_w[:, :f])
        target.recurrent_weight.copy_(first_w[:, f:])
        target.first_bias.copy_(first_b)
        if mode is CfCMode.PURE:
            target.w_tau.copy_(cell.w_tau.reshape(-1))
            target.amplitude.copy_(cell.A.reshape(-1))
    return ours


def _wired_from_ncps(module: Any, proj: int | None) -> CfC:
    ncps_cell = module.rnn_cell
    wiring = wiring_from_ncps(ncps_cell._wiring)
    if sorted(wiring.layers[-1].tolist()) != list(range(wiring.output_dim)):
        raise ValueError(
            "ncps wiring: its last layer is not exactly the motor neurons, so ncps returns the whole last "
            f"layer ({len(wiring.layers[-1])} values) instead of output_dim={wiring.output_dim}; use "
            "output_dim equal to the last layer's size (e.g. FullyConnected(units, output_dim=units)) or an NCP"
        )
    mode = CfCMode(ncps_cell._layers[0].mode)
    input_size = wiring.input_dim
    if input_size is None:  # from_adjacency builds the wiring; checked for the type
        raise ValueError("ncps wiring converted without sensory synapses; build the ncps wiring first")
    ours = CfC(input_size, wiring, mode, proj_size=proj, ncps_compat=True)
    target = ours.cell
    assert isinstance(target, WiredCfCCell)  # a Wiring builds a wired cell
    with torch.no_grad():
        target.sensory_weight.zero_()
        target.neuron_weight.zero_()
        for index, layer_cell in enumerate(ncps_cell._layers):
            neurons = torch.as_tensor(wiring.layers[index], dtype=torch.long)
            weights, biases = _head_weights(layer_cell, mode)  # [H, n_l, in + n_l]
            incoming = weights.shape[-1] - len(neurons)
            from_inputs = weights[:, :, :incoming].transpose(1, 2)  # [H, in, n_l]
            from_self = weights[:, :, incoming:].transpose(1, 2)  # [H, n_l, n_l]
            if index == 0:
                target.sensory_weight[:, :, neurons] = from_inputs
            else:
                previous = torch.as_tensor(wiring.layers[index - 1], dtype=torch.long)
                target.neuron_weight[:, previous[:, None], neurons[None, :]] = from_inputs
            target.neuron_weight[:, neurons[:, None], neurons[None, :]] = from_self
            target.bias[:, neurons] = biases
            if mode is CfCMode.PURE:
                target.w_tau[neurons] = layer_cell.w_tau.reshape(-1)
                target.amplitude[neurons] = layer_cell.A.reshape(-1)
    return ours


def _layer_order(core: CfC) -> torch.Tensor:
    if not isinstance(core.cell, WiredCfCCell):
        return torch.arange(core.state_size)
    return core.cell.perm


def state_from_ncps(core: CfC, hx: torch.Tensor) -> torch.Tensor:
    """An ncps state ``[B,N]`` (layer order for wired modules) -> ours (neuron order)."""
    out = torch.empty_like(hx)
    out[:, _layer_order(core).to(hx.device)] = hx
    return out


def state_to_ncps(core: CfC, state: torch.Tensor) -> torch.Tensor:
    """Our state ``[B,N]`` (neuron order) -> the ncps layout (layer order for wired modules)."""
    return state.index_select(1, _layer_order(core).to(state.device))
