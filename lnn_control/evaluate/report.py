"""Present evaluation results: a terminal table and a bar plot (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def format_table(results: dict[str, Any]) -> str:
    """One row per condition, one column per aggregate metric (names from the task)."""
    conditions = results["conditions"]
    if not conditions:
        return "(no conditions)"
    columns = list(next(iter(conditions.values()))["aggregate"].keys())
    header = ["condition", *columns]
    rows = [[name, *(_fmt(cond["aggregate"][c]) for c in columns)] for name, cond in conditions.items()]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: str | Path, metrics: tuple[str, ...] = ("success_rate",)) -> Path:
    """Bar chart of the chosen aggregate metrics per condition, written atomically as PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lnn_control.atomic import atomic_write_bytes

    conditions = list(results["conditions"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4, 1.2 * len(conditions)) * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        values = [results["conditions"][c]["aggregate"].get(metric, float("nan")) for c in conditions]
        ax.bar(range(len(conditions)), values, color="#3b7dd8")
        ax.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right")
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    cfg = results["config"]
    fig.suptitle(f"{cfg['task']} on {cfg['backend']}, {cfg['episodes']} held-out episodes per condition")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
