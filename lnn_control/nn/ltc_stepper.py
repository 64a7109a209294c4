"""``LTCStepper``: a compiled (Numba) batch-1 streaming step of a trained :class:`~lnn_control.nn.ltc.LTC`
on float64 NumPy weights, for the real-time loop (no torch in the hot path). Same maths as the
module (fused semi-implicit Euler over the synapses present in the wiring); the training kernels
are :mod:`lnn_control.nn.ltc_kernels`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lnn_control.nn.ltc import LTC
from lnn_control.nn.ltc_kernels import jit_kernel


@jit_kernel
def _stream_step(x, v, dt, input_w, input_b, s_src, s_tgt, s_sigma, s_mu, s_w, s_we, gleak_vleak, gleak_eps,
                 cm, src, tgt, sigma, mu, w, we, unfolds, out_v):  # noqa: ANN001, ANN202
    """One batch-1 step: ``x[F]``, state ``v[N]`` -> new state written to ``out_v[N]``."""
    units = v.shape[0]
    base_n = np.empty(units)
    base_d = np.empty(units)
    acc_n = np.empty(units)
    acc_d = np.empty(units)
    for j in range(units):
        base_n[j] = gleak_vleak[j]
        base_d[j] = gleak_eps[j] + cm[j] * unfolds / dt
        out_v[j] = v[j]
    for k in range(s_src.shape[0]):
        xi = x[s_src[k]] * input_w[s_src[k]] + input_b[s_src[k]]
        a = 1.0 / (1.0 + math.exp(-s_sigma[k] * (xi - s_mu[k])))
        base_n[s_tgt[k]] += s_we[k] * a
        base_d[s_tgt[k]] += s_w[k] * a
    for _ in range(unfolds):
        for j in range(units):
            acc_n[j] = base_n[j] + cm[j] * unfolds / dt * out_v[j]
            acc_d[j] = base_d[j]
        for k in range(src.shape[0]):
            a = 1.0 / (1.0 + math.exp(-sigma[k] * (out_v[src[k]] - mu[k])))
            acc_n[tgt[k]] += we[k] * a
            acc_d[tgt[k]] += w[k] * a
        for j in range(units):
            out_v[j] = acc_n[j] / acc_d[j]


class LTCStepper:
    """Batch-1 streaming LTC on float64 NumPy weights exported from an :class:`~lnn_control.nn.ltc.LTC`.

    ``step(x[F], dt)`` -> ``y[O]`` (float64) with ``dt`` the elapsed time in nominal steps;
    ``state`` is the membrane potential ``[N]``; ``reset()`` zeroes it. No torch in the hot path.
    """

    def __init__(self, core: Any) -> None:
        if not isinstance(core, LTC):
            raise ValueError(f"core must be a lnn_control.nn.ltc.LTC, got {type(core).__name__}")
        with torch.no_grad():
            params = {k: v.detach().cpu().to(torch.float64).numpy().copy() for k, v in
                      core.effective_parameters().items()}
        self.input_size = int(core.input_size)
        self.output_size = int(core.output_size)
        self.state_size = int(core.state_size)
        self.unfolds = int(core.ode_unfolds)
        as_index = np.int64
        self._args = (
            params["input_w"], params["input_b"],
            params["s_src"].astype(as_index), params["s_tgt"].astype(as_index),
            params["s_sigma"], params["s_mu"], params["s_w"], params["s_w"] * params["s_erev"],
            params["gleak"] * params["vleak"], params["gleak"] + core.epsilon, params["cm"],
            params["src"].astype(as_index), params["tgt"].astype(as_index),
            params["sigma"], params["mu"], params["w"], params["w"] * params["erev"],
        )
        self._output_w = params["output_w"]
        self._output_b = params["output_b"]
        self._state = np.zeros(self.state_size)
        self._next = np.zeros(self.state_size)

    @classmethod
    def from_module(cls, core: Any) -> LTCStepper:
        """Snapshot the current weights of an :class:`~lnn_control.nn.ltc.LTC`."""
        return cls(core)

    @property
    def state(self) -> np.ndarray:
        """Membrane potentials ``[N]`` (float64 copy)."""
        return self._state.copy()

    @state.setter
    def state(self, value: Any) -> None:
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (self.state_size,) or not np.isfinite(array).all():
            raise ValueError(f"state must be a finite array of shape ({self.state_size},), got {array.shape}")
        self._state[:] = array

    def reset(self) -> None:
        """Zero the state (start of an episode)."""
        self._state[:] = 0.0

    def step(self, x: np.ndarray, dt: float = 1.0) -> np.ndarray:
        """Advance by ``dt`` nominal steps on features ``x[F]``; returns the outputs ``[O]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.input_size,):
            raise ValueError(f"x must have shape [F]=[{self.input_size}], got {x.shape}")
        dt = float(dt)
        if not (dt > 0.0 and math.isfinite(dt)):
            raise ValueError(f"dt (elapsed time in nominal steps) must be finite and > 0, got {dt}")
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or inf; check the sensor / feature inputs")
        _stream_step(x, self._state, dt, *self._args, self.unfolds, self._next)
        self._state, self._next = self._next, self._state
        return self._state[: self.output_size] * self._output_w + self._output_b
