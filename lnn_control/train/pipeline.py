"""From nothing to a policy bundle: collect → train → DAgger rounds → bundle, driven by a launch file.

Output folder layout (``--out``)::

    data/            the episode dataset (expert + DAgger episodes; absent with collect.episodes: 0)
    train/           checkpoint, metrics.jsonl, tensorboard scalars (per stage)
    policy/          the final policy bundle (config.json + model.safetensors)

Re-running with ``resume=True`` reuses collected episodes and the training checkpoint.

Fine-tuning (see :mod:`lnn_control.train.recipe`): ``init_from`` starts stage 0 from a bundle's
weights, output scaling and label scale (:mod:`lnn_control.train.init_from`); ``datasets`` are
mixed with the collection by weight (:mod:`lnn_control.train.sources`); ``freeze`` holds the CNN or
the core fixed in every stage. A run that neither collects, runs DAgger nor selects in closed loop
never creates the simulator: its specs come from the datasets and its control rate from
``init_from`` (else the preset's).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lnn_control.data.collect import CollectConfig, collect, env_specs, make_env
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.data.mixture import MixSource
from lnn_control.train.bc import TrainResult, train_behaviour_cloning
from lnn_control.train.init_from import InitBundle, load_init_weights, read_init_bundle
from lnn_control.train.recipe import TrainRecipe, check_launch, needs_simulator
from lnn_control.train.restarts import train_stage0_with_restarts
from lnn_control.train.selection import ClosedLoopValidator
from lnn_control.train.sources import (
    check_fits_policy,
    datasets_record,
    open_datasets,
    training_conditions,
    training_data,
)

logger = logging.getLogger(__name__)


def git_commit() -> str:
    """The project's current commit (with ``+dirty`` for local changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def run_pipeline(launch: TrainRecipe, launch_text: str, out_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Run every stage; returns the path of the written policy bundle.

    One pool of ``max(collect.workers, select.workers)`` local processes (none when both are 1)
    serves the whole run: the expert collection and the DAgger rounds' episodes when
    ``collect.workers > 1``, the closed-loop validations when ``select.workers > 1``; its workers
    start once, not once per job."""
    check_launch(launch)
    workers = max(launch.collect.workers, launch.select.workers)
    if workers == 1:
        return _run(launch, launch_text, Path(out_dir), resume, progress, None)
    from lnn_control.parallel.executor import make_executor

    with make_executor("local", workers) as pool:
        return _run(launch, launch_text, Path(out_dir), resume, progress, pool)


def _run(launch: TrainRecipe, launch_text: str, out: Path, resume: bool, progress: bool, pool: Any) -> Path:
    from lnn_control.policies.bundle import save_policy

    collect_pool = pool if launch.collect.workers > 1 else None
    data_dir = out / "data"
    started = time.time()
    given = open_datasets(launch.datasets)
    init = read_init_bundle(launch.init_from) if launch.init_from else None  # before any collection
    collect_cfg = None
    if launch.collect.episodes > 0:
        collect_cfg = CollectConfig(
            task=launch.task,
            backend=launch.backend,
            episodes=launch.collect.episodes,
            seed=launch.seed,
            noise_std=launch.collect.noise_std,
            domain_randomization=launch.collect.domain_randomization,
            conditions=list(launch.collect.conditions),
            env_kwargs=dict(launch.env_kwargs),
            noise_seeding=launch.collect.noise_seeding,
        )
        have = len(EpisodeDataset(data_dir)) if (data_dir / "dataset.json").is_file() else 0
        if have < collect_cfg.episodes:  # a resumed run continues at episode `have` (same seed, same condition)
            collect(dataclasses.replace(collect_cfg, episodes=collect_cfg.episodes - have, first_index=have),
                    data_dir, progress=progress, executor=collect_pool)

    policy = _recipe_policy(launch, given, init)
    if init is not None:
        load_init_weights(policy, init)
    if given:
        check_fits_policy(training_data(launch, data_dir, given), policy)

    validator = None
    if launch.select.metric == "closed_loop":
        validator = ClosedLoopValidator(launch.task, launch.backend, launch.env_kwargs, launch.select, out / "validation",
                                        executor=pool if launch.select.workers > 1 else None)
    selection: dict[str, Any] = {"select": launch.select, "validator": validator}

    stage_results: list[TrainResult] = []
    stages: list[dict] = []
    kept_success = -1.0  # the closed-loop success of the weights kept so far (-1: none scored yet)
    kept = _copy_weights(policy)
    if init is not None and validator is not None:
        # a fine-tune must beat the bundle it starts from on the same validation seeds, else it is not shipped
        start_score = validator(policy)
        kept_success = start_score["success_rate"]
        stages.append({"stage": "init_from", "kept_epoch": None, "val_loss": None,
                       "closed_loop": {"success_rate": kept_success}, "stopped_early": False, "accepted": True})
    attempts, kept_index = train_stage0_with_restarts(
        policy, training_data(launch, data_dir, given), launch.train, out / "train",
        lambda offset: _recipe_policy(dataclasses.replace(launch, seed=launch.seed + offset), given, init).state_dict(),
        fresh_output_layer=init is None, resume=resume, progress=progress,
        label_std=None if init is None else init.label_std, freeze=launch.freeze, **selection)
    for index, attempt in enumerate(attempts):  # in the order they ran; select.restarts' losers not accepted
        if index != kept_index:
            stages.append(_stage_record(attempt.name, attempt.result, accepted=False))
            continue
        result = attempt.result
        stage_results.append(result)
        if _keep_or_reject(policy, attempt.name, result, stages, kept, kept_success):
            kept, kept_success = _copy_weights(policy), result.validation_success
    for round_index in range(launch.dagger.rounds):
        assert collect_cfg is not None  # check_launch: DAgger rounds need the simulated collection
        dagger_cfg = dataclasses.replace(
            collect_cfg,
            episodes=launch.dagger.episodes,
            seed=launch.seed + collect_cfg.episodes + round_index * launch.dagger.episodes,
            learner_mix=launch.dagger.learner_mix,
        )
        stage_dir = out / "train" / f"dagger{round_index + 1}"
        # the dataset itself says what this round still needs (a kill between its collection and its
        # first checkpoint must not collect it twice)
        wanted = collect_cfg.episodes + (round_index + 1) * launch.dagger.episodes
        have = len(EpisodeDataset(data_dir))
        if have < wanted:
            policy.eval()
            done = have - (wanted - launch.dagger.episodes)
            collect(dataclasses.replace(dagger_cfg, episodes=wanted - have, first_index=done), data_dir,
                    learner=policy, progress=progress, executor=collect_pool)
        fine_tune = dataclasses.replace(launch.train, epochs=launch.dagger.epochs, seed=launch.train.seed + round_index + 1)
        result = train_behaviour_cloning(policy, training_data(launch, data_dir, given), fine_tune, stage_dir,
                                         resume=resume and (stage_dir / "checkpoint").is_dir(), progress=progress,
                                         label_std=stage_results[0].label_std, freeze=launch.freeze, **selection)
        stage_results.append(result)
        if _keep_or_reject(policy, f"dagger{round_index + 1}", result, stages, kept, kept_success):
            kept, kept_success = _copy_weights(policy), result.validation_success

    dataset = training_data(launch, data_dir, given)
    provenance = {
        "command": " ".join(shlex.quote(a) for a in ["lnn-control", *sys.argv[1:]]) if sys.argv else "",
        "launch_file": launch_text,
        "seed": launch.seed,
        "dataset_hash": dataset.content_hash(),
        "dataset_episodes": len(dataset),
        # what the policy saw in training (condition specs of the episodes); evaluations under any
        # other condition test shift it never saw
        "training_conditions": training_conditions(dataset),
        # every dataset trained on (hash, episodes, weight, share), where the weights started, what was frozen
        "datasets": datasets_record(dataset, launch.collect.weight),
        "init_from": None if init is None else init.record(),
        "freeze": launch.freeze,
        "git_commit": git_commit(),
        "metrics": {
            # the kept stage 0 and each DAgger round (selection.stages also lists rejected attempts)
            "val_loss_per_stage": [r.best_val_loss for r in stage_results],
            "wall_clock_s": round(time.time() - started, 1),
        },
        "selection": {
            "metric": launch.select.metric,
            "validation": None if validator is None else {
                "seeds": f"{validator.config.episode_seed(0)}-{validator.config.episode_seed(launch.select.episodes - 1)}",
                "conditions": list(launch.select.conditions),
                "every_epochs": launch.select.every_epochs,
                "patience": launch.select.patience,
                "restarts": launch.select.restarts,
                "restart_below": launch.select.restart_below,
            },
            "label_std": stage_results[0].label_std,
            "stages": stages,
            "kept": next(s for s in reversed(stages) if s["accepted"]),
        },
    }
    bundle = out / "policy"
    save_policy(policy, bundle, provenance, overwrite=True)
    return bundle


def _recipe_policy(launch: TrainRecipe, given: list[MixSource], init: InitBundle | None) -> Any:
    """A fresh policy from the recipe's policy section: specs and control rate from the task's env
    when the run uses the simulator, else specs from the datasets and the rate from ``init_from``
    (else the preset's)."""
    from lnn_control.policies.presets import build_policy

    if needs_simulator(launch):
        probe = make_env(launch.task, launch.backend, "clean", seed=0, **launch.env_kwargs)
        try:
            obs_spec, act_spec = env_specs(probe)
            control_rate: float | None = 1.0 / float(probe.unwrapped.control_dt)
        finally:
            probe.close()
    else:
        manifest = given[0].dataset.manifest
        obs_spec, act_spec = manifest.observation_spec, manifest.action_spec
        rate = None if init is None else init.policy_config.get("control_rate_hz")
        control_rate = float(rate) if isinstance(rate, int | float) else None
    return build_policy(
        launch.policy.preset,
        core=launch.policy.core,
        seed=launch.seed,
        observation_spec=obs_spec,
        action_spec=act_spec,
        control_rate_hz=control_rate,
        hidden_size=launch.policy.hidden_size,
        feature_norm=launch.policy.feature_norm,
    )


def _keep_or_reject(policy: Any, name: str, result: TrainResult, stages: list[dict], kept: dict,
                    kept_success: float) -> bool:
    """Record stage ``name``; under closed-loop selection a stage that drives the validation seeds worse
    than the weights kept so far (the ``init_from`` bundle, or the stage before) is rejected and those
    weights are restored. Success rates only: the stages' BC losses come from different windows.
    Returns whether the stage was accepted (its weights are then the ones to keep)."""
    accepted = result.best_score is None or result.validation_success >= kept_success
    stages.append(_stage_record(name, result, accepted))
    if not accepted:
        policy.load_state_dict(kept)
        logger.warning("%s rejected: validation success %.0f %% < %.0f %% of the weights before it", name,
                       100 * result.validation_success, 100 * kept_success)
    return accepted


def _copy_weights(policy: Any) -> dict:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def _stage_record(name: str, result: TrainResult, accepted: bool) -> dict:
    """What the bundle records per stage: the kept epoch, why (its score or loss), and the verdict."""
    return {
        "stage": name,
        "kept_epoch": result.best_epoch,
        "val_loss": result.best_val_loss,
        "closed_loop": result.best_score,
        "stopped_early": result.stopped_early,
        "accepted": accepted,
    }
