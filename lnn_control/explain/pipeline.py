"""``run_explain(config)``: record (or read) an episode, analyse it, write figures, video and JSON.

Files in ``config.out`` (each written atomically; the video through a temporary file renamed on a
clean close):

- ``saliency_strip.png``: VisualBackProp and SmoothGrad, clean twin and condition, six moments;
- ``saliency.mp4``: the same for every step, with the live wiring (unless ``video=False``);
- ``traces.png``: neuron states by group, actions, task signals, condition onsets;
- ``time_constants.png`` (LTC) or ``gates.png`` (CfC): the liquid time constants / time gates;
- ``wiring.png``: the live wiring at the step with the largest normalised action;
- ``explain.json``: every number behind those figures, the attention numbers and the timings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_json
from lnn_control.explain.analysis import AnalysisConfig, analyse
from lnn_control.explain.attention import summarize
from lnn_control.explain.internals import SATURATED_SLOPE, neuron_groups, select_groups
from lnn_control.explain.recording import Recording, record_episode, recording_from_log
from lnn_control.explain.saliency import VANISHED_GRADIENT, SmoothGradConfig

BACKENDS = ("pybullet", "mujoco")


@dataclass(frozen=True)
class ExplainConfig:
    """What to explain and where to write it.

    policy: bundle folder / zip or shipped name. task / backend / condition (spec, e.g. ``rain:3``) /
    seed: the simulated episode (ignored with ``log``). log: an MCAP run log to explain instead.
    duration_s: stop after this much simulated time (None: the whole episode). onset_s: image
    corruptions start at this time (s). neurons: groups to plot (None: all; see
    :func:`~.internals.neuron_groups`). smoothgrad: SmoothGrad settings. video: write the video.
    strip_columns: moments in the saliency strip. out: output folder.
    """

    policy: str
    out: str
    task: str = "lane-keeping"
    backend: str = "pybullet"
    condition: str = "rain:3"
    seed: int = 1000
    log: str | None = None
    duration_s: float | None = 30.0
    onset_s: float = 0.0
    neurons: tuple[str, ...] | None = None
    smoothgrad: SmoothGradConfig = field(default_factory=SmoothGradConfig)
    video: bool = True
    strip_columns: int = 6
    progress: bool = False

    def __post_init__(self) -> None:
        from lnn_control.envs.wrappers.spec import parse_conditions
        from lnn_control.tasks import get_task

        get_task(self.task)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        parse_conditions(self.condition)  # names the allowed conditions on a bad spec
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer ≥ 0, got {self.seed!r}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0 s (or None for the whole episode), got {self.duration_s!r}")
        if not (math.isfinite(self.onset_s) and self.onset_s >= 0):
            raise ValueError(f"onset_s must be ≥ 0 s, got {self.onset_s!r}")
        if isinstance(self.strip_columns, bool) or not isinstance(self.strip_columns, int) or not 1 <= self.strip_columns <= 20:
            raise ValueError(f"strip_columns must be an integer in 1..20, got {self.strip_columns!r}")


def _round(values: np.ndarray, digits: int = 5) -> Any:
    """A 1-D (or nested 2-D) array as JSON lists, rounded, NaN/inf as null."""
    array = np.asarray(values, np.float64)
    if array.ndim > 1:
        return [_round(row, digits) for row in array]
    return [None if not math.isfinite(v) else round(v, digits) for v in array.reshape(-1)]


def run_explain(config: ExplainConfig) -> dict[str, Any]:
    """Run everything (see the module docstring); returns the JSON summary that was written."""
    import torch

    from lnn_control.explain.figures import (
        frame_indices,
        plot_internals,
        plot_traces,
        saliency_strip,
        write_png,
    )
    from lnn_control.explain.video import write_video
    from lnn_control.explain.wiring_view import WiringView
    from lnn_control.policies.bundle import load_policy
    from lnn_control.runtime.launch import resolve_policy_path

    torch.set_num_threads(1)  # batch-1 steps and small batches: one thread is fastest here
    timings: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    policy = load_policy(resolve_policy_path(config.policy))
    groups = select_groups(neuron_groups(policy.core), config.neurons)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    lap("load_s")
    recording = _recording(config, policy)
    lap("record_s")
    analysis = analyse(policy, recording, AnalysisConfig(config.smoothgrad, progress=config.progress))
    lap("analyse_s")
    attention = summarize(analysis.maps, analysis.clean_maps, recording.masks)
    lap("attention_s")

    kind = policy.config.core["type"]
    title = f"{Path(str(config.policy)).name} ({kind}) | {recording.source} | {recording.condition} | {recording.outcome}"
    files = {"saliency_strip": "saliency_strip.png", "traces": "traces.png", "wiring": "wiring.png"}
    picks = frame_indices(recording.steps, config.strip_columns)
    saliency_strip(out / files["saliency_strip"], recording.frames, analysis.maps, recording.times,
                   recording.condition, recording.clean_frames, analysis.clean_maps, config.strip_columns)
    plot_traces(out / files["traces"], recording.times, analysis.states, groups, analysis.actions,
                recording.action_names, recording.signals, recording.signal_units, recording.onsets, title)
    if analysis.internals is not None:
        name = "gates" if analysis.internals[0] == "gate" else "time_constants"
        files[name] = f"{name}.png"
        plot_internals(out / files[name], recording.times, analysis.internals[1], analysis.internals[0], groups,
                       recording.onsets, title)
    low, high = analysis.states.min(axis=0), analysis.states.max(axis=0)
    view = WiringView(policy.core, low, high, width=440, height=480)
    low_a, high_a = np.asarray(policy.action_spec.low), np.asarray(policy.action_spec.high)
    mid, half = (low_a + high_a) / 2, (high_a - low_a) / 2
    still = int(np.argmax(np.abs((analysis.actions - mid) / half).max(axis=1)))
    write_png(out / files["wiring"], view.draw(analysis.states[still], f"t={recording.times[still]:.2f}s"))
    lap("figures_s")
    if config.video:
        files["video"] = "saliency.mp4"
        panel = WiringView(policy.core, low, high, width=300, height=4 * policy.perception.config.image_height)
        write_video(out / files["video"], recording, analysis, panel, fps=1.0 / float(np.median(recording.dt)))
        lap("video_s")

    summary: dict[str, Any] = {
        "policy": str(config.policy),
        "core_type": kind,
        "source": recording.source,
        "condition": recording.condition,
        "outcome": recording.outcome,
        "steps": recording.steps,
        "duration_s": round(float(recording.times[-1] - recording.times[0]), 4) if recording.steps else 0.0,
        "onsets": [{"time_s": t, "label": label} for t, label in recording.onsets],
        "files": files,
        "saliency": {"methods": list(analysis.maps), "smoothgrad": {
            "samples": config.smoothgrad.samples, "noise": config.smoothgrad.noise, "seed": config.smoothgrad.seed,
            **_vanished_summary(analysis.smoothgrad_peaks)}},
        "attention": attention,
        "perception": _perception_summary(analysis),
        "strip_steps": picks,
        "wiring_still_step": still,
        "groups": groups,
        "series": {
            "time_s": _round(recording.times),
            "dt_s": _round(recording.dt, 6),
            "actions": {name: _round(analysis.actions[:, k]) for k, name in enumerate(recording.action_names)},
            "actions_in_run_minus_replayed_max": float(np.nanmax(np.abs(recording.actions - analysis.actions)))
            if np.isfinite(recording.actions).any() else None,
            "signals": {name: _round(values) for name, values in recording.signals.items()},
            "states": {str(n): _round(analysis.states[:, n]) for n in range(analysis.states.shape[1])},
        },
    }
    if analysis.internals is not None:
        kind_name, values = analysis.internals
        summary["series"][kind_name] = {str(n): _round(values[:, n], 6) for n in range(values.shape[1])}
    timings["total_s"] = round(time.perf_counter() - start, 3)
    summary["timing_s"] = timings
    atomic_write_json(out / "explain.json", summary)
    return summary


def _perception_summary(analysis: Any) -> dict[str, Any]:
    """Median |CNN feature| over the frames, and (LTC) the median share of saturated sensory synapses."""
    summary: dict[str, Any] = {"feature_abs_median": float(np.median(analysis.feature_magnitude))}
    if analysis.sensory_saturation is not None:
        summary["ltc_sensory_saturated_share_median"] = float(np.median(analysis.sensory_saturation))
        summary["saturated_below_slope"] = SATURATED_SLOPE
    return summary


def _vanished_summary(peaks: dict[str, np.ndarray]) -> dict[str, Any]:
    """How many frames' gradient saliency vanished (peak below ``VANISHED_GRADIENT``), per frame set,
    and the median peak (normalised action units per grey level)."""
    summary: dict[str, Any] = {"vanished_below": VANISHED_GRADIENT}
    for name, values in peaks.items():
        summary[f"vanished_{name}"] = int(np.sum(values < VANISHED_GRADIENT))
        summary[f"peak_gradient_median_{name}"] = float(np.median(values)) if values.size else None
    return summary


def _recording(config: ExplainConfig, policy: Any) -> Recording:
    if config.log is not None:
        from lnn_control.runtime.logs.runlog import read_run_log

        return recording_from_log(read_run_log(config.log), policy)
    return record_episode(policy, config.task, config.backend, config.condition, config.seed,
                          duration_s=config.duration_s, onset_s=config.onset_s)
