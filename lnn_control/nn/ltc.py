"""Liquid time-constant (LTC) network with the NCP-paper conductance parametrisation.

Each neuron ``j`` has a membrane potential ``v_j`` (the state), leak conductance ``gleak_j``, leak
potential ``vleak_j`` and capacitance ``cm_j``. A synapse ``i -> j`` (from a neuron or an input feature)
opens with ``g_ij = w_ij * sigmoid(sigma_ij * (v_i - mu_ij))`` and pulls ``v_j`` toward its reversal
potential ``erev_ij`` (initialised to the wiring polarity, then trained):

    cm_j dv_j/dt = gleak_j (vleak_j - v_j) + sum_i g_ij (erev_ij - v_j)

integrated with the fused semi-implicit Euler step of ``ncps`` (``ode_unfolds`` sub-steps of
``Δ = elapsed / ode_unfolds``):

    v_j <- (cm_j/Δ v_j + gleak_j vleak_j + sum_i g_ij erev_ij) / (cm_j/Δ + gleak_j + sum_i g_ij + epsilon)

Inputs pass an element-wise affine map (``input_w``, ``input_b``) first; the output is the motor
neurons ``v[:, :output_size]`` through an element-wise affine map (``output_w``, ``output_b``).
``w``, ``sensory_w``, ``cm`` and ``gleak`` are kept positive by a softplus on the raw parameter
(default) or, for ``ncps`` models trained without ``implicit_param_constraints``, used as they are and
clamped at 0 by :meth:`LTC.apply_weight_constraints` after each optimiser step.

Speed (see ``lnn-control bench nn``): only the synapses present in the wiring are computed. The
sensory synapses do not depend on the state, so their conductance sums are computed for all T steps
in one batched product before the recurrence; per unfold the recurrence is a handful of small
matrix products: ``sigma*(v_i - mu)`` for every synapse is ``v @ G - sigma*mu`` with a
gather-and-scale matrix ``G [N,K]``, and the sums over incoming synapses are ``a @ W`` and
``a @ (W*erev)`` with scatter matrices ``[K,N]``.

Shapes: ``x [B,T,F]``, state ``[B,N]``, ``dt`` float / ``[B]`` / ``[B,T]`` in nominal steps.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from lnn_control.nn.contract import (
    check_batch_size,
    check_sequence,
    check_state,
    check_step_input,
    expand_dt,
)
from lnn_control.nn.ltc_kernels import compiled_recurrence, compiled_sensory
from lnn_control.nn.wirings import FullyConnected, Wiring


class Mapping1D(str, enum.Enum):
    """Element-wise map on inputs / outputs (``ncps``' ``input_mapping`` / ``output_mapping``)."""

    AFFINE = "affine"
    LINEAR = "linear"
    NONE = "none"


class Positivity(str, enum.Enum):
    """How ``w``, ``sensory_w``, ``cm``, ``gleak`` stay positive."""

    SOFTPLUS = "softplus"  # softplus(raw) in the forward pass (ncps implicit_param_constraints=True)
    CLAMP = "clamp"  # raw value in the forward pass, clamped >= 0 by apply_weight_constraints()


# Uniform initialisation ranges of the raw parameters (as in ncps).
_INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}
_POSITIVE = ("gleak", "cm", "w", "sensory_w")


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class LTC(nn.Module):
    """Wired LTC network; ``forward`` over sequences, ``step`` for streaming (same numbers)."""

    # synapse masks and index lists (registered in __init__; declared here for their type)
    sparsity_mask: torch.Tensor
    sensory_sparsity_mask: torch.Tensor
    _src: torch.Tensor
    _tgt: torch.Tensor
    _s_src: torch.Tensor
    _s_tgt: torch.Tensor

    def __init__(
        self,
        wiring: Wiring,
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        input_mapping: Mapping1D = Mapping1D.AFFINE,
        output_mapping: Mapping1D = Mapping1D.AFFINE,
        positivity: Positivity = Positivity.SOFTPLUS,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if not isinstance(wiring, Wiring):
            raise ValueError(f"wiring must be a lnn_control.nn.wirings.Wiring, got {type(wiring).__name__}")
        if wiring.sensory_adjacency is None:
            raise ValueError("wiring is not built: call wiring.build(input_size) first")
        sensory_polarity = wiring.sensory_adjacency  # [F, N]
        self.wiring = wiring
        self.ode_unfolds = _check_positive_int("ode_unfolds", ode_unfolds)
        if not isinstance(epsilon, (int, float)) or not 0 <= float(epsilon) < 1e-2:
            raise ValueError(f"epsilon must be a small number in [0, 0.01), got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.input_mapping = Mapping1D(input_mapping)
        self.output_mapping = Mapping1D(output_mapping)
        self.positivity = Positivity(positivity)
        # Compute the recurrence with the Numba kernels for float32/float64 on CPU (False, or another
        # device/dtype: plain torch ops, which also allow double backward); a runtime choice, not part
        # of the architecture.
        self.compiled = True
        self.input_size = int(sensory_polarity.shape[0])
        self.state_size = wiring.units
        self.output_size = wiring.output_dim

        adjacency = torch.from_numpy(wiring.adjacency.astype(np.float32))
        sensory = torch.from_numpy(sensory_polarity.astype(np.float32))
        self.register_buffer("sparsity_mask", adjacency.abs())
        self.register_buffer("sensory_sparsity_mask", sensory.abs())
        src, tgt = np.nonzero(wiring.adjacency)
        s_src, s_tgt = np.nonzero(sensory_polarity)
        self.register_buffer("_src", torch.from_numpy(src.astype(np.int64)), persistent=False)
        self.register_buffer("_tgt", torch.from_numpy(tgt.astype(np.int64)), persistent=False)
        self.register_buffer("_s_src", torch.from_numpy(s_src.astype(np.int64)), persistent=False)
        self.register_buffer("_s_tgt", torch.from_numpy(s_tgt.astype(np.int64)), persistent=False)

        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        n, f = self.state_size, self.input_size

        def uniform(shape: tuple[int, ...], name: str) -> nn.Parameter:
            low, high = _INIT_RANGES[name]
            return nn.Parameter(torch.rand(shape, generator=generator) * (high - low) + low)

        self.gleak = uniform((n,), "gleak")
        self.vleak = uniform((n,), "vleak")
        self.cm = uniform((n,), "cm")
        self.sigma = uniform((n, n), "sigma")
        self.mu = uniform((n, n), "mu")
        self.w = uniform((n, n), "w")
        self.erev = nn.Parameter(adjacency.clone())
        self.sensory_sigma = uniform((f, n), "sensory_sigma")
        self.sensory_mu = uniform((f, n), "sensory_mu")
        self.sensory_w = uniform((f, n), "sensory_w")
        self.sensory_erev = nn.Parameter(sensory.clone())
        self.input_w = nn.Parameter(torch.ones(f)) if self.input_mapping != Mapping1D.NONE else None
        self.input_b = nn.Parameter(torch.zeros(f)) if self.input_mapping == Mapping1D.AFFINE else None
        m = self.output_size
        self.output_w = nn.Parameter(torch.ones(m)) if self.output_mapping != Mapping1D.NONE else None
        self.output_b = nn.Parameter(torch.zeros(m)) if self.output_mapping == Mapping1D.AFFINE else None

    # ------------------------------------------------------------------ contract
    @classmethod
    def dense(cls, input_size: int, units: int, output_size: int | None = None, seed: int = 0, **kwargs: Any) -> LTC:
        """A fully connected LTC (like ``ncps.torch.LTC(input_size, units)``)."""
        wiring = FullyConnected(units, output_dim=output_size, seed=seed).build(input_size)
        return cls(wiring, seed=seed, **kwargs)

    def config(self) -> dict[str, Any]:
        """Architecture as JSON-serialisable dict (``build_core`` / :meth:`from_config` rebuild it)."""
        return {
            "type": "ltc",
            "wiring": self.wiring.to_dict(),
            "ode_unfolds": self.ode_unfolds,
            "epsilon": self.epsilon,
            "input_mapping": self.input_mapping.value,
            "output_mapping": self.output_mapping.value,
            "positivity": self.positivity.value,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LTC:
        """A freshly initialised LTC with the architecture in ``config`` (see :meth:`config`)."""
        if not isinstance(config, Mapping):
            raise ValueError(f"LTC config must be a mapping, got {type(config).__name__}")
        allowed = {"type", "wiring", "ode_unfolds", "epsilon", "input_mapping", "output_mapping", "positivity"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"LTC config has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        if config.get("type") != "ltc":
            raise ValueError(f"LTC config must have type 'ltc', got {config.get('type')!r}")
        if "wiring" not in config:
            raise ValueError("LTC config is missing 'wiring' (a Wiring.to_dict() mapping)")
        try:
            options = {
                "ode_unfolds": config.get("ode_unfolds", 6),
                "epsilon": config.get("epsilon", 1e-8),
                "input_mapping": Mapping1D(config.get("input_mapping", "affine")),
                "output_mapping": Mapping1D(config.get("output_mapping", "affine")),
                "positivity": Positivity(config.get("positivity", "softplus")),
            }
        except ValueError as exc:
            raise ValueError(f"LTC config: {exc}; allowed mappings {[m.value for m in Mapping1D]}, "
                             f"positivity {[p.value for p in Positivity]}") from exc
        return cls(Wiring.from_dict(config["wiring"]), **options)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zero membrane potentials ``[batch_size, units]``."""
        check_batch_size(batch_size)
        return torch.zeros(batch_size, self.state_size, dtype=self.gleak.dtype, device=self.gleak.device)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x[B,T,F]`` -> ``(y[B,T,O], final state[B,N])``; ``dt`` elapsed time per step (nominal steps)."""
        check_sequence(x, self.input_size)
        batch, steps = x.shape[0], x.shape[1]
        state = self.initial_state(batch) if state is None else check_state(state, batch, self.state_size)
        elapsed = expand_dt(dt, batch, steps, dtype=x.dtype, device=x.device)
        return self._run(x, state.to(x.dtype), elapsed)

    def step(
        self, x: torch.Tensor, state: torch.Tensor, dt: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming step ``x[B,F]`` -> ``(y[B,O], state[B,N])``; identical maths to ``forward``."""
        check_step_input(x, self.input_size)
        check_state(state, x.shape[0], self.state_size)
        elapsed = expand_dt(dt, x.shape[0], 1, dtype=x.dtype, device=x.device)
        y, new_state = self._run(x.unsqueeze(1), state.to(x.dtype), elapsed)
        return y[:, 0], new_state

    def apply_weight_constraints(self) -> None:
        """With ``Positivity.CLAMP``: clamp ``w``, ``sensory_w``, ``cm``, ``gleak`` at 0 (after each optimiser step)."""
        if self.positivity == Positivity.CLAMP:
            with torch.no_grad():
                for name in _POSITIVE:
                    getattr(self, name).clamp_(min=0.0)

    # ------------------------------------------------------------- parameters
    def _positive(self, raw: torch.Tensor) -> torch.Tensor:
        return functional.softplus(raw) if self.positivity == Positivity.SOFTPLUS else raw

    def effective_parameters(self) -> dict[str, torch.Tensor]:
        """Parameters as the ODE uses them: positivity applied, per active synapse (index lists included).

        Keys: ``gleak, vleak, cm [N]``; recurrent synapses ``src, tgt [K]``, ``w, sigma, mu, erev [K]``;
        sensory synapses ``s_src, s_tgt [Ks]``, ``s_w, s_sigma, s_mu, s_erev [Ks]``; ``input_w, input_b [F]``,
        ``output_w, output_b [O]`` (identity values where the mapping omits them).
        """
        src, tgt, s_src, s_tgt = self._src, self._tgt, self._s_src, self._s_tgt
        f, m = self.input_size, self.output_size
        ones_f = torch.ones(f, dtype=self.gleak.dtype, device=self.gleak.device)
        ones_m = torch.ones(m, dtype=self.gleak.dtype, device=self.gleak.device)
        return {
            "gleak": self._positive(self.gleak),
            "vleak": self.vleak,
            "cm": self._positive(self.cm),
            "src": src,
            "tgt": tgt,
            "w": self._positive(self.w[src, tgt]),
            "sigma": self.sigma[src, tgt],
            "mu": self.mu[src, tgt],
            "erev": self.erev[src, tgt],
            "s_src": s_src,
            "s_tgt": s_tgt,
            "s_w": self._positive(self.sensory_w[s_src, s_tgt]),
            "s_sigma": self.sensory_sigma[s_src, s_tgt],
            "s_mu": self.sensory_mu[s_src, s_tgt],
            "s_erev": self.sensory_erev[s_src, s_tgt],
            "input_w": self.input_w if self.input_w is not None else ones_f,
            "input_b": self.input_b if self.input_b is not None else 0 * ones_f,
            "output_w": self.output_w if self.output_w is not None else ones_m,
            "output_b": self.output_b if self.output_b is not None else 0 * ones_m,
        }

    # -------------------------------------------------------------------- ODE
    def _run(self, x: torch.Tensor, v: torch.Tensor, elapsed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.effective_parameters()
        n = self.state_size
        dtype, device = x.dtype, x.device
        x = x * p["input_w"] + p["input_b"]

        # Sensory synapses for all steps at once: conductances [B,T,Ks] summed into their targets.
        compiled = self.compiled and device.type == "cpu" and dtype in (torch.float32, torch.float64)
        if compiled:
            s_num, s_den = compiled_sensory(x, p["s_sigma"], p["s_mu"], p["s_w"], p["s_erev"], p["s_src"], p["s_tgt"], n)
        else:
            s_act = torch.sigmoid(p["s_sigma"] * (x[:, :, p["s_src"]] - p["s_mu"])) * p["s_w"]
            s_scatter = _scatter_matrix(p["s_tgt"], n, dtype, device)  # [Ks, N]
            s_den = s_act @ s_scatter
            s_num = (s_act * p["s_erev"]) @ s_scatter

        # Per-step constants: cm/Δ [B,T,N]; numerator and denominator offsets.
        cm_t = p["cm"] * (self.ode_unfolds / elapsed).unsqueeze(-1)
        num_const = s_num + p["gleak"] * p["vleak"]
        den_const = s_den + cm_t + (p["gleak"] + self.epsilon)

        if compiled:
            trajectory = compiled_recurrence(
                v, num_const, den_const, cm_t, p["sigma"], p["mu"], p["w"], p["erev"], p["src"], p["tgt"],
                self.ode_unfolds,
            )
        else:
            trajectory = self._torch_recurrence(v, num_const, den_const, cm_t, p)
        y = trajectory[:, :, : self.output_size] * p["output_w"] + p["output_b"]
        return y, trajectory[:, -1]

    def _torch_recurrence(
        self,
        v: torch.Tensor,
        num_const: torch.Tensor,
        den_const: torch.Tensor,
        cm_t: torch.Tensor,
        p: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Reference recurrence in torch ops (any device); same numbers as the compiled kernel."""
        n, dtype, device = self.state_size, v.dtype, v.device
        # Recurrent synapses: pre-activation sigma*(v_src - mu) = v @ gather - sigma*mu.
        k = p["src"].shape[0]
        if k:
            gather = torch.zeros(n, k, dtype=dtype, device=device)
            gather = gather.index_put((p["src"], torch.arange(k, device=device)), p["sigma"])
            offset = -(p["sigma"] * p["mu"])
            scatter = _scatter_matrix(p["tgt"], n, dtype, device)
            w_scatter = p["w"].unsqueeze(1) * scatter  # [K,N]
            we_scatter = (p["w"] * p["erev"]).unsqueeze(1) * scatter
        states = []
        for c_num, c_den, c_cm in zip(num_const.unbind(1), den_const.unbind(1), cm_t.unbind(1)):
            for _ in range(self.ode_unfolds):
                if k:
                    act = torch.sigmoid(torch.addmm(offset, v, gather))
                    numerator = torch.addcmul(torch.addmm(c_num, act, we_scatter), c_cm, v)
                    v = numerator / torch.addmm(c_den, act, w_scatter)
                else:
                    v = torch.addcmul(c_num, c_cm, v) / c_den
            states.append(v)
        return torch.stack(states, dim=1)  # [B,T,N]


def _scatter_matrix(targets: torch.Tensor, units: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One-hot ``[K, units]``: row k has a 1 in column ``targets[k]`` (sums synapses into their target)."""
    matrix = torch.zeros(targets.shape[0], units, dtype=dtype, device=device)
    matrix[torch.arange(targets.shape[0], device=device), targets] = 1.0
    return matrix
