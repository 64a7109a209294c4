"""From nothing to a policy bundle: collect → train → DAgger rounds → bundle, driven by a launch file.

Output folder layout (``--out``)::

    data/            the episode dataset (expert + DAgger episodes)
    train/           checkpoint, metrics.jsonl, tensorboard scalars (per stage)
    policy/          the final policy bundle (config.json + model.safetensors)

Re-running with ``resume=True`` reuses collected episodes and the training checkpoint.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lnn_control.data.collect import CollectConfig, collect, env_specs, make_env
from lnn_control.data.episodes import EpisodeDataset
from lnn_control.spec import ActionSpec, ObservationSpec
from lnn_control.train.bc import train_behaviour_cloning
from lnn_control.train.launch import PolicySection, TrainLaunch


def build_policy(section: PolicySection, observation_spec: ObservationSpec, action_spec: ActionSpec, control_rate_hz: float, seed: int) -> Any:
    """A fresh policy: perception CNN (camera size from the spec) + the chosen core."""
    import torch

    from lnn_control.nn.perception import PerceptionConfig
    from lnn_control.policies.policy import Policy, PolicyConfig, build_core

    torch.manual_seed(seed)
    height, width, _ = observation_spec.image_shape
    perception = PerceptionConfig(image_height=height, image_width=width)
    input_size = perception.features + len(observation_spec.extras)
    core = _make_core(section, input_size, action_spec.size)
    if section.core in ("lstm", "gru", "ctrnn", "feedforward"):
        core = build_core(core)
    config = PolicyConfig(
        perception=perception,
        core=core.config(),
        observation_spec=observation_spec,
        action_spec=action_spec,
        control_rate_hz=control_rate_hz,
    )
    return Policy(config, core=core)


def _make_core(section: PolicySection, input_size: int, outputs: int) -> Any:
    if section.core in ("lstm", "gru", "ctrnn", "feedforward"):
        return {"type": section.core, "input_size": input_size, "units": section.hidden_size, "output_size": outputs}
    from lnn_control.nn.wirings import wiring_from_name

    wiring = wiring_from_name(section.wiring, input_dim=input_size)
    if wiring.output_dim != outputs:
        raise ValueError(
            f"wiring {section.wiring!r} has {wiring.output_dim} motor neurons but the task has {outputs} actions; "
            "choose a wiring with one motor neuron per action"
        )
    if section.core == "ltc":
        from lnn_control.nn.ltc import LTC

        return LTC(wiring)
    from lnn_control.nn.cfc import CfC

    return CfC(wiring)


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
    policy = build_policy(launch.policy, obs_spec, act_spec, control_rate, launch.seed)

    stage_results = []
    result = train_behaviour_cloning(policy, EpisodeDataset(data_dir), launch.train, out / "train" / "stage0", resume=resume, progress=progress)
    stage_results.append(result)
    for round_index in range(launch.dagger.rounds):
        dagger_cfg = dataclasses.replace(
            collect_cfg,
            episodes=launch.dagger.episodes,
            seed=launch.seed + collect_cfg.episodes + round_index * launch.dagger.episodes,
            learner_mix=launch.dagger.learner_mix,
        )
        stage_dir = out / "train" / f"dagger{round_index + 1}"
        if not (resume and (stage_dir / "checkpoint").is_dir()):
            policy.eval()
            collect(dagger_cfg, data_dir, learner=policy, progress=progress)
        fine_tune = dataclasses.replace(launch.train, epochs=launch.dagger.epochs, seed=launch.train.seed + round_index + 1)
        result = train_behaviour_cloning(policy, EpisodeDataset(data_dir), fine_tune, stage_dir, resume=resume and (stage_dir / "checkpoint").is_dir(), progress=progress)
        stage_results.append(result)

    dataset = EpisodeDataset(data_dir)
    provenance = {
        "command": " ".join(shlex.quote(a) for a in ["lnn-control", *sys.argv[1:]]) if sys.argv else "",
        "launch_file": launch_text,
        "seed": launch.seed,
        "dataset_hash": dataset.content_hash(),
        "dataset_episodes": len(dataset),
        "git_commit": git_commit(),
        "metrics": {
            "val_loss_per_stage": [r.best_val_loss for r in stage_results],
            "wall_clock_s": round(time.time() - started, 1),
        },
    }
    bundle = out / "policy"
    save_policy(policy, bundle, provenance)
    return bundle
