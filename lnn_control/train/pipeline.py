"""From nothing to a policy bundle: collect → train → DAgger rounds → bundle, driven by a launch file.

Output folder layout (``--out``)::

    data/            the episode dataset (expert + DAgger episodes)
    train/           checkpoint, metrics.jsonl, tensorboard scalars (per stage)
    policy/          the final policy bundle (config.json + model.safetensors)

Re-running with ``resume=True`` reuses collected episodes and the training checkpoint.
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
from lnn_control.train.bc import TrainResult, init_output_layer, train_behaviour_cloning
from lnn_control.train.launch import TrainLaunch
from lnn_control.train.selection import ClosedLoopValidator

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


def run_pipeline(launch: TrainLaunch, launch_text: str, out_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Run every stage; returns the path of the written policy bundle."""
    from lnn_control.policies.bundle import save_policy
    from lnn_control.policies.presets import build_policy

    out = Path(out_dir)
    data_dir = out / "data"
    started = time.time()
    collect_cfg = CollectConfig(
        task=launch.task,
        backend=launch.backend,
        episodes=launch.collect.episodes,
        seed=launch.seed,
        noise_std=launch.collect.noise_std,
        domain_randomization=launch.collect.domain_randomization,
        conditions=list(launch.collect.conditions),
        env_kwargs=dict(launch.env_kwargs),
    )
    have = len(EpisodeDataset(data_dir)) if (data_dir / "dataset.json").is_file() else 0
    if have < collect_cfg.episodes:
        collect(dataclasses.replace(collect_cfg, episodes=collect_cfg.episodes - have, seed=launch.seed + have), data_dir, progress=progress)

    probe = make_env(launch.task, launch.backend, "clean", seed=0, **launch.env_kwargs)
    try:
        obs_spec, act_spec = env_specs(probe)
        control_rate = 1.0 / float(probe.unwrapped.control_dt)
    finally:
        probe.close()
    policy = build_policy(
        launch.policy.preset,
        core=launch.policy.core,
        seed=launch.seed,
        observation_spec=obs_spec,
        action_spec=act_spec,
        control_rate_hz=control_rate,
        hidden_size=launch.policy.hidden_size,
    )

    validator = None
    if launch.select.metric == "closed_loop":
        validator = ClosedLoopValidator(launch.task, launch.backend, launch.env_kwargs, launch.select, out / "validation")
    selection: dict[str, Any] = {"select": launch.select, "validator": validator}

    stage_results: list[TrainResult] = []
    stages: list[dict] = []
    stage0_saved = resume and (out / "train" / "stage0" / "checkpoint").is_dir()
    if not stage0_saved:  # a kill before the first checkpoint: this stage starts afresh
        init_output_layer(policy, EpisodeDataset(data_dir), launch.train.min_label_std)
    result = train_behaviour_cloning(policy, EpisodeDataset(data_dir), launch.train, out / "train" / "stage0",
                                     resume=stage0_saved, progress=progress, **selection)
    stage_results.append(result)
    stages.append(_stage_record("stage0", result, accepted=True))
    kept, kept_result = _copy_weights(policy), result
    for round_index in range(launch.dagger.rounds):
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
            collect(dataclasses.replace(dagger_cfg, episodes=wanted - have, seed=dagger_cfg.seed + done), data_dir,
                    learner=policy, progress=progress)
        fine_tune = dataclasses.replace(launch.train, epochs=launch.dagger.epochs, seed=launch.train.seed + round_index + 1)
        result = train_behaviour_cloning(policy, EpisodeDataset(data_dir), fine_tune, stage_dir,
                                         resume=resume and (stage_dir / "checkpoint").is_dir(), progress=progress,
                                         label_std=stage_results[0].label_std, **selection)
        stage_results.append(result)
        # success rates only: the stages' BC losses come from different validation windows
        accepted = validator is None or _success(result) >= _success(kept_result)
        stages.append(_stage_record(f"dagger{round_index + 1}", result, accepted))
        if accepted:
            kept, kept_result = _copy_weights(policy), result
        else:  # this round made closed-loop validation worse: keep the policy it started from
            policy.load_state_dict(kept)
            logger.warning("DAgger round %d rejected: validation success %.0f %% < %.0f %% before it", round_index + 1,
                           100 * _success(result), 100 * _success(kept_result))

    dataset = EpisodeDataset(data_dir)
    provenance = {
        "command": " ".join(shlex.quote(a) for a in ["lnn-control", *sys.argv[1:]]) if sys.argv else "",
        "launch_file": launch_text,
        "seed": launch.seed,
        "dataset_hash": dataset.content_hash(),
        "dataset_episodes": len(dataset),
        # what the policy saw in training (condition specs of the episodes); evaluations under any
        # other condition test shift it never saw
        "training_conditions": sorted({str(dataset.metadata(i).get("condition", "clean")) for i in range(len(dataset))}),
        "git_commit": git_commit(),
        "metrics": {
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
            },
            "label_std": stage_results[0].label_std,
            "stages": stages,
            "kept": next(s for s in reversed(stages) if s["accepted"]),
        },
    }
    bundle = out / "policy"
    save_policy(policy, bundle, provenance, overwrite=True)
    return bundle


def _success(result: TrainResult) -> float:
    return result.best_score["success_rate"] if result.best_score else -1.0


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
