"""The explain figures (PNG, written atomically): saliency strip, neuron traces, time constants / gates.

- :func:`overlay`: a saliency map ``[H,W]`` in [0, 1] blended over its RGB frame (jet colour map,
  opacity grows with saliency), upscaled by an integer factor with nearest-neighbour pixels.
- :func:`saliency_strip`: columns = evenly spaced frames; rows = (clean, condition) × (VisualBackProp,
  SmoothGrad), each labelled; without clean twins two rows.
- :func:`plot_traces`: one panel per neuron group (states over time), one for the actions, one per
  task signal; condition onsets as dashed vertical lines on every panel.
- :func:`plot_internals`: LTC effective time constants (s, log scale) or CfC gates per group.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_bytes


def overlay(frame: np.ndarray, saliency: np.ndarray, scale: int = 3, strength: float = 0.75) -> np.ndarray:
    """uint8 ``[H*scale, W*scale, 3]``: ``frame`` (uint8 RGB ``[H,W,3]``) with ``saliency`` blended on."""
    import cv2

    if frame.shape[:2] != saliency.shape:
        raise ValueError(f"frame {frame.shape[:2]} and saliency {saliency.shape} must have the same size")
    level = np.clip(np.asarray(saliency, np.float32), 0.0, 1.0)
    heat = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1].astype(np.float32)
    alpha = (strength * np.sqrt(level))[..., None]
    blended = (frame.astype(np.float32) * (1.0 - alpha) + heat * alpha).astype(np.uint8)
    return cv2.resize(blended, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=cv2.INTER_NEAREST)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} as PNG")
    return atomic_write_bytes(path, data.tobytes())


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = image.copy()
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 8 + 7 * len(text)), 16), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def frame_indices(steps: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in ``range(steps)`` (all of them if fewer)."""
    if steps <= count:
        return list(range(steps))
    return [int(round(i)) for i in np.linspace(0, steps - 1, count)]


def saliency_strip(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    maps: dict[str, np.ndarray],
    times: np.ndarray,
    condition: str,
    clean_frames: np.ndarray | None = None,
    clean_maps: dict[str, np.ndarray] | None = None,
    columns: int = 6,
    scale: int = 2,
) -> Path:
    """The saliency strip PNG (see the module docstring); returns its path."""
    picks = frame_indices(frames.shape[0], columns)
    rows = []
    for method, label in (("visualbackprop", "VisualBackProp"), ("smoothgrad", "SmoothGrad")):
        variants = [(clean_frames, clean_maps, "clean")] if clean_frames is not None and clean_maps else []
        variants.append((frames, maps, condition))
        for source, source_maps, name in variants:
            # an all-zero SmoothGrad map is a frame whose gradients vanished (``analysis.Analysis``): say so
            tiles = [_label(overlay(source[i], source_maps[method][i], scale),
                            f"{label} | {name} | t={times[i]:.1f}s"
                            + (" | vanished" if method == "smoothgrad" and not source_maps[method][i].any() else ""))
                     for i in picks]
            rows.append(np.concatenate(_with_gaps(tiles, axis=1), axis=1))
    return write_png(path, np.concatenate(_with_gaps(rows, axis=0), axis=0))


def _with_gaps(tiles: list[np.ndarray], axis: int, gap: int = 3) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for tile in tiles:
        if out:
            shape = list(tile.shape)
            shape[axis] = gap
            out.append(np.full(shape, 255, np.uint8))
        out.append(tile)
    return out


def _figure_png(figure: Any, path: str | os.PathLike[str]) -> Path:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        pyplot.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot

    return pyplot


def _onsets(axes: Any, onsets: Sequence[tuple[float, str]], label: bool) -> None:
    for time, text in onsets:
        if time <= 0.0 and text == "start":
            continue
        axes.axvline(time, color="black", linestyle="--", linewidth=0.9, alpha=0.7)
        if label:
            axes.annotate(text, (time, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                          textcoords="offset points", fontsize=7)


def plot_traces(
    path: str | os.PathLike[str],
    times: np.ndarray,
    states: np.ndarray,
    groups: dict[str, list[int]],
    actions: np.ndarray,
    action_names: Sequence[str],
    signals: dict[str, np.ndarray],
    signal_units: dict[str, str],
    onsets: Sequence[tuple[float, str]],
    title: str,
) -> Path:
    """Neuron traces, actions and task signals on one time axis (see the module docstring)."""
    pyplot = _pyplot()
    panels = len(groups) + 1 + len(signals)
    heights = [2.0] * len(groups) + [1.3] * (1 + len(signals))
    figure, axes = pyplot.subplots(panels, 1, figsize=(10, sum(heights) + 0.6), sharex=True,
                                   gridspec_kw={"height_ratios": heights}, squeeze=False)
    axes = axes[:, 0]
    colours = pyplot.get_cmap("tab20")
    for axis, (name, neurons) in zip(axes, groups.items()):
        for k, neuron in enumerate(neurons):
            axis.plot(times, states[:, neuron], linewidth=0.9, color=colours(k % 20), label=str(neuron))
        axis.set_ylabel(f"{name}\nstate", fontsize=8)
        if len(neurons) <= 20:
            axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6, frameon=False,
                        ncol=1 + len(neurons) // 10, title="neuron", title_fontsize=6)
    axis = axes[len(groups)]
    for k, name in enumerate(action_names):
        axis.plot(times, actions[:, k], linewidth=1.0, label=name)
    axis.set_ylabel("action", fontsize=8)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    for axis, (name, values) in zip(axes[len(groups) + 1:], signals.items()):
        axis.plot(times, values, linewidth=1.0, color="#444444")
        axis.set_ylabel(f"{name}\n({signal_units.get(name, '')})", fontsize=8)
    for index, axis in enumerate(axes):
        _onsets(axis, onsets, label=index == 0)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title, fontsize=9)
    return _figure_png(figure, path)


def plot_internals(
    path: str | os.PathLike[str],
    times: np.ndarray,
    values: np.ndarray,
    kind: str,
    groups: dict[str, list[int]],
    onsets: Sequence[tuple[float, str]],
    title: str,
) -> Path:
    """LTC time constants (``kind="tau_s"`` / ``"cfc_tau_s"``, log scale, s) or CfC gates (``"gate"``) per group."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(len(groups), 1, figsize=(10, 1.9 * len(groups) + 0.6), sharex=True, squeeze=False)
    colours = pyplot.get_cmap("tab20")
    ylabel = {"tau_s": "τ (s)", "cfc_tau_s": "decay τ (s)", "gate": "time gate s"}[kind]
    for axis, (name, neurons) in zip(axes[:, 0], groups.items()):
        for k, neuron in enumerate(neurons):
            axis.plot(times, values[:, neuron], linewidth=0.9, color=colours(k % 20), label=str(neuron))
        if kind != "gate":
            axis.set_yscale("log")
        else:
            axis.set_ylim(-0.02, 1.02)
        axis.set_ylabel(f"{name}\n{ylabel}", fontsize=8)
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6, frameon=False,
                    ncol=1 + len(neurons) // 10, title="neuron", title_fontsize=6)
        axis.grid(alpha=0.3, which="both")
        axis.tick_params(labelsize=7)
        _onsets(axis, onsets, label=axis is axes[0, 0])
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title, fontsize=9)
    return _figure_png(figure, path)
