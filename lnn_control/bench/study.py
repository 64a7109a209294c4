"""``lnn-control bench study``: cell throughput of a study on the local process pool, per worker count
(#11's target: ``--workers 2`` runs ≥ 1.7× the cells per minute of ``--workers 1``).

The data cell (one collection, serial by nature) runs once into a template folder; every timed run
starts from a copy of that template, so it times exactly the train and evaluation cells, the part
that runs in parallel, pool start-up included. Cells carry their own seeds, so every run must
produce the same report results; the bench checks that and says so in its output.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.7


@dataclass(frozen=True)
class StudyBenchSettings:
    """launch: study file or shipped name; workers: the worker counts to time (the first is the
    baseline of the ratios); repeats: timed runs per worker count (the median is reported)."""

    launch: str = "study_bench"
    workers: tuple[int, ...] = (1, 2)
    repeats: int = 3

    def __post_init__(self) -> None:
        if not self.workers or any(w < 1 for w in self.workers):
            raise ValueError(f"workers must be worker counts ≥ 1, got {self.workers}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be ≥ 1, got {self.repeats}")


def run_study_bench(settings: StudyBenchSettings, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Time the study's train + evaluation cells for each worker count; medians, ratios, same-results check."""
    from lnn_control.study.cells import DATA_CELL, cell_file
    from lnn_control.study.config import load_study
    from lnn_control.study.scheduler import run_study

    study, study_path = load_study(settings.launch)
    with tempfile.TemporaryDirectory(prefix="bench-study-") as scratch:
        template = Path(scratch) / "template"
        progress(f"data cell of {study.name} (once, untimed)")
        _run_data_cell_only(study, study_path, template)
        runs: list[dict[str, Any]] = []
        results: dict[str, Any] = {}
        for repeat in range(settings.repeats):
            for workers in settings.workers:
                folder = Path(scratch) / f"w{workers}-r{repeat}"
                shutil.copytree(template, folder)
                progress(f"repeat {repeat + 1}/{settings.repeats}: --workers {workers}")
                summary = run_study(study, study_path, folder, workers=workers, progress=False)
                if DATA_CELL in summary.ran or not cell_file(folder, DATA_CELL).is_file():
                    raise RuntimeError("the timed run collected the data again: the template is incomplete")
                runs.append({"workers": workers, "repeat": repeat, "cells": len(summary.ran),
                             "seconds": round(summary.seconds, 3),
                             "cells_per_min": round(len(summary.ran) / summary.seconds * 60, 3)})
                results[folder.name] = json.loads((folder / "report.json").read_text(encoding="utf-8"))["results"]
                shutil.rmtree(folder)
    medians = {w: statistics.median(r["cells_per_min"] for r in runs if r["workers"] == w) for w in settings.workers}
    baseline = settings.workers[0]
    reference = next(iter(results.values()))
    import torch

    return {
        "settings": {**asdict(settings), "workers": list(settings.workers)},
        "study": study.name,
        "runs": runs,
        "median_cells_per_min": {str(w): round(m, 3) for w, m in medians.items()},
        "ratio_to_baseline": {str(w): round(m / medians[baseline], 3) for w, m in medians.items()},
        "ratio_range": {str(w): _ratio_range(runs, w, baseline) for w in settings.workers},
        "target_ratio_2_workers": TARGET_RATIO,
        "same_results": all(r == reference for r in results.values()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_1min": round(os.getloadavg()[0], 2)},
    }


def _run_data_cell_only(study: Any, study_path: Path, folder: Path) -> None:
    """Start a study folder and run only its data cell, as the study would."""
    from lnn_control.study.cells import run_data_cell
    from lnn_control.study.scheduler import check_study_folder
    from lnn_control.train.recipe import load_train_launch

    folder.mkdir(parents=True)
    launch, launch_text = load_train_launch(study.training_launch)
    check_study_folder(folder, study, study_path, False, launch, launch_text)
    run_data_cell(str(folder), study, launch)


def _ratio_range(runs: list[dict[str, Any]], workers: int, baseline: int) -> list[float]:
    """Lowest and highest ratio of one repeat's throughput to the same repeat's baseline."""
    by_repeat = {(r["workers"], r["repeat"]): r["cells_per_min"] for r in runs}
    ratios = [by_repeat[(workers, k)] / by_repeat[(baseline, k)] for (w, k) in by_repeat if w == workers]
    return [round(min(ratios), 3), round(max(ratios), 3)]


def format_study_bench(report: dict[str, Any]) -> str:
    lines = [f"study {report['study']}: train + evaluation cells per minute (median of "
             f"{report['settings']['repeats']} runs), data cell untimed"]
    for workers, rate in report["median_cells_per_min"].items():
        low, high = report["ratio_range"][workers]
        lines.append(f"  --workers {workers}: {rate:.1f} cells/min, {report['ratio_to_baseline'][workers]:.2f}× "
                     f"(per repeat {low:.2f}–{high:.2f}×)")
    lines.append("  same report results in every run: " + ("yes" if report["same_results"] else "NO"))
    return "\n".join(lines)
