"""Run a study: plan its cells, skip finished ones, schedule the rest on the parallel seam.

Order: the data cell (collect once), then every train cell; as soon as a model is trained its
evaluation cells are queued. A failed cell (an exception, or its worker killed) costs that cell
and the evaluations waiting for it; everything else runs on, and the run ends with
:class:`StudyIncomplete` naming the missing cells. Re-running the same command (or with
``--resume``) runs only the cells without a result file. The report is written when every cell
has its file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lnn_control.atomic import atomic_write_json
from lnn_control.config import ConfigError, load_yaml_text_dataclass
from lnn_control.parallel.executor import ExecutorKind, make_executor
from lnn_control.study import cells as cellmod
from lnn_control.study.attention import AttentionCell, attention_cells, run_attention_cell
from lnn_control.study.config import StudyConfig
from lnn_control.study.report import build_report, eval_cells, train_cells


class StudyIncomplete(RuntimeError):
    """Some cells failed; their names and errors are in the message; re-run to finish them."""


@dataclass
class RunSummary:
    """What a run did: cells run and skipped, failures, wall time (s), the report path."""

    ran: list[str] = field(default_factory=list)
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    report: Path | None = None


def recipe_digest(launch: Any) -> str:
    """SHA-256 of what a training launch file makes a study's cells do: every setting but the worker
    and thread counts (speed, not results)."""
    settings = dataclasses.asdict(launch)
    settings["collect"].pop("workers")
    settings["select"].pop("workers")
    settings["train"].pop("threads")
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def study_recipe(root: Path, study: StudyConfig) -> tuple[Any, str, str | None]:
    """The training recipe a study folder's cells use: ``(config, launch file text, note)``.

    A folder whose ``study.json`` keeps the recipe's text (folders started since 2026-12-07) goes on
    with that text, so a resumed or rebuilt study never mixes two recipes after the shipped launch
    file changes; ``note`` then says so when the launch file now trains differently (``None`` when it
    does not). Any other folder reads ``study.training_launch`` as it is now.
    """
    from lnn_control.train.recipe import TrainRecipe, load_train_launch

    state = root / "study.json"
    recorded = json.loads(state.read_text(encoding="utf-8")) if state.is_file() else {}
    if "training_launch_file" not in recorded:
        launch, text = load_train_launch(study.training_launch)
        return launch, text, None
    text = recorded["training_launch_file"]
    launch = load_yaml_text_dataclass(TrainRecipe, text, f"{state} (training_launch_file)")
    note = None
    try:
        current, _ = load_train_launch(study.training_launch)
    except ConfigError:
        current = None
    if current is None or recipe_digest(current) != recipe_digest(launch):
        note = (f"{root} goes on with the training recipe its study.json recorded when it started; the launch "
                f"file {study.training_launch!r} {'is gone' if current is None else 'now trains differently'} "
                "(to study that recipe, use another --out)")
    return launch, text, note


def check_study_folder(root: Path, study: StudyConfig, study_path: Path, resume: bool, launch: Any,
                       launch_text: str) -> None:
    """Refuse a folder started with another study file; start a new folder's ``study.json``, which
    keeps the study file and the training recipe (``launch``, its text and digest) the cells use."""
    state = root / "study.json"
    if state.is_file():
        recorded = json.loads(state.read_text(encoding="utf-8"))
        if recorded.get("digest") != study.digest():
            old, new = recorded.get("study", {}), study.canonical()
            differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"{root} holds the study from {recorded.get('source')}, which differs from {study_path} in "
                f"{differing}; finished cells are reused only for the same study: use another --out"
            )
        return
    if resume:
        raise ConfigError(f"--resume: {root} holds no study (no study.json); run without --resume to start one")
    atomic_write_json(state, {
        "digest": study.digest(),
        "source": str(study_path),
        "study": study.canonical(),
        "study_file": study_path.read_text(encoding="utf-8"),
        "training_recipe_digest": recipe_digest(launch),
        "training_launch_file": launch_text,
    })


def run_study(
    study: StudyConfig,
    study_path: Path,
    out: str | Path,
    *,
    executor: ExecutorKind = "local",
    workers: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Run every unfinished cell of ``study`` into ``out`` and write the report (see the module docstring)."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    launch, launch_text, recipe_note = study_recipe(root, study)
    check_study_folder(root, study, Path(study_path), resume, launch, launch_text)
    if recipe_note is not None:
        print(f"note: {recipe_note}", file=sys.stderr)
    shutil.rmtree(root / "cells" / "running", ignore_errors=True)  # markers of dead runs

    def done(cell_id: str) -> bool:
        return cellmod.cell_file(root, cell_id).is_file()

    trains = [c for c in train_cells(study) if not done(c.id)]
    evals_by_model: dict[str, list[cellmod.EvalCell | AttentionCell]] = {}
    # attention: only if the study enables it
    after_training: list[cellmod.EvalCell | AttentionCell] = [*eval_cells(study), *attention_cells(study)]
    for cell in after_training:
        if not done(cell.id):
            evals_by_model.setdefault(cell.model, []).append(cell)
    pending_total = int(not done(cellmod.DATA_CELL)) + len(trains) + sum(len(v) for v in evals_by_model.values())
    summary = RunSummary(skipped=1 + len(train_cells(study)) + len(after_training) - pending_total)
    started = time.perf_counter()
    bar = _progress(pending_total, study.name, progress)
    ray_temp = tempfile.mkdtemp(prefix="lnnray", dir="/tmp") if executor == "ray" and ray_address is None else None
    pool = make_executor(executor, workers, ray_address=ray_address, ray_temp_dir=ray_temp) if pending_total else None
    try:
        if pool is not None and not done(cellmod.DATA_CELL):
            future = pool.submit(cellmod.run_data_cell, str(root), study, launch)
            if not _collect(future, cellmod.DATA_CELL, summary, bar):
                raise StudyIncomplete(_incomplete_message(summary, evals_by_model, trains))
        data_hash = json.loads(cellmod.cell_file(root, cellmod.DATA_CELL).read_text())["dataset_hash"]
        running: dict[Future, tuple[str, Any]] = {}
        if pool is not None:  # (no pool: nothing is pending)

            def submit_evals(model: str) -> None:
                for cell in evals_by_model.pop(model, []):
                    task = run_attention_cell if isinstance(cell, AttentionCell) else cellmod.run_eval_cell
                    running[pool.submit(task, str(root), study, launch, cell)] = ("eval", cell)

            for train_cell in trains:
                future = pool.submit(cellmod.run_train_cell, str(root), study, launch, train_cell, data_hash)
                running[future] = ("train", train_cell)
            trained_models = {c.model for c in train_cells(study)} - {c.model for c in trains}
            for model in sorted(trained_models):
                if model in evals_by_model:
                    submit_evals(model)
            while running:
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    kind, cell = running.pop(future)
                    if _collect(future, cell.id, summary, bar) and kind == "train":
                        submit_evals(cell.model)
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if ray_temp is not None:
            shutil.rmtree(ray_temp, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    if summary.failed or evals_by_model:
        raise StudyIncomplete(_incomplete_message(summary, evals_by_model, []))
    build_report(root, study)
    summary.report = root / "report.md"
    return summary


def _collect(future: Future, cell_id: str, summary: RunSummary, bar: Any) -> bool:
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001 - one cell's failure must not stop the others
        summary.failed[cell_id] = f"{type(exc).__name__}: {exc}"
        ok = False
    else:
        summary.ran.append(cell_id)
        ok = True
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"{len(summary.failed)} failed" if summary.failed else cell_id, refresh=False)
    return ok


def _incomplete_message(summary: RunSummary, waiting: dict[str, list], trains: list) -> str:
    blocked = sum(len(v) for v in waiting.values()) + len(trains)
    lines = [f"{len(summary.failed)} cell(s) failed; {blocked} cell(s) waiting for them did not run:"]
    lines += [f"  {cell}: {error.splitlines()[0] if error else ''}" for cell, error in sorted(summary.failed.items())]
    lines.append(
        f"{len(summary.ran)} cell(s) finished in this run and are kept; re-run the same command "
        "(or add --resume) to run only the missing cells"
    )
    return "\n".join(lines)


def _progress(total: int, name: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"study {name}", unit="cell", smoothing=0.1)
