"""Inside the core: neuron groups, LTC effective time constants, CfC gate values.

**LTC** (see :mod:`lnn_control.nn.ltc`). With the synaptic conductances at the current state and
input held fixed, each neuron obeys

    cm_j dv_j/dt = gleak_j (vleak_j - v_j) + sum_i g_ij (erev_ij - v_j),   i.e.   dv_j/dt = (v_inf_j - v_j) / tau_j

    tau_j = cm_j / (gleak_j + sum_i g_ij),   v_inf_j = (gleak_j vleak_j + sum_i g_ij erev_ij) / (gleak_j + sum_i g_ij)

with ``g_ij = w_ij sigmoid(sigma_ij (v_i - mu_ij))`` over the active sensory and recurrent synapses:
the input-dependent ("liquid") time constant. Units: the core's time is nominal control steps, so
``tau`` in seconds is ``tau_steps / control_rate_hz``.

**CfC** (see :mod:`lnn_control.nn.cfc`): the default update ``h' = tanh(ff1) (1 - s) + s tanh(ff2)``
with the time gate ``s = sigmoid(a t + b)``; ``no_gate`` uses ``h' = tanh(ff1) + s tanh(ff2)``.
:func:`cfc_gates` returns ``s`` per neuron and step (for ``pure`` mode, which has no gate, the decay
time constant ``1 / (|w_tau| + |ff1|)`` in nominal steps instead). Other cores have neither; the
explain output then lists their states only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lnn_control.nn.contract import expand_dt

GROUP_ORDER = ("motor", "command", "inter")


def neuron_groups(core: Any) -> dict[str, list[int]]:
    """State indices by group: a wired core's ``motor`` / ``command`` / ``inter`` neurons; an LSTM's
    ``hidden`` / ``cell`` halves; any other core's whole ``state``."""
    wiring = getattr(core, "wiring", None)
    if wiring is not None and hasattr(wiring, "neuron_type"):
        groups: dict[str, list[int]] = {}
        for neuron in range(wiring.units):
            groups.setdefault(wiring.neuron_type(neuron), []).append(neuron)
        return {name: groups[name] for name in GROUP_ORDER if name in groups}
    size = int(core.state_size)
    if core.config().get("type") == "lstm":
        half = size // 2
        return {"hidden": list(range(half)), "cell": list(range(half, size))}
    return {"state": list(range(size))}


def select_groups(groups: dict[str, list[int]], names: Sequence[str] | None) -> dict[str, list[int]]:
    """The named groups (all for ``None`` / ``["all"]``); an unknown name is a ``ValueError`` that lists
    the groups this core has."""
    if names is None or list(names) == ["all"]:
        return dict(groups)
    unknown = [name for name in names if name not in groups]
    if unknown or not names:
        raise ValueError(
            f"unknown neuron group(s) {unknown or list(names)}; this core has {sorted(groups)} (or 'all')"
        )
    return {name: groups[name] for name in names}


def is_ltc(core: Any) -> bool:
    return core.config().get("type") == "ltc"


def is_cfc(core: Any) -> bool:
    return core.config().get("type") == "cfc"


@torch.no_grad()
def ltc_conductance_terms(core: Any, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_g [B,N], sum_g_erev [B,N])``: total active conductance into each neuron and its
    reversal-weighted sum, for core inputs ``x [B,F]`` (before the input mapping) at state ``v [B,N]``."""
    p = core.effective_parameters()
    n = core.state_size
    x = x.to(p["gleak"].dtype) * p["input_w"] + p["input_b"]
    v = v.to(p["gleak"].dtype)
    sensory = p["s_w"] * torch.sigmoid(p["s_sigma"] * (x[:, p["s_src"]] - p["s_mu"]))
    recurrent = p["w"] * torch.sigmoid(p["sigma"] * (v[:, p["src"]] - p["mu"]))
    total = torch.zeros(v.shape[0], n, dtype=v.dtype)
    weighted = torch.zeros(v.shape[0], n, dtype=v.dtype)
    total.index_add_(1, p["s_tgt"], sensory)
    total.index_add_(1, p["tgt"], recurrent)
    weighted.index_add_(1, p["s_tgt"], sensory * p["s_erev"])
    weighted.index_add_(1, p["tgt"], recurrent * p["erev"])
    return total, weighted


#: A sensory synapse whose sigmoid slope σ(z)(1 − σ(z)) is below this is saturated: its input is
#: thresholded, and gradients through it vanish (|z| > ~14).
SATURATED_SLOPE = 1e-6


@torch.no_grad()
def ltc_sensory_saturation(core: Any, x: torch.Tensor, inputs: int) -> torch.Tensor:
    """Share (0..1) per row of the active sensory synapses from the first ``inputs`` core inputs (the
    CNN features) whose sigmoid slope is below :data:`SATURATED_SLOPE`, for core inputs ``x [B,F]``
    (before the input mapping): ``[B]``."""
    if not is_ltc(core):
        raise ValueError(f"sensory saturation needs an LTC core, got core type {core.config().get('type')!r}")
    p = core.effective_parameters()
    x = x.to(p["gleak"].dtype) * p["input_w"] + p["input_b"]
    chosen = p["s_src"] < inputs
    z = p["s_sigma"][chosen] * (x[:, p["s_src"][chosen]] - p["s_mu"][chosen])
    slope = torch.sigmoid(z) * torch.sigmoid(-z)
    return (slope < SATURATED_SLOPE).to(torch.float64).mean(dim=1)


@torch.no_grad()
def ltc_time_constants(core: Any, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tau [B,N], v_inf [B,N])`` of an LTC core for inputs ``x [B,F]`` at state ``v [B,N]``;
    ``tau`` in nominal control steps (divide by the control rate for seconds), see the module docstring."""
    if not is_ltc(core):
        raise ValueError(f"time constants need an LTC core, got core type {core.config().get('type')!r}")
    p = core.effective_parameters()
    total, weighted = ltc_conductance_terms(core, x, v)
    conductance = p["gleak"] + total
    return p["cm"] / conductance, (p["gleak"] * p["vleak"] + weighted) / conductance


@torch.no_grad()
def ltc_derivative(core: Any, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``dv/dt [B,N]`` (per nominal step) of an LTC core: ``(v_inf - v) / tau``."""
    tau, v_inf = ltc_time_constants(core, x, v)
    return (v_inf - v.to(tau.dtype)) / tau


@torch.no_grad()
def cfc_heads(core: Any, x: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
              elapsed: float | torch.Tensor) -> dict[str, torch.Tensor]:
    """The closed-form terms a CfC core used in the step ``before -> after``, each ``[B,N]`` in neuron order.

    x: core inputs ``[B,F]``; before / after: states ``[B,N]`` before and after the step (a wired
    layer reads the *new* states of earlier layers); elapsed: nominal steps (float or ``[B]``).
    Gated modes: ``{"ff1": tanh(ff1), "ff2": tanh(ff2), "gate": s}``; ``pure``: ``{"ff1": ff1,
    "tau": 1 / (|w_tau| + |ff1|)}`` (decay time constant, nominal steps).
    """
    if not is_cfc(core):
        raise ValueError(f"gates need a CfC core, got core type {core.config().get('type')!r}")
    cell = core.cell
    dtype = next(cell.parameters()).dtype
    x, before, after = x.to(dtype), before.to(dtype), after.to(dtype)
    time = expand_dt(elapsed, x.shape[0], 1, dtype=dtype)
    pure = cell.mode.value == "pure"

    def terms(pre: torch.Tensor, n: int, w_tau: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if pure:
            if w_tau is None:
                raise ValueError("a pure-mode CfC cell has w_tau; this cell has none")
            return {"ff1": pre[:, :n], "tau": 1.0 / (w_tau.abs() + pre[:, :n].abs())}
        return {"ff1": torch.tanh(pre[:, :n]), "ff2": torch.tanh(pre[:, n:2 * n]),
                "gate": torch.sigmoid(pre[:, 2 * n:3 * n] * time + pre[:, 3 * n:4 * n])}

    if hasattr(cell, "layer_bounds"):  # wired: layer by layer, in internal (layer) order
        cell.prepare()
        _, recurrent, _, blocks, _extras = cell._prepared
        pre = cell.project_inputs(x) + cell.to_internal(before) @ recurrent
        new = cell.to_internal(after)
        parts = pre.split(cell._column_sizes, dim=1)
        w_tau = cell.w_tau.index_select(0, cell.perm) if pure else None
        layers = []
        for target, (t0, t1) in enumerate(cell.layer_bounds):
            layer = parts[target]
            for source, block in zip(cell.feedforward_sources[target], blocks[target]):
                s0, s1 = cell.layer_bounds[source]
                layer = layer + new[:, s0:s1] @ block
            layers.append(terms(layer, t1 - t0, None if w_tau is None else w_tau[t0:t1]))
        return {key: cell.from_internal(torch.cat([t[key] for t in layers], dim=1)) for key in layers[0]}
    n = cell.units
    pre = cell.project_inputs(x) + before @ cell.recurrent_weight.t()
    if cell.backbone_layers:
        from lnn_control.nn.cfc_cells import _ACTIVATIONS

        act = _ACTIVATIONS[cell.activation]
        z = act(pre)
        for layer in cell.hidden_layers:
            z = act(layer(z))
        pre = cell.heads(z)
    return terms(pre, n, getattr(cell, "w_tau", None))


def cfc_gates(core: Any, x: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
              elapsed: float | torch.Tensor) -> torch.Tensor:
    """Gate values ``s [B,N]`` of :func:`cfc_heads` (``pure`` mode: its decay time constant ``tau``)."""
    heads = cfc_heads(core, x, before, after, elapsed)
    return heads["gate"] if "gate" in heads else heads["tau"]
