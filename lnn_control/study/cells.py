"""The cells of a study and the tasks that compute them.

A cell is one unit of work with its own result file, written atomically when (and only when)
the work is complete; a re-run skips every cell whose file exists. Layout under the study's
output folder::

    cells/data.json                                   the dataset (collected once, hashed)
    cells/train/<arch>-s<seed>.json                   one trained model (bundle in models/<arch>-s<seed>/policy)
    cells/eval/<arch>-s<seed>/<backend>/<cond>.json   one model under one condition on one backend
    cells/running/<cell>.json                         while a cell runs: its worker's host and pid

The task functions (:func:`run_data_cell`, :func:`run_train_cell`, :func:`run_eval_cell`) run in
a worker of the parallel seam; everything they need is in their arguments, and their seeds are
fixed by the cell, so a result never depends on the worker or on the order of cells.
Training reuses :mod:`lnn_control.train` and evaluation :mod:`lnn_control.evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnn_control.atomic import atomic_write_json
from lnn_control.parallel.executor import describe_worker
from lnn_control.study.config import Backend, StudyConfig

if TYPE_CHECKING:
    from lnn_control.evaluate.closed_loop import DtMode

DATA_CELL = "data"
NOMINAL_DT_SUFFIX = "~nominal-dt"


@dataclass(frozen=True)
class TrainCell:
    arch: str
    seed: int

    @property
    def model(self) -> str:
        return f"{self.arch}-s{self.seed}"

    @property
    def id(self) -> str:
        return f"train/{self.model}"


@dataclass(frozen=True)
class EvalCell:
    arch: str
    seed: int
    backend: Backend
    condition: str
    dt_mode: DtMode = "measured"

    @property
    def model(self) -> str:
        return f"{self.arch}-s{self.seed}"

    @property
    def label(self) -> str:
        """The condition as the report names it (``framedrop:3~nominal-dt`` for the ablation)."""
        return self.condition + (NOMINAL_DT_SUFFIX if self.dt_mode == "nominal" else "")

    @property
    def id(self) -> str:
        safe = self.label.replace(":", "-").replace("+", "_")
        return f"eval/{self.model}/{self.backend}/{safe}"


def cell_file(out: Path, cell_id: str) -> Path:
    """Where the result of ``cell_id`` lives."""
    return Path(out) / "cells" / f"{cell_id}.json"


def model_dir(out: Path, model: str) -> Path:
    return Path(out) / "models" / model


def env_kwargs(study: StudyConfig, launch: Any) -> dict[str, Any]:
    """Env keyword arguments for collection and evaluation: the launch file's, then the study's."""
    return {**dict(launch.env_kwargs), **dict(study.env_kwargs)}


@contextlib.contextmanager
def running_marker(out: Path, cell_id: str) -> Iterator[None]:
    """``cells/running/<cell>.json`` with this worker's host and pid while the cell runs."""
    marker = Path(out) / "cells" / "running" / (cell_id.replace("/", "__") + ".json")
    atomic_write_json(marker, {"cell": cell_id, **describe_worker(), "started": time.time()})
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- data
def collect_config(study: StudyConfig, launch: Any) -> Any:
    from lnn_control.data.collect import CollectConfig

    return CollectConfig(
        task=launch.task,
        backend=launch.backend,
        episodes=study.data.episodes or launch.collect.episodes,
        seed=launch.seed,
        noise_std=launch.collect.noise_std,
        domain_randomization=launch.collect.domain_randomization,
        conditions=list(launch.collect.conditions),
        env_kwargs=env_kwargs(study, launch),
    )


def run_data_cell(out: str, study: StudyConfig, launch: Any) -> dict[str, Any]:
    """Collect the study's one dataset into ``out/data`` (from scratch: a partial one from a killed
    run is discarded, so the data never depends on where a run was interrupted)."""
    from lnn_control.data.collect import collect
    from lnn_control.data.episodes import EpisodeDataset

    root = Path(out)
    with running_marker(root, DATA_CELL):
        started = time.perf_counter()
        data_dir = root / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        config = collect_config(study, launch)
        summary = collect(config, data_dir, progress=False)
        dataset = EpisodeDataset(data_dir)
        result = {
            "cell": DATA_CELL,
            "dataset_hash": dataset.content_hash(),
            "episodes": len(dataset),
            "steps": summary.steps,
            "expert_successes": summary.expert_successes,
            "collect": dataclasses.asdict(config),
            "seconds": round(time.perf_counter() - started, 3),
            "worker": describe_worker(),
        }
        atomic_write_json(cell_file(root, DATA_CELL), result)
    return result


# --------------------------------------------------------------------------------------- train
def gradient_steps(dataset: Any, config: Any) -> int:
    """Optimiser steps :func:`~lnn_control.train.bc.train_behaviour_cloning` takes for ``config``
    (the same episode split and windows it draws from ``config.seed``)."""
    import numpy as np

    from lnn_control.train.windows import make_windows, split_episodes

    rng = np.random.default_rng(config.seed)
    train_ids, _ = split_episodes(len(dataset), config.val_fraction, rng)
    lengths = {i: len(dataset[i]) for i in train_ids}
    windows = make_windows(lengths, config.seq_len, config.stride)
    return config.epochs * math.ceil(len(windows) / config.batch_size)


def run_train_cell(out: str, study: StudyConfig, launch: Any, cell: TrainCell, data_hash: str) -> dict[str, Any]:
    """Train one (architecture, seed) on the study's dataset with the launch file's recipe;
    write its bundle, then its cell file. A re-run after a kill starts the model from scratch."""
    from lnn_control.data.collect import env_specs, make_env
    from lnn_control.data.episodes import EpisodeDataset
    from lnn_control.policies.bundle import read_bundle_config, save_policy
    from lnn_control.study.architectures import build_architecture, parameter_counts
    from lnn_control.study.latency import policy_step_latency_ms
    from lnn_control.train.restarts import attempt_config, train_stage0_with_restarts

    root = Path(out)
    with running_marker(root, cell.id):
        started = time.perf_counter()
        folder = model_dir(root, cell.model)
        shutil.rmtree(folder, ignore_errors=True)
        dataset = EpisodeDataset(root / "data")
        if dataset.content_hash() != data_hash:
            raise RuntimeError(
                f"{root / 'data'} changed since cells/data.json was written; delete cells/data.json to recollect"
            )
        probe = make_env(launch.task, launch.backend, "clean", 0, **env_kwargs(study, launch))
        try:
            obs_spec, act_spec = env_specs(probe)
            control_rate = 1.0 / float(probe.unwrapped.control_dt)
        finally:
            probe.close()
        policy = build_architecture(cell.arch, launch.policy.preset, cell.seed, obs_spec, act_spec, control_rate,
                                    launch.policy.feature_norm)
        train_config = dataclasses.replace(
            launch.train, seed=cell.seed, threads=1, epochs=study.train.epochs or launch.train.epochs
        )
        selection = _selection(study, launch, folder)

        def fresh_weights(seed_offset: int) -> dict:  # the recipe's select.restarts: the same rule for every model
            return build_architecture(cell.arch, launch.policy.preset, cell.seed + seed_offset, obs_spec, act_spec,
                                      control_rate, launch.policy.feature_norm).state_dict()

        attempts, kept_index = train_stage0_with_restarts(policy, dataset, train_config, folder / "train",
                                                          fresh_weights, progress=False, **selection)
        stages = [attempts[kept_index].result]
        steps = sum(gradient_steps(dataset, attempt_config(train_config, k)) for k in range(len(attempts)))
        if study.train.per_model_dagger:
            extra_stages, extra_steps = _per_model_dagger(root, study, launch, policy, train_config, folder,
                                                          stages[0].label_std, selection)
            stages += extra_stages
            steps += extra_steps
        from lnn_control.train.pipeline import git_commit

        provenance = {
            "command": f"lnn-control study (cell {cell.id})",
            "git_commit": git_commit(),
            "study": study.name,
            "seed": cell.seed,
            "dataset_hash": data_hash,
            "architecture": cell.arch,
            "metrics": {"val_loss_per_stage": [s.best_val_loss for s in stages]},
        }
        save_policy(policy, folder / "policy", provenance, overwrite=True)
        result = {
            "cell": cell.id,
            "arch": cell.arch,
            "seed": cell.seed,
            "dataset_hash": data_hash,
            "git_commit": provenance["git_commit"],
            "per_model_dagger": study.train.per_model_dagger,
            # the recipe's model selection (closed_loop: the validation roads / forests 900+ chose the epoch)
            "selection": launch.select.metric,
            "closed_loop_per_stage": [s.best_score for s in stages],
            # stage 0's attempts under the recipe's select.restarts, in the order they ran
            "stage0_attempts": [{"name": a.name, "closed_loop": a.result.best_score, "kept": k == kept_index}
                                for k, a in enumerate(attempts)],
            "stopped_early": [s.stopped_early for s in stages],
            "epochs": train_config.epochs,
            "gradient_steps": steps,
            "val_loss_per_stage": [s.best_val_loss for s in stages],
            "best_epoch": stages[0].best_epoch,
            "parameters": parameter_counts(policy),
            "model_sha256": read_bundle_config(folder / "policy")["model_sha256"],
            "bundle": str((folder / "policy").relative_to(root)),
            "latency_ms": policy_step_latency_ms(policy),
            "seconds": round(time.perf_counter() - started, 3),
            "worker": describe_worker(),
        }
        atomic_write_json(cell_file(root, cell.id), result)
    return result


def _selection(study: StudyConfig, launch: Any, folder: Path) -> dict[str, Any]:
    """The recipe's model selection for ``train_behaviour_cloning``: nothing for ``val_loss``; for
    ``closed_loop`` a validator on the validation seeds (one process: cells already run in parallel)."""
    if launch.select.metric != "closed_loop":
        return {}
    from lnn_control.train.selection import ClosedLoopValidator

    select = dataclasses.replace(launch.select, workers=1)
    validator = ClosedLoopValidator(launch.task, launch.backend, env_kwargs(study, launch), select, folder / "validation")
    return {"validator": validator, "select": select}


def _per_model_dagger(root: Path, study: StudyConfig, launch: Any, policy: Any, train_config: Any, folder: Path,
                      label_std: list[float] | None = None, selection: dict[str, Any] | None = None) -> tuple[list, int]:
    """The launch file's DAgger rounds for one model, on its own copy of the study's data (in the
    first stage's label units, with the recipe's model selection)."""
    from lnn_control.data.collect import collect
    from lnn_control.data.episodes import EpisodeDataset
    from lnn_control.train.bc import train_behaviour_cloning

    data_dir = folder / "data"
    shutil.copytree(root / "data", data_dir)
    base = collect_config(study, launch)
    stages, steps = [], 0
    for round_index in range(launch.dagger.rounds):
        config = dataclasses.replace(
            base,
            episodes=launch.dagger.episodes,
            seed=launch.seed + base.episodes + round_index * launch.dagger.episodes,
            learner_mix=launch.dagger.learner_mix,
        )
        policy.eval()
        collect(config, data_dir, learner=policy, progress=False)
        fine_tune = dataclasses.replace(train_config, epochs=launch.dagger.epochs, seed=train_config.seed + round_index + 1)
        dataset = EpisodeDataset(data_dir)
        stages.append(train_behaviour_cloning(policy, dataset, fine_tune, folder / "train" / f"dagger{round_index + 1}",
                                              progress=False, label_std=label_std, **(selection or {})))
        steps += gradient_steps(dataset, fine_tune)
    return stages, steps


# ---------------------------------------------------------------------------------------- eval
def run_eval_cell(out: str, study: StudyConfig, launch: Any, cell: EvalCell) -> dict[str, Any]:
    """Evaluate one model under one condition on one backend on the study's held-out seeds."""
    from lnn_control.evaluate.closed_loop import EvalConfig, evaluate, policy_controller
    from lnn_control.policies.bundle import load_policy, read_bundle_config

    root = Path(out)
    with running_marker(root, cell.id):
        started = time.perf_counter()
        bundle = model_dir(root, cell.model) / "policy"
        policy = load_policy(bundle)
        config = EvalConfig(
            task=study.task,
            backend=cell.backend,
            conditions=[cell.condition],
            episodes=study.eval.episodes,
            seed=study.eval.seed,
            env_kwargs={**env_kwargs(study, launch), **study.eval.env_kwargs},
            dt_mode=cell.dt_mode,
        )
        results = evaluate(config, policy_controller(policy), reset=policy.reset, policy=policy, progress=False)
        condition = results["conditions"][cell.condition]
        result = {
            "cell": cell.id,
            "arch": cell.arch,
            "seed": cell.seed,
            "backend": cell.backend,
            "condition": cell.condition,
            "label": cell.label,
            "dt_mode": cell.dt_mode,
            "model_sha256": read_bundle_config(bundle)["model_sha256"],
            "aggregate": condition["aggregate"],
            "episodes": condition["episodes"],
            "seconds": round(time.perf_counter() - started, 3),
            "worker": describe_worker(),
        }
        atomic_write_json(cell_file(root, cell.id), result)
    return result
