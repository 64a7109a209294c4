"""``plot_wiring(wiring, path)``: a PNG of a wiring, neurons in columns by layer, synapses coloured by polarity."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from lnn_control.atomic import atomic_write_bytes
from lnn_control.nn.wirings import Wiring

EXCITATORY = "#2a9d3f"
INHIBITORY = "#d62728"
_NODE_COLOURS = {"sensory": "#9e9e9e", "inter": "#4c72b0", "command": "#8172b2", "motor": "#dd8452"}


def _column(count: int) -> np.ndarray:
    """Vertical positions of ``count`` nodes centred on 0, one unit apart."""
    return np.arange(count, dtype=float)[::-1] - (count - 1) / 2.0


def plot_wiring(wiring: Wiring, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw ``wiring`` (built) to the PNG ``path`` (written atomically) and return the path.

    Columns left to right: sensory features, then ``wiring.layers`` in signal-flow order (for an NCP:
    inter, command, motor). Green synapses are excitatory, red inhibitory; recurrent synapses inside a
    layer are drawn as arcs.
    """
    if not isinstance(wiring, Wiring):
        raise ValueError(f"wiring must be a lnn_control.nn.wirings.Wiring, got {type(wiring).__name__}")
    sensory = wiring.sensory_adjacency  # [F, N]
    if sensory is None:
        raise ValueError("wiring is not built: call wiring.build(input_dim) before plotting")
    input_dim = int(sensory.shape[0])
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {os.fspath(path)!r}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    positions: dict[tuple[str, int], tuple[float, float]] = {}
    # sensory features squeezed into the height of the tallest layer
    sensory_y = _column(input_dim) * (max(len(g) for g in wiring.layers) / input_dim)
    for i, y in enumerate(sensory_y):
        positions[("s", i)] = (0.0, float(y))
    for column, group in enumerate(wiring.layers, start=1):
        for neuron, y in zip(group.tolist(), _column(len(group))):
            positions[("n", neuron)] = (float(column) * 2.0, float(y))
    height = max(4.0, 0.28 * max(input_dim, max(len(g) for g in wiring.layers)))
    figure, axes = pyplot.subplots(figsize=(2.2 * (len(wiring.layers) + 1) + 1.5, height))
    try:
        for src, dst in zip(*np.nonzero(sensory)):
            (x0, y0), (x1, y1) = positions[("s", int(src))], positions[("n", int(dst))]
            colour = EXCITATORY if sensory[src, dst] > 0 else INHIBITORY
            axes.plot([x0, x1], [y0, y1], color=colour, alpha=0.25, linewidth=0.6, zorder=1)
        for src, dst in zip(*np.nonzero(wiring.adjacency)):
            (x0, y0), (x1, y1) = positions[("n", int(src))], positions[("n", int(dst))]
            colour = EXCITATORY if wiring.adjacency[src, dst] > 0 else INHIBITORY
            bend = 0.6 if x0 == x1 else 0.0
            axes.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={bend}",
                                           arrowstyle="-|>", mutation_scale=8, color=colour, alpha=0.7,
                                           linewidth=0.9, zorder=2))
        xs, ys = zip(*(positions[("s", i)] for i in range(input_dim)))
        axes.scatter(xs, ys, s=25, color=_NODE_COLOURS["sensory"], zorder=3)
        for neuron in range(wiring.units):
            x, y = positions[("n", neuron)]
            axes.scatter([x], [y], s=160, color=_NODE_COLOURS[wiring.neuron_type(neuron)], zorder=3,
                         edgecolors="black", linewidths=0.5)
            axes.annotate(str(neuron), (x, y), ha="center", va="center", fontsize=6, color="white", zorder=4)
        labels = ["sensory"] + (["inter", "command", "motor"] if len(wiring.layers) == 3 else
                                [f"layer {i}" for i in range(len(wiring.layers))])
        axes.set_xticks([0.0] + [2.0 * c for c in range(1, len(wiring.layers) + 1)], labels)
        axes.set_yticks([])
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        legend = [Line2D([0], [0], color=EXCITATORY, label="excitatory"),
                  Line2D([0], [0], color=INHIBITORY, label="inhibitory")]
        axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        axes.set_title(title or f"{wiring.kind}: {wiring.units} neurons, {wiring.synapse_count} synapses, "
                       f"{wiring.sensory_synapse_count} sensory synapses", fontsize=9)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    finally:
        pyplot.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
