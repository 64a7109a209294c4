"""Aggregate a study's cell files into ``report.json``, ``report.md`` and PNG plots.

Everything in ``report.json["results"]`` is computed from the cell files only and does not depend
on where or in which order cells ran (wall times, worker hosts and step latencies sit apart in
``report.json["timing"]``). Each result row lists the cell files it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lnn_control.atomic import atomic_write_json, atomic_write_text
from lnn_control.study import stats
from lnn_control.study.architectures import ARCHITECTURES, REFERENCE
from lnn_control.study.cells import DATA_CELL, NOMINAL_DT_SUFFIX, EvalCell, TrainCell, cell_file
from lnn_control.study.config import StudyConfig

#: Task metrics per task: (aggregate key, label, lower is better).
TASK_METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "lane-keeping": [
        ("mean_abs_lateral_error_m", "mean |lateral error| (m)", True),
        ("departures_per_km", "departures/km", True),
    ],
    "drone-forest": [
        ("collision_rate", "collision rate", True),
        ("mean_time_to_target_s", "time to target (s)", True),
        ("mean_min_clearance_m", "closest approach (m)", False),
    ],
}
HEAVY_RAIN = ("rain:4", "rain:5")
PARAMETER_CLAIM = "parameters: the NCP does with ~1/10 of the parameters what a conventional net needs"
WIRING_CLAIM = "LTC (chemical synapses) vs CT-RNN (additive synapses) on the same NCP wiring"


def eval_cells(study: StudyConfig) -> list[EvalCell]:
    """Every evaluation cell of the study, in report order."""
    cells = []
    for arch in study.architectures:
        for seed in study.seeds:
            for backend in study.eval.backends:
                for condition in study.condition_specs():
                    cells.append(EvalCell(arch, seed, backend, condition))
                    if study.eval.timing_ablation and condition.startswith("framedrop:"):
                        cells.append(EvalCell(arch, seed, backend, condition, "nominal"))
    return cells


def train_cells(study: StudyConfig) -> list[TrainCell]:
    return [TrainCell(arch, seed) for arch in study.architectures for seed in study.seeds]


def labels(study: StudyConfig) -> list[str]:
    """Condition labels in report order (``framedrop:s~nominal-dt`` after its measured twin)."""
    out = []
    for condition in study.condition_specs():
        out.append(condition)
        if study.eval.timing_ablation and condition.startswith("framedrop:"):
            out.append(condition + NOMINAL_DT_SUFFIX)
    return out


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def build_report(out: str | Path, study: StudyConfig) -> dict[str, Any]:
    """Read every cell file, compute the results and write report.json, report.md and plots."""
    root = Path(out)
    data = _read(cell_file(root, DATA_CELL))
    seen = list(dict.fromkeys(data["collect"]["conditions"]))  # collected condition specs, in order
    trains = {c.model: _read(cell_file(root, c.id)) for c in train_cells(study)}
    evals = {c.id: _read(cell_file(root, c.id)) for c in eval_cells(study)}
    metrics = TASK_METRICS[study.task]
    rows = _rows(study, evals, metrics)
    for row in rows:
        row["training_exposure"] = training_exposure(row["condition"], seen)
    architectures = _architectures(study, trains)
    results = {
        "study": study.name,
        "task": study.task,
        "dataset": {
            "hash": data["dataset_hash"], "episodes": data["episodes"], "steps": data["steps"],
            "cell": "cells/data.json",
        },
        "training": {"per_model_dagger": study.train.per_model_dagger, "identical_data": not study.train.per_model_dagger,
                     "collected_conditions": seen},
        "interval_method": "seed-level cluster bootstrap (95 %, percentile) over training seeds; Wilson with one seed",
        "architectures": architectures,
        "rows": rows,
        "claims": _claims(study, rows, architectures, metrics),
    }
    timing: dict[str, Any] = {
        "latency_ms": {
            arch: stats.mean_interval([trains[f"{arch}-s{s}"]["latency_ms"] for s in study.seeds])["mean"]
            for arch in study.architectures
        },
        "cell_seconds": {
            "data": data["seconds"],
            "train": sum(t["seconds"] for t in trains.values()),
            "eval": sum(e["seconds"] for e in evals.values()),
        },
        "workers": sorted({f"{c['worker']['host']}:{c['worker']['pid']}" for c in [data, *trains.values(), *evals.values()]}),
    }
    if study.attention.enabled:
        from lnn_control.study.attention import attention_cells, attention_rows

        attention = {c.id: _read(cell_file(root, c.id)) for c in attention_cells(study)}
        results["attention"] = {"seconds": study.attention.seconds, "episode_seed": study.eval.seed,
                                "rows": attention_rows(study, attention)}
        timing["cell_seconds"]["attention"] = sum(a["seconds"] for a in attention.values())
    report = {"study": study.to_dict(), "results": results, "timing": timing}
    atomic_write_json(root / "report.json", report)
    plots = _plots(root, study, rows)
    atomic_write_text(root / "report.md", _markdown(study, results, timing, plots, metrics))
    return report


# ------------------------------------------------------------------------------------ results
def training_exposure(label: str, seen: list[str]) -> str:
    """How a row's condition relates to the collected training conditions ``seen`` (spec strings):
    ``"same"`` (this spec was collected), ``"milder"`` (each of its shifts was collected at some
    severity, not this one) or ``"unseen"`` (at least one shift never appears in the training data)."""
    from lnn_control.envs.wrappers.spec import parse_conditions

    spec = label.removesuffix(NOMINAL_DT_SUFFIX)
    if spec in seen:
        return "same"
    collected = {c.name for s in seen for c in parse_conditions(s)}
    return "milder" if all(c.name in collected for c in parse_conditions(spec)) else "unseen"


def _rows(study: StudyConfig, evals: dict[str, dict], metrics: list) -> list[dict[str, Any]]:
    rows = []
    cells_by_key: dict[tuple[str, str, str], list[tuple[EvalCell, dict]]] = {}
    for cell in eval_cells(study):
        cells_by_key.setdefault((cell.arch, cell.backend, cell.label), []).append((cell, evals[cell.id]))
    for arch in study.architectures:
        for backend in study.eval.backends:
            clean = None
            for label in labels(study):
                group = cells_by_key[(arch, backend, label)]
                outcomes = [[bool(e["success"]) for e in result["episodes"]] for _, result in group]
                success = stats.success_interval(outcomes)
                row: dict[str, Any] = {
                    "arch": arch,
                    "backend": backend,
                    "condition": label,
                    "success": success,
                    "success_per_seed": {str(c.seed): r["aggregate"]["success_rate"] for c, r in group},
                    "metrics": {
                        key: stats.mean_interval([r["aggregate"].get(key) for _, r in group]) for key, _, _ in metrics
                    },
                    "cells": [f"cells/{c.id}.json" for c, _ in group],
                }
                if label == "clean":
                    clean = success["mean"]
                row["relative_to_clean"] = (success["mean"] / clean) if clean else None
                rows.append(row)
    return rows


def _architectures(study: StudyConfig, trains: dict[str, dict]) -> dict[str, Any]:
    out = {}
    for arch in study.architectures:
        first = trains[f"{arch}-s{study.seeds[0]}"]
        out[arch] = {
            "family": ARCHITECTURES[arch].family,
            "description": ARCHITECTURES[arch].description,
            "parameters": first["parameters"],
            "gradient_steps": {str(s): trains[f"{arch}-s{s}"]["gradient_steps"] for s in study.seeds},
            "val_loss": {str(s): trains[f"{arch}-s{s}"]["val_loss_per_stage"] for s in study.seeds},
            "model_sha256": {str(s): trains[f"{arch}-s{s}"]["model_sha256"] for s in study.seeds},
            "cells": [f"cells/train/{arch}-s{s}.json" for s in study.seeds],
        }
    return out


def _find(rows: list[dict], arch: str, backend: str, label: str) -> dict | None:
    return next((r for r in rows if (r["arch"], r["backend"], r["condition"]) == (arch, backend, label)), None)


def _row(rows: list[dict], arch: str, backend: str, label: str) -> dict:
    """:func:`_find` for a row every complete study has."""
    row = _find(rows, arch, backend, label)
    if row is None:
        raise KeyError(f"study report: no result row for {arch} {backend} {label}; re-run the study to finish it")
    return row


def _per_seed(row: dict) -> dict[int, float]:
    return {int(k): float(v) for k, v in row["success_per_seed"].items()}


def _overall_per_seed(rows: list[dict], arch: str, study: StudyConfig) -> dict[int, float]:
    """Per seed: success averaged over every backend and condition (ablation cells excluded)."""
    chosen = [r for r in rows if r["arch"] == arch and not r["condition"].endswith(NOMINAL_DT_SUFFIX)]
    return {s: sum(_per_seed(r)[s] for r in chosen) / len(chosen) for s in study.seeds}


def _verdict(diff: dict, better: str, worse: str) -> str:
    if diff["mean"] is None:
        return "not measured"
    if diff["low"] is None:
        return "one seed only: no interval, no verdict"
    if diff["low"] == diff["high"] == 0.0:
        return "no difference in any seed"
    if not diff["excludes_zero"]:
        return "no evidence either way (the 95 % interval of the difference includes 0)"
    return better if diff["mean"] > 0 else worse


def _diff_text(diff: dict) -> str:
    if diff["mean"] is None:
        return "n/a"
    if diff["low"] is None:
        return f"{100 * diff['mean']:+.0f} points (one seed, no interval)"
    return f"{100 * diff['mean']:+.0f} points [{100 * diff['low']:+.0f}, {100 * diff['high']:+.0f}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def _claims(study: StudyConfig, rows: list[dict], architectures: dict, metrics: list) -> list[dict[str, Any]]:
    claims: list[dict[str, Any]] = []
    conventional = [a for a in study.architectures if ARCHITECTURES[a].family in ("conventional", "memoryless")]
    error_key, error_label, _ = metrics[0]
    # (1) heavy rain: NCP vs the best conventional net
    details = []
    for backend in study.eval.backends:
        for label in HEAVY_RAIN:
            ncp = _find(rows, REFERENCE, backend, label)
            candidates = [r for a in conventional if (r := _find(rows, a, backend, label))]
            if ncp is None or not candidates:
                continue
            best = max(candidates, key=lambda r: (r["success"]["mean"], -(r["metrics"][error_key]["mean"] or 0.0)))
            diff = stats.paired_difference(_per_seed(ncp), _per_seed(best))
            ncp_error, best_error = ncp["metrics"][error_key]["mean"], best["metrics"][error_key]["mean"]
            relative = (ncp_error - best_error) / best_error if ncp_error is not None and best_error else None
            details.append({
                "backend": backend, "condition": label, "best_conventional": best["arch"],
                "success_ncp": ncp["success"]["mean"], "success_best_conventional": best["success"]["mean"],
                "success_difference": diff, error_key + "_ncp": ncp_error, error_key + "_best_conventional": best_error,
                "error_relative_difference": relative,
                "verdict": _verdict(diff, "NCP more successful", "best conventional net more successful"),
                "text": (
                    f"{backend} {label}: success NCP {_pct(ncp['success']['mean'])} vs {best['arch']} "
                    f"{_pct(best['success']['mean'])} (difference {_diff_text(diff)}); "
                    f"{error_label} NCP {_fmt(ncp_error)} vs {_fmt(best_error)}"
                    + (f" ({100 * relative:+.0f} %, the claim is −40 %)" if relative is not None else "")
                ),
            })
    claims.append({
        "claim": "heavy rain (rain:4, rain:5): the NCP keeps its lane/flight better than the best conventional net, with ~40 % lower error",
        "details": details,
        "verdict": "; ".join(f"{d['backend']} {d['condition']}: {d['verdict']}" for d in details) or "not measured (no rain:4/5 or no conventional net in the study)",
    })
    # (2) parameters: what size of conventional net matches the NCP
    if REFERENCE in study.architectures and conventional:
        reference = _overall_per_seed(rows, REFERENCE, study)
        ref_mean = sum(reference.values()) / len(reference)
        ref_params = architectures[REFERENCE]["parameters"]["core"]
        entries = []
        for arch in sorted(conventional, key=lambda a: architectures[a]["parameters"]["core"]):
            scores = _overall_per_seed(rows, arch, study)
            core = architectures[arch]["parameters"]["core"]
            difference = stats.paired_difference(scores, reference)
            entries.append({
                "arch": arch, "core_parameters": core, "ratio_to_ncp": core / ref_params,
                "mean_success": sum(scores.values()) / len(scores), "difference_to_ncp": difference,
                "text": (
                    f"{arch}: {core} core parameters ({core / ref_params:.1f}× the NCP's), mean success "
                    f"{_pct(sum(scores.values()) / len(scores))} vs NCP {_pct(ref_mean)}; difference {_diff_text(difference)}"
                ),
            })
        matching = [e for e in entries if e["mean_success"] >= ref_mean]
        verdict = (
            "neither the NCP nor any conventional net succeeded in any episode: no comparison"
            if ref_mean == 0 and all(e["mean_success"] == 0 for e in entries) else
            f"smallest conventional net at least as successful (mean over all conditions): {matching[0]['arch']} "
            f"with {matching[0]['core_parameters']} core parameters ({matching[0]['ratio_to_ncp']:.1f}× the NCP's {ref_params})"
            if matching else f"no tested conventional net reached the NCP's mean success ({_pct(ref_mean)})"
        )
        claims.append({"claim": PARAMETER_CLAIM, "ncp_core_parameters": ref_params, "ncp_mean_success": ref_mean,
                       "details": entries, "verdict": verdict})
    else:
        claims.append({"claim": PARAMETER_CLAIM, "details": [], "verdict": f"not measured (needs {REFERENCE} and a conventional net)"})
    # (3) irregular frame timing: measured vs nominal dt
    details = []
    for row in rows:
        if not row["condition"].endswith(NOMINAL_DT_SUFFIX):
            continue
        measured = _row(rows, row["arch"], row["backend"], row["condition"][: -len(NOMINAL_DT_SUFFIX)])
        diff = stats.paired_difference(_per_seed(measured), _per_seed(row))
        details.append({
            "arch": row["arch"], "backend": row["backend"], "condition": measured["condition"],
            "success_measured_dt": measured["success"]["mean"], "success_nominal_dt": row["success"]["mean"],
            "difference": diff,
            "verdict": _verdict(diff, "the measured dt helps", "the measured dt hurts"),
            "text": (
                f"{row['arch']} {row['backend']} {measured['condition']}: success with the measured dt "
                f"{_pct(measured['success']['mean'])}, told the nominal dt {_pct(row['success']['mean'])}; "
                f"difference {_diff_text(diff)}"
            ),
        })
    claims.append({
        "claim": "irregular frame timing: continuous-time cores use the measured dt (LSTM/GRU/MLP ignore dt, so their two numbers must agree)",
        "details": details,
        "verdict": "; ".join(f"{d['arch']} {d['backend']} {d['condition']}: {d['verdict']}" for d in details)
        or "not measured (no framedrop condition with timing_ablation)",
    })
    # (4) LTC vs CT-RNN on the same wiring
    if REFERENCE in study.architectures and "ctrnn_ncp19" in study.architectures:
        ltc, ctrnn = _overall_per_seed(rows, REFERENCE, study), _overall_per_seed(rows, "ctrnn_ncp19", study)
        diff = stats.paired_difference(ltc, ctrnn)
        claims.append({
            "claim": WIRING_CLAIM,
            "difference_ltc_minus_ctrnn": diff,
            "details": [{"text": f"LTC − CT-RNN success, paired by seed: {_diff_text(diff)}"}],
            "verdict": _verdict(diff, "LTC more successful", "CT-RNN more successful")
            + f" (mean success over all conditions: LTC {_pct(sum(ltc.values()) / len(ltc))}, CT-RNN {_pct(sum(ctrnn.values()) / len(ctrnn))})",
        })
    else:
        claims.append({"claim": WIRING_CLAIM, "verdict": f"not measured (needs {REFERENCE} and ctrnn_ncp19)"})
    return claims


# ---------------------------------------------------------------------------------- markdown
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _interval(success: dict) -> str:
    return f"{100 * success['mean']:.0f} % [{100 * success['low']:.0f}, {100 * success['high']:.0f}]"


def _markdown(study: StudyConfig, results: dict, timing: dict, plots: list[str], metrics: list) -> str:
    lines = [
        f"# Robustness study `{study.name}` ({study.task})",
        "",
        f"Training recipe: `{study.training_launch}`; seeds {study.seeds}; "
        f"{study.eval.episodes} held-out episodes per cell (seeds {study.eval.seed}…); backends {study.eval.backends}.",
        f"Dataset: {results['dataset']['episodes']} episodes, {results['dataset']['steps']} steps, "
        f"SHA-256 `{results['dataset']['hash']}` — "
        + ("every model trained on exactly these episodes." if results["training"]["identical_data"]
           else "every model started from these episodes, then ran its own DAgger rounds (per-model DAgger)."),
        f"Intervals: {results['interval_method']}. Every number comes from the cell files listed in `report.json`.",
        f"Seen in training: {', '.join(results['training']['collected_conditions'])} (the collected conditions). "
        "In the tables a condition marked † never appears in the training data (no episode with that "
        "shift at any severity); unmarked ones were collected at this or a milder severity "
        "(`training_exposure` in `report.json`). Training-time image augmentation is in the recipe.",
        "",
        "## Architectures",
        "",
        "| architecture | family | core params | policy params | synapses | gradient steps (per seed) | step latency (ms, median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arch, info in results["architectures"].items():
        p = info["parameters"]
        steps = sorted(set(info["gradient_steps"].values()))
        lines.append(
            f"| {arch} | {info['family']} | {p['core']} | {p['policy']} | {p['synapses'] or '–'} | "
            f"{', '.join(map(str, steps))} | {_fmt(timing['latency_ms'][arch], 2)} |"
        )
    lines += ["", "Latency: `policy.act` at batch 1, one thread, on the machine that trained the model (load-dependent).", ""]
    all_labels = labels(study)
    for backend in study.eval.backends:
        marked = [label + (" †" if training_exposure(label, results["training"]["collected_conditions"]) == "unseen"
                           else "") for label in all_labels]
        lines += [f"## Success rate, {backend} (mean and 95 % interval)", "",
                  "| architecture | " + " | ".join(marked) + " |", "|---" * (len(all_labels) + 1) + "|"]
        for arch in study.architectures:
            cells = [_interval(r["success"]) for label in all_labels if (r := _find(results["rows"], arch, backend, label))]
            lines.append(f"| {arch} | " + " | ".join(cells) + " |")
        lines += ["", f"### Task metrics, {backend} (mean over seeds) and success relative to clean", "",
                  "| architecture | condition | " + " | ".join(label for _, label, _ in metrics) + " | relative to clean |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        for row in results["rows"]:
            if row["backend"] != backend:
                continue
            values = [_fmt(row["metrics"][key]["mean"]) for key, _, _ in metrics]
            lines.append(f"| {row['arch']} | {row['condition']} | " + " | ".join(values) + f" | {_fmt(row['relative_to_clean'], 2)} |")
        lines.append("")
    if "attention" in results:
        from lnn_control.study.attention import attention_markdown

        lines += attention_markdown(results["attention"]["rows"], results["attention"]["seconds"])
    lines += ["## Claims and measured verdicts", ""]
    for index, claim in enumerate(results["claims"], start=1):
        lines.append(f"{index}. **{claim['claim']}** — {claim['verdict']}")
        for detail in claim.get("details", []):
            if "text" in detail:
                lines.append(f"   - {detail['text']}")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- plots
def _plots(root: Path, study: StudyConfig, rows: list[dict]) -> list[str]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from lnn_control.atomic import atomic_write_bytes

    written = []
    names = list(study.eval.conditions)
    for backend in study.eval.backends:
        if names:
            fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 2.2, 3.2), squeeze=False)
            for ax, name in zip(axes[0], names):
                severities = [0, *study.eval.conditions[name]]
                for arch in study.architectures:
                    picked = [_row(rows, arch, backend, "clean" if s == 0 else f"{name}:{s}") for s in severities]
                    mean = [r["success"]["mean"] for r in picked]
                    (line,) = ax.plot(severities, mean, marker="o", label=arch)
                    ax.fill_between(severities, [r["success"]["low"] for r in picked], [r["success"]["high"] for r in picked],
                                    alpha=0.15, color=line.get_color())
                    found = [_find(rows, arch, backend, f"{name}:{s}{NOMINAL_DT_SUFFIX}") for s in severities[1:]]
                    ablation = [r for r in found if r is not None]
                    if len(ablation) == len(found):
                        ax.plot(severities, [mean[0]] + [r["success"]["mean"] for r in ablation], linestyle="--",
                                marker="x", color=line.get_color(), label=f"{arch} (nominal dt)")
                ax.set_title(f"{name} ({backend})")
                ax.set_xlabel("severity (0 = clean)")
                ax.set_ylim(-0.02, 1.02)
                ax.set_xticks(severities)
                ax.grid(alpha=0.3)
            axes[0][0].set_ylabel("success rate")
            legend: dict[str, Any] = {}
            for ax in axes[0]:
                for handle, label in zip(*ax.get_legend_handles_labels()):
                    legend.setdefault(label, handle)
            fig.legend(list(legend.values()), list(legend), fontsize=7, loc="center right")
            fig.tight_layout(rect=(0, 0, 0.8, 1))
            written.append(_save(fig, root / f"plots/success_vs_severity_{backend}.png", plt, io, atomic_write_bytes))
        all_labels = labels(study)
        grid = np.array([[_row(rows, a, backend, label)["success"]["mean"] for label in all_labels] for a in study.architectures])
        fig, ax = plt.subplots(figsize=(3.0 + 0.9 * len(all_labels), 2.2 + 0.45 * len(study.architectures)))
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(all_labels)), all_labels, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(study.architectures)), study.architectures, fontsize=8)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.6 else "black")
        fig.colorbar(image, ax=ax, label="success rate")
        ax.set_title(f"success rate, {backend}")
        fig.tight_layout()
        written.append(_save(fig, root / f"plots/heatmap_{backend}.png", plt, io, atomic_write_bytes))
    return written


def _save(fig: Any, path: Path, plt: Any, io: Any, write: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write(path, buffer.getvalue())
    return f"plots/{path.name}"
