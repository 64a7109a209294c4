"""Saliency, neuron states and time constants / gates along a :class:`~.recording.Recording`.

The policy is re-run open-loop on the recorded frames with the recorded extras and dt, from a reset
state - the same inputs it had in the run, so its states and actions match the run's (tested). Per
step: SmoothGrad through the whole policy from the current state (over the next ``horizon`` steps), the core's new state, and (LTC) the
effective time constants at the state before the step or (CfC) the gate values of the step.
VisualBackProp is batched over all frames (it reads the CNN only). With clean twins, the same is
done on them from their own state trajectory (the counterfactual "what if the camera were clean").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lnn_control.explain.internals import (
    cfc_gates,
    is_cfc,
    is_ltc,
    ltc_sensory_saturation,
    ltc_time_constants,
)
from lnn_control.explain.recording import Recording
from lnn_control.explain.saliency import (
    SmoothGradConfig,
    core_inputs,
    normalize_map,
    smoothgrad_step,
    visual_backprop,
)

METHODS = ("visualbackprop", "smoothgrad")


@dataclass(frozen=True)
class AnalysisConfig:
    """smoothgrad: SmoothGrad settings; progress: show a progress bar."""

    smoothgrad: SmoothGradConfig = field(default_factory=SmoothGradConfig)
    progress: bool = False


@dataclass
class Analysis:
    """maps / clean_maps: method -> ``[T,H,W]`` float32 in [0, 1] (clean_maps None without clean twins);
    states: ``[T,S]`` core state after each step; actions: ``[T,A]`` replayed actions (action units);
    internals: None, or ``(kind, values [T,N])`` with kind ``"tau_s"`` (LTC effective time constant,
    seconds, at the state before the step), ``"gate"`` (CfC time gate) or ``"cfc_tau_s"`` (pure CfC
    decay time constant, seconds); smoothgrad_peaks: ``"frames"`` (and ``"clean"`` with clean twins)
    -> ``[T]`` peak |∂response/∂pixel| per frame. A frame whose peak is below
    :data:`~.saliency.VANISHED_GRADIENT` gets an all-zero SmoothGrad map (no information).
    feature_magnitude: ``[T]`` median |feature| of the CNN's output per frame; sensory_saturation:
    ``[T]`` share of the LTC sensory synapses from the CNN features that are saturated
    (:func:`~.internals.ltc_sensory_saturation`), None for other cores."""

    maps: dict[str, np.ndarray]
    clean_maps: dict[str, np.ndarray] | None
    states: np.ndarray
    actions: np.ndarray
    internals: tuple[str, np.ndarray] | None
    smoothgrad_peaks: dict[str, np.ndarray]
    feature_magnitude: np.ndarray
    sensory_saturation: np.ndarray | None


@dataclass
class _Pass:
    """One pass of :func:`_run` over a frame sequence (shapes as in :class:`Analysis`)."""

    smoothgrad: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    internals: np.ndarray | None
    kind: str
    peaks: np.ndarray
    feature_magnitude: np.ndarray
    sensory_saturation: np.ndarray | None


def _run(policy: Any, frames: np.ndarray, recording: Recording, config: AnalysisConfig, with_internals: bool,
         label: str) -> _Pass:
    core = policy.core
    rate = float(policy.config.control_rate_hz)
    generator = torch.Generator().manual_seed(int(config.smoothgrad.seed))
    state = core.initial_state(1)
    inputs = core_inputs(policy, frames, recording.extras)
    horizon = config.smoothgrad.horizon
    saliency, states, actions, internals, peaks, magnitude, saturation = [], [], [], [], [], [], []
    features = int(policy.perception.config.features)
    kind = ""
    steps = range(recording.steps)
    if config.progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"explain {label}", unit="frame", leave=False)
    for t in steps:
        future = [(inputs[k], float(recording.dt[k])) for k in range(t + 1, min(t + horizon, recording.steps))]
        result = smoothgrad_step(policy, frames[t], recording.extras[t], state, float(recording.dt[t]),
                                 config.smoothgrad, generator, future)
        if with_internals and is_ltc(core):
            tau, _ = ltc_time_constants(core, result.x.unsqueeze(0), state)
            internals.append(tau[0].numpy() / rate)
            kind = "tau_s"
        elif with_internals and is_cfc(core):
            gate = cfc_gates(core, result.x.unsqueeze(0), state, result.state, float(recording.dt[t]) * rate)
            kind = "cfc_tau_s" if core.cell.mode.value == "pure" else "gate"
            internals.append(gate[0].numpy() / (rate if kind == "cfc_tau_s" else 1.0))
        saliency.append(np.zeros_like(result.saliency) if result.vanished else normalize_map(result.saliency))
        peaks.append(result.peak)
        magnitude.append(float(result.x[:features].abs().median()))
        if is_ltc(core):
            saturation.append(float(ltc_sensory_saturation(core, result.x.unsqueeze(0), features)[0]))
        states.append(result.state[0].numpy())
        actions.append(result.action)
        state = result.state
    values = np.asarray(internals, np.float32) if internals else None
    return _Pass(np.stack(saliency), np.asarray(states, np.float32), np.asarray(actions, np.float32), values, kind,
                 np.asarray(peaks, np.float64), np.asarray(magnitude, np.float64),
                 np.asarray(saturation, np.float64) if saturation else None)


def analyse(policy: Any, recording: Recording, config: AnalysisConfig | None = None) -> Analysis:
    """Run the analysis (see the module docstring); the policy is only read."""
    config = config or AnalysisConfig()
    training = policy.training
    policy.eval()
    try:
        seen = _run(policy, recording.frames, recording, config, True, "frames")
        maps = {"visualbackprop": visual_backprop(policy, recording.frames), "smoothgrad": seen.smoothgrad}
        smoothgrad_peaks = {"frames": seen.peaks}
        clean_maps = None
        if recording.clean_frames is not None:
            clean = _run(policy, recording.clean_frames, recording, config, False, "clean twins")
            smoothgrad_peaks["clean"] = clean.peaks
            clean_maps = {"visualbackprop": visual_backprop(policy, recording.clean_frames),
                          "smoothgrad": clean.smoothgrad}
    finally:
        policy.train(training)
    internals = (seen.kind, seen.internals) if seen.internals is not None else None
    return Analysis(maps, clean_maps, seen.states, seen.actions, internals, smoothgrad_peaks, seen.feature_magnitude,
                    seen.sensory_saturation)
