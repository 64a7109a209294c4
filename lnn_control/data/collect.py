"""Collect demonstrations: the privileged expert drives (with DART noise) or labels a learner (DAgger).

For every control step we store the frame the policy would see, the action actually applied,
and the expert's action for that frame (the label). Two modes:

- expert rollouts with DART noise injection: applied = clip(expert + N(0, noise_std)), so the
  data covers the small recoveries a learner needs;
- DAgger rounds (``learner`` given): applied = learner action with probability
  ``learner_mix`` (else the expert's), label = expert action — the learner visits its own
  mistakes and the expert says how to recover.

Episodes are written one file each as they finish (see :mod:`lnn_control.data.episodes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from lnn_control.data.episodes import DatasetManifest, EpisodeWriter
from lnn_control.seeds import training_seed
from lnn_control.spec import ActionSpec, ObservationSpec
from lnn_control.tasks import get_task


class StreamingPolicy(Protocol):
    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray: ...


@dataclass(frozen=True)
class CollectConfig:
    """How to collect.

    episodes: number of episodes; seed: base seed (episode i uses training seed seed+i, < 1000).
    noise_std: DART noise std in normalised action units (expert mode).
    learner_mix: probability per step of executing the learner's action (DAgger mode).
    conditions: domain-shift specs cycled over episodes, e.g. ["clean", "rain:2"].
    env_kwargs: extra keyword arguments for the env (e.g. road length, include_speed).
    """

    task: str = "lane-keeping"
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    episodes: int = 40
    seed: int = 0
    noise_std: float = 0.1
    learner_mix: float = 0.5
    domain_randomization: bool = True
    conditions: list[str] = field(default_factory=lambda: ["clean"])
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.episodes < 1:
            raise ValueError(f"CollectConfig.episodes must be ≥ 1, got {self.episodes}")
        if self.noise_std < 0:
            raise ValueError(f"CollectConfig.noise_std must be ≥ 0, got {self.noise_std}")
        if not 0.0 <= self.learner_mix <= 1.0:
            raise ValueError(f"CollectConfig.learner_mix must be in [0, 1], got {self.learner_mix}")
        if not self.conditions:
            raise ValueError("CollectConfig.conditions must name at least one condition (use 'clean')")


@dataclass
class CollectSummary:
    episodes: int
    steps: int
    expert_successes: int
    paths: list[Path]


def make_env(task: str, backend: str, condition: str, seed: int, **env_kwargs: Any) -> Any:
    """Create the task's env with domain-shift wrappers for ``condition`` applied."""
    import gymnasium as gym

    import lnn_control.envs  # noqa: F401  (registers the env ids)
    from lnn_control.envs.wrappers import apply_conditions

    env = gym.make(get_task(task).env_id, backend=backend, **env_kwargs)
    return apply_conditions(env, condition, seed=seed)


def env_specs(env: Any) -> tuple[ObservationSpec, ActionSpec]:
    """The observation/action specs an env provides (from its spaces and declared units)."""
    unwrapped = env.unwrapped
    return unwrapped.observation_spec, unwrapped.action_spec


def collect(
    config: CollectConfig,
    out_dir: str | Path,
    learner: StreamingPolicy | None = None,
    progress: bool = True,
) -> CollectSummary:
    """Run ``config.episodes`` episodes and append them to the dataset at ``out_dir``."""
    rng = np.random.default_rng(config.seed)
    writer: EpisodeWriter | None = None
    total_steps, successes, paths = 0, 0, []
    iterator = range(config.episodes)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"collect {config.task}/{config.backend}", unit="episode")
    for index in iterator:
        seed = training_seed(index, config.seed)
        condition = config.conditions[index % len(config.conditions)]
        env = make_env(config.task, config.backend, condition, seed, domain_randomization=config.domain_randomization, **config.env_kwargs)
        try:
            if writer is None:
                obs_spec, act_spec = env_specs(env)
                writer = EpisodeWriter(out_dir, DatasetManifest(obs_spec, act_spec, created_by="lnn-control collect"))
            steps, success = _run_episode(env, writer, seed, condition, config, learner, rng)
        finally:
            env.close()
        total_steps += steps
        successes += int(success)
    if writer is not None:
        paths = sorted((Path(out_dir) / "episodes").glob("episode_*.safetensors"))
    return CollectSummary(config.episodes, total_steps, successes, paths)


def _run_episode(
    env: Any,
    writer: EpisodeWriter,
    seed: int,
    condition: str,
    config: CollectConfig,
    learner: StreamingPolicy | None,
    rng: np.random.Generator,
) -> tuple[int, bool]:
    unwrapped = env.unwrapped
    low, high = env.action_space.low, env.action_space.high
    dt = float(unwrapped.control_dt)
    obs, info = env.reset(seed=seed)
    if learner is not None:
        learner.reset()
    writer.begin_episode()
    step, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        label = np.asarray(unwrapped.expert_action(), np.float32)
        if learner is not None:
            proposal = learner.act(obs, dt)
            applied = proposal if rng.random() < config.learner_mix else label
        else:
            applied = label + rng.normal(0.0, config.noise_std, label.shape) * (high - low) / 2
        applied = np.clip(np.asarray(applied, np.float32), low, high)
        writer.add_step(obs, applied, label, timestamp=float(info.get("sim_time", step * dt)))
        obs, _, terminated, truncated, info = env.step(applied)
        step += 1
    success = bool(info.get("success", False))
    writer.end_episode({"seed": seed, "condition": condition, "backend": config.backend, "steps": step, "success": success, "mode": "dagger" if learner is not None else "expert"})
    return step, success
