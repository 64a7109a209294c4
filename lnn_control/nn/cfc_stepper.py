"""``CfCStepper``: a compiled (Numba) single-sample streaming step of a trained :class:`~lnn_control.nn.cfc.CfC`.

For the real-time loop: one step for one sample without torch's per-op dispatch. ``CfCStepper.from_module(cfc)``
snapshots the module's *effective* weights (masks and polarity applied, float64) and keeps its own state::

    stepper = CfCStepper.from_module(core)       # core: a CfC (dense or wired), weights frozen at this call
    stepper.reset()                              # zero state
    y = stepper.step(features, dt)               # features [F] (any float array), dt > 0 in nominal steps
    stepper.state                                # float32 [S], neuron order, same layout as CfC's state

Results agree with ``CfC.step`` to float32 rounding (the kernels compute in float64). Rebuild the stepper after
the module's weights change. The kernels are compiled on first use (cached on disk by Numba afterwards).
Importing this module does not import torch; only :meth:`CfCStepper.from_module` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

MODE_CODES = {"default": 0, "no_gate": 1, "pure": 2}
ACTIVATION_CODES = {"lecun_tanh": 0, "silu": 1, "relu": 2, "tanh": 3, "gelu": 4}


@njit(cache=True)
def _activate(value: float, code: int) -> float:
    if code == 0:
        return 1.7159 * math.tanh(0.666 * value)
    if code == 1:
        return value / (1.0 + math.exp(-value))
    if code == 2:
        return value if value > 0.0 else 0.0
    if code == 3:
        return math.tanh(value)
    return 0.5 * value * (1.0 + math.erf(value / math.sqrt(2.0)))


@njit(cache=True)
def _closed_form(pre, c0, n, t0, elapsed, mode, w_tau, amplitude, out):  # noqa: ANN001, ANN202
    """Update neurons ``t0..t0+n`` of ``out`` from the head block starting at column ``c0``."""
    for j in range(n):
        if mode == 2:
            p = pre[c0 + j]
            amp = amplitude[t0 + j]
            out[t0 + j] = amp - amp * math.exp(-elapsed * (abs(w_tau[t0 + j]) + abs(p))) * p
        else:
            ff1 = math.tanh(pre[c0 + j])
            ff2 = math.tanh(pre[c0 + n + j])
            gate = 1.0 / (1.0 + math.exp(-(pre[c0 + 2 * n + j] * elapsed + pre[c0 + 3 * n + j])))
            out[t0 + j] = ff1 + gate * (ff2 - ff1) if mode == 0 else ff1 + gate * ff2


@njit(cache=True)
def _layered_step(x, h, elapsed, weights, bounds, heads, mode, extras, work):  # noqa: ANN001, ANN202
    """Wired (or backbone-free dense) step in internal layer order; False if ``x`` is not finite.

    ``weights`` rows: sensory ``[F]``, recurrent ``[N]``, feed-forward ``[N]``, bias ``[1]`` (columns ``G``);
    ``extras``: ``[w_tau; amplitude]`` ``[2,N]`` (pure mode); ``work``: scratch ``[G + N]``.
    """
    features = x.shape[0]
    units = h.shape[0]
    columns = weights.shape[1]
    pre = work[:columns]
    new = work[columns:]
    for f in range(features):
        if not math.isfinite(x[f]):
            return False
    bias_row = features + 2 * units
    for c in range(columns):
        pre[c] = weights[bias_row, c]
    for f in range(features):
        value = x[f]
        if value != 0.0:
            for c in range(columns):
                pre[c] += value * weights[f, c]
    for i in range(units):
        value = h[i]
        if value != 0.0:
            row = features + i
            for c in range(columns):
                pre[c] += value * weights[row, c]
    for layer in range(bounds.shape[0]):
        t0 = bounds[layer, 0]
        n = bounds[layer, 1] - t0
        c0 = heads * t0
        for i in range(t0):  # new states of earlier layers (feed-forward synapses)
            value = new[i]
            if value != 0.0:
                row = features + units + i
                for c in range(c0, c0 + heads * n):
                    pre[c] += value * weights[row, c]
        _closed_form(pre, c0, n, t0, elapsed, mode, extras[0], extras[1], new)
    h[:] = new
    return True


@njit(cache=True, fastmath={"reassoc", "nsz", "contract"})
def _dot(matrix, row, vector):  # noqa: ANN001, ANN202
    """``matrix[row] . vector`` (reassociation allowed so the loop vectorises)."""
    total = 0.0
    for k in range(vector.shape[0]):
        total += matrix[row, k] * vector[k]
    return total


@njit(cache=True)
def _dense_step(x, h, elapsed, input_weight, recurrent_weight, first_bias, hidden_weight, hidden_bias,  # noqa: ANN001, ANN202
                heads_weight, heads_bias, activation, mode, w_tau, amplitude, z, z_next, pre, new):
    """Dense CfC step with a backbone; False if ``x`` is not finite."""
    features = x.shape[0]
    units = h.shape[0]
    width = first_bias.shape[0]
    for f in range(features):
        if not math.isfinite(x[f]):
            return False
    for k in range(width):
        total = first_bias[k] + _dot(input_weight, k, x) + _dot(recurrent_weight, k, h)
        z[k] = _activate(total, activation)
    for layer in range(hidden_weight.shape[0]):
        layer_weight = hidden_weight[layer]
        for k in range(width):
            z_next[k] = _activate(hidden_bias[layer, k] + _dot(layer_weight, k, z), activation)
        z[:] = z_next
    for c in range(heads_bias.shape[0]):
        pre[c] = heads_bias[c] + _dot(heads_weight, c, z)
    _closed_form(pre, 0, units, 0, elapsed, mode, w_tau, amplitude, new)
    h[:] = new
    return True


@dataclass(frozen=True)
class _Snapshot:
    """Float64 arrays of one CfC, in the stepper's internal neuron order."""

    input_size: int
    state_size: int
    mode: int
    heads: int
    order: np.ndarray  # internal position -> neuron index
    outputs: np.ndarray  # internal positions of the output (motor) neurons
    arrays: dict[str, np.ndarray]
    layered: bool
    activation: int
    projection: tuple[np.ndarray, np.ndarray] | None


class CfCStepper:
    """Compiled batch-1 streaming CfC (see the module docstring)."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self._s = snapshot
        self.input_size = snapshot.input_size
        self.state_size = snapshot.state_size
        self.output_size = (len(snapshot.outputs) if snapshot.projection is None
                            else snapshot.projection[0].shape[0])
        self._inverse = np.argsort(snapshot.order)
        self._h = np.zeros(self.state_size)
        self._new = np.zeros(self.state_size)
        self._pre = np.zeros(snapshot.arrays["heads_bias"].shape[0]) if not snapshot.layered else None
        if not snapshot.layered:
            width = snapshot.arrays["first_bias"].shape[0]
            self._z, self._z_next = np.zeros(width), np.zeros(width)
        else:
            arrays = snapshot.arrays
            self._weights = np.ascontiguousarray(np.concatenate(
                [arrays["sensory"], arrays["recurrent"], arrays["feedforward"], arrays["bias"][None, :]]))
            self._extras = np.ascontiguousarray(np.stack([arrays["w_tau"], arrays["amplitude"]]))
            self._work = np.zeros(self._weights.shape[1] + self.state_size)
        self.reset()

    @classmethod
    def from_module(cls, module: Any) -> CfCStepper:
        """Snapshot a :class:`~lnn_control.nn.cfc.CfC` (dense or wired) into a compiled stepper."""
        import torch

        from lnn_control.nn.cfc import CfC
        from lnn_control.nn.cfc_cells import WiredCfCCell
        from lnn_control.nn.cfc_kernels import CfCMode

        if not isinstance(module, CfC):
            raise ValueError(f"module must be a lnn_control.nn.cfc.CfC, got {type(module).__name__}")
        cell = module.cell
        mode = MODE_CODES[module.mode.value]

        def array(tensor: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(tensor.detach().to("cpu", torch.float64).numpy())

        units = module.state_size
        activation = 0  # the layered kernels have no backbone
        with torch.no_grad():
            pure = module.mode is CfCMode.PURE
            if isinstance(cell, WiredCfCCell):
                sensory, recurrent, feedforward, bias = cell.effective_weights()
                order = cell.perm.cpu().numpy()
                arrays = {"sensory": array(sensory), "recurrent": array(recurrent),
                          "feedforward": array(feedforward), "bias": array(bias),
                          "bounds": np.asarray(cell.layer_bounds, dtype=np.int64)}
                if pure:
                    arrays["w_tau"], arrays["amplitude"] = array(cell.w_tau[cell.perm]), array(cell.amplitude[cell.perm])
                layered = True
            elif cell.heads is None:  # no backbone (backbone_layers == 0)
                order = np.arange(units)
                arrays = {"sensory": array(cell.input_weight.t()), "recurrent": array(cell.recurrent_weight.t()),
                          "feedforward": np.zeros((units, cell.first_bias.shape[0])),
                          "bias": array(cell.first_bias), "bounds": np.asarray([[0, units]], dtype=np.int64)}
                layered = True
            else:
                order = np.arange(units)
                width = cell.backbone_units
                hidden = cell.hidden_linears
                arrays = {
                    "input_weight": array(cell.input_weight), "recurrent_weight": array(cell.recurrent_weight),
                    "first_bias": array(cell.first_bias),
                    "hidden_weight": (np.stack([array(layer.weight) for layer in hidden]) if hidden
                                      else np.zeros((0, width, width))),
                    "hidden_bias": (np.stack([array(layer.bias) for layer in hidden]) if hidden
                                    else np.zeros((0, width))),
                    "heads_weight": array(cell.heads.weight), "heads_bias": array(cell.heads.bias),
                }
                layered = False
                activation = ACTIVATION_CODES[cell.activation.value]
            if pure and "w_tau" not in arrays:
                arrays["w_tau"], arrays["amplitude"] = array(cell.w_tau), array(cell.amplitude)
            if not pure:
                arrays["w_tau"] = arrays["amplitude"] = np.zeros(units)
            outputs = np.argsort(order)[: module._motor]
            projection = None
            if module.projection is not None:
                projection = (array(module.projection.weight), array(module.projection.bias))
        return cls(_Snapshot(module.input_size, units, mode, 1 if pure else 4, order, outputs, arrays, layered,
                             activation, projection))

    # ------------------------------------------------------------------ streaming
    def reset(self) -> None:
        """Zero state (start of an episode)."""
        self._h[:] = 0.0

    @property
    def state(self) -> np.ndarray:
        """Current state, float32 ``[S]`` in neuron order (the layout of ``CfC``'s state)."""
        return self._h[self._inverse].astype(np.float32)

    @state.setter
    def state(self, value: Any) -> None:
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (self.state_size,) or not np.isfinite(array).all():
            raise ValueError(f"state must be a finite array of shape ({self.state_size},), got {array.shape}")
        self._h[:] = array[self._s.order]

    def step(self, x: Any, dt: float = 1.0) -> np.ndarray:
        """One step: features ``x`` ``[F]`` and elapsed ``dt`` (nominal steps, > 0) -> output float32 ``[O]``."""
        features = np.asarray(x, dtype=np.float64)
        if features.shape != (self.input_size,):
            raise ValueError(f"x must have shape ({self.input_size},), got {features.shape}")
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)):
            raise ValueError(f"dt must be a number (elapsed nominal steps), got {type(dt).__name__}")
        elapsed = float(dt)
        if not 0.0 < elapsed < math.inf:
            raise ValueError(f"dt (elapsed time in nominal steps) must be finite and > 0, got {dt!r}")
        s, a = self._s, self._s.arrays
        if s.layered:
            ok = _layered_step(features, self._h, elapsed, self._weights, a["bounds"], s.heads, s.mode, self._extras,
                               self._work)
        else:
            ok = _dense_step(features, self._h, elapsed, a["input_weight"], a["recurrent_weight"], a["first_bias"],
                             a["hidden_weight"], a["hidden_bias"], a["heads_weight"], a["heads_bias"], s.activation,
                             s.mode, a["w_tau"], a["amplitude"], self._z, self._z_next, self._pre, self._new)
        if not ok:
            raise ValueError("x contains NaN or inf; check the sensor / feature inputs (state left unchanged)")
        y = self._h[s.outputs]
        if s.projection is not None:
            y = s.projection[0] @ y + s.projection[1]
        return y.astype(np.float32)
