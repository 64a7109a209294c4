"""Attention robustness in a study (optional: ``attention: {enabled: true}`` in the study file).

One *attention cell* per (model, backend, condition): ``lnn-control explain``'s analysis
(:mod:`lnn_control.explain`) on the first ``attention.seconds`` of the held-out episode ``eval.seed``
under that condition - SSIM between the saliency maps of the frames the policy saw and of their clean
twins, and the share of saliency mass on the task's privileged masks (lane: road, sky; drone:
trunks, target, sky), for VisualBackProp and SmoothGrad. Cell files::

    cells/attention/<arch>-s<seed>/<backend>/<cond>.json

The report gains a table of the means over seeds per architecture and condition. Studies without
the section (or with ``enabled: false``) plan no attention cells and report as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnn_control.atomic import atomic_write_json
from lnn_control.parallel.executor import describe_worker
from lnn_control.study.cells import cell_file, env_kwargs, model_dir, running_marker
from lnn_control.study.config import StudyConfig

METHODS = ("visualbackprop", "smoothgrad")


@dataclass(frozen=True)
class AttentionCell:
    arch: str
    seed: int
    backend: str
    condition: str

    @property
    def model(self) -> str:
        return f"{self.arch}-s{self.seed}"

    @property
    def id(self) -> str:
        safe = self.condition.replace(":", "-").replace("+", "_")
        return f"attention/{self.model}/{self.backend}/{safe}"


def attention_cells(study: StudyConfig) -> list[AttentionCell]:
    """Every attention cell of the study (none unless ``attention.enabled``), in report order."""
    if not study.attention.enabled:
        return []
    return [
        AttentionCell(arch, seed, backend, condition)
        for arch in study.architectures
        for seed in study.seeds
        for backend in study.eval.backends
        for condition in study.condition_specs()
    ]


def run_attention_cell(out: str, study: StudyConfig, launch: Any, cell: AttentionCell) -> dict[str, Any]:
    """Explain one trained model under one condition (see the module docstring); write its cell file."""
    import torch

    from lnn_control.explain.analysis import AnalysisConfig, analyse
    from lnn_control.explain.attention import summarize
    from lnn_control.explain.recording import record_episode
    from lnn_control.explain.saliency import VANISHED_GRADIENT, SmoothGradConfig
    from lnn_control.policies.bundle import load_policy

    torch.set_num_threads(1)
    root = Path(out)
    with running_marker(root, cell.id):
        started = time.perf_counter()
        policy = load_policy(model_dir(root, cell.model) / "policy")
        recording = record_episode(
            policy, study.task, cell.backend, cell.condition, study.eval.seed, duration_s=study.attention.seconds,
            env_kwargs={**env_kwargs(study, launch), **study.eval.env_kwargs},
        )
        analysis = analyse(policy, recording, AnalysisConfig(SmoothGradConfig(samples=study.attention.samples)))
        summary = summarize(analysis.maps, analysis.clean_maps, recording.masks)
        for method in METHODS:
            summary[method].pop("per_frame", None)
        result = {
            "cell": cell.id,
            "arch": cell.arch,
            "seed": cell.seed,
            "backend": cell.backend,
            "condition": cell.condition,
            "episode_seed": study.eval.seed,
            "steps": recording.steps,
            "attention": summary,
            # frames whose gradient saliency vanished (blank SmoothGrad maps, left out of the numbers above)
            "smoothgrad_vanished": {name: int((peaks < VANISHED_GRADIENT).sum())
                                    for name, peaks in analysis.smoothgrad_peaks.items()},
            "seconds": round(time.perf_counter() - started, 3),
            "worker": describe_worker(),
        }
        atomic_write_json(cell_file(root, cell.id), result)
    return result


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def attention_rows(study: StudyConfig, cells: dict[str, dict]) -> list[dict[str, Any]]:
    """Per (architecture, backend, condition): means over seeds of SSIM and mass shares per method."""
    rows = []
    for arch in study.architectures:
        for backend in study.eval.backends:
            for condition in study.condition_specs():
                picked = [cells[AttentionCell(arch, seed, backend, condition).id] for seed in study.seeds]
                row: dict[str, Any] = {"arch": arch, "backend": backend, "condition": condition,
                                       "cells": [f"cells/{c['cell']}.json" for c in picked]}
                for method in METHODS:
                    entries = [c["attention"][method] for c in picked]
                    masks = sorted({name for e in entries for name in e.get("mass_share", {})})
                    row[method] = {
                        "ssim_clean_vs_condition": _mean([e.get("ssim_clean_vs_condition") for e in entries]),
                        "mass_share": {m: _mean([e.get("mass_share", {}).get(m, {}).get("condition") for e in entries])
                                       for m in masks},
                    }
                rows.append(row)
    return rows


def attention_markdown(rows: list[dict[str, Any]], seconds: float) -> list[str]:
    """The report's attention section (Markdown lines)."""
    if not rows:
        return []
    masks = sorted(rows[0]["visualbackprop"]["mass_share"])
    header = ["architecture", "backend", "condition", "SSIM VBP", "SSIM SmoothGrad"]
    header += [f"{m} mass VBP / SmoothGrad" for m in masks]
    lines = ["## Attention (saliency, `lnn-control explain`)", "",
             f"First {seconds:g} s of one held-out episode per cell; means over seeds. SSIM: saliency of each frame vs "
             "its clean twin (1 = looks at the same places); mass: share of the saliency on the simulator's mask.", "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for row in rows:
        vbp, grad = row["visualbackprop"], row["smoothgrad"]
        cells = [row["arch"], row["backend"], row["condition"], fmt(vbp["ssim_clean_vs_condition"]),
                 fmt(grad["ssim_clean_vs_condition"])]
        cells += [f"{fmt(vbp['mass_share'].get(m))} / {fmt(grad['mass_share'].get(m))}" for m in masks]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
