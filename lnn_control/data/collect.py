"""Collect demonstrations: the privileged expert drives (with DART noise) or labels a learner (DAgger).

For every control step we store the frame the policy would see, the action actually applied,
and the expert's action for that frame (the label). Two modes:

- expert rollouts with DART noise injection: applied = clip(expert + N(0, noise_std)), so the
  data covers the small recoveries a learner needs;
- DAgger rounds (``learner`` given): applied = learner action with probability
  ``learner_mix`` (else the expert's), label = expert action — the learner visits its own
  mistakes and the expert says how to recover.

Episodes are written one file each as they finish (see :mod:`lnn_control.data.episodes`).

Noise seeding (``noise_seeding``): ``shared`` draws every episode's noise from one generator seeded
with ``seed``, in episode order (how the shipped bundles' data was collected; a resumed or parallel
collection would draw other noise, so it runs serially). ``per_episode`` gives episode ``i`` its own
generator seeded with ``(seed, i)``: the data no longer depends on order, worker count or a resume,
and ``collect(..., executor=...)`` runs the episodes in parallel (each worker writes its episode
to a private folder; the files are adopted into the dataset in episode order). A DAgger learner
travels to the workers as a policy bundle written next to those folders; each worker loads it once
and runs it on one thread.
"""

from __future__ import annotations

import shutil
import time
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
    first_index: index of the first episode to collect (a resumed collection continues at the
        number it has): episode ``i`` drives training seed ``seed + i`` under ``conditions[i % n]``.
    noise_seeding: ``shared`` or ``per_episode`` (see the module docstring).
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
    first_index: int = 0
    noise_seeding: Literal["shared", "per_episode"] = "shared"

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.first_index < 0:
            raise ValueError(f"CollectConfig.first_index must be ≥ 0, got {self.first_index}")
        if self.noise_seeding not in ("shared", "per_episode"):
            raise ValueError(f"CollectConfig.noise_seeding must be 'shared' or 'per_episode', got {self.noise_seeding!r}")
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
    executor: Any = None,
) -> CollectSummary:
    """Run ``config.episodes`` episodes and append them to the dataset at ``out_dir``.

    executor: a :mod:`lnn_control.parallel` executor to run the episodes on (``noise_seeding:
    per_episode`` only; a ``learner`` must then be a :class:`~lnn_control.policies.policy.Policy`,
    saved as a bundle for the workers); None runs them here, one after the other."""
    indices = range(config.first_index, config.first_index + config.episodes)
    if executor is not None:
        if config.noise_seeding != "per_episode":
            raise ValueError("parallel collection needs noise_seeding: per_episode (shared noise is drawn in "
                             "episode order); set collect.noise_seeding: per_episode or use one worker")
        return _collect_parallel(config, Path(out_dir), indices, executor, progress, learner)
    shared_rng = np.random.default_rng(config.seed)
    writer: EpisodeWriter | None = None
    total_steps, successes = 0, 0
    iterator: Any = indices
    if progress:
        from tqdm import tqdm

        iterator = tqdm(indices, desc=f"collect {config.task}/{config.backend}", unit="episode")
    for index in iterator:
        env = _episode_env(config, index)
        try:
            if writer is None:
                obs_spec, act_spec = env_specs(env)
                writer = EpisodeWriter(out_dir, DatasetManifest(obs_spec, act_spec, created_by="lnn-control collect"))
            rng = shared_rng if config.noise_seeding == "shared" else episode_rng(config.seed, index)
            steps, success = _run_episode(env, writer, training_seed(index, config.seed),
                                          _condition(config, index), config, learner, rng)
        finally:
            env.close()
        total_steps += steps
        successes += int(success)
    return CollectSummary(config.episodes, total_steps, successes, _episode_paths(Path(out_dir)))


def episode_rng(seed: int, index: int) -> np.random.Generator:
    """Episode ``index``'s own noise generator (``noise_seeding: per_episode``)."""
    return np.random.default_rng([int(seed), int(index)])


def collect_episode_task(config: CollectConfig, index: int, folder: str, learner_bundle: str | None = None
                         ) -> tuple[int, bool]:
    """One episode (``per_episode`` noise; DAgger when ``learner_bundle`` names the learner's bundle)
    written as the only episode of the dataset ``folder``: the unit of work of a parallel
    collection. Returns (steps, expert reached the end)."""
    learner = None
    if learner_bundle is not None:
        from lnn_control.policies.bundle import load_policy_in_worker

        learner = load_policy_in_worker(learner_bundle)
    env = _episode_env(config, index)
    try:
        obs_spec, act_spec = env_specs(env)
        writer = EpisodeWriter(folder, DatasetManifest(obs_spec, act_spec, created_by="lnn-control collect"))
        return _run_episode(env, writer, training_seed(index, config.seed), _condition(config, index), config,
                            learner, episode_rng(config.seed, index))
    finally:
        env.close()


def _collect_parallel(config: CollectConfig, out_dir: Path, indices: range, executor: Any,
                      progress: bool, learner: Any = None) -> CollectSummary:
    staging = out_dir.parent / f".{out_dir.name}.episodes-in-progress"
    shutil.rmtree(staging, ignore_errors=True)  # what a killed collection left
    learner_bundle = None
    if learner is not None:
        from lnn_control.policies.bundle import save_policy
        from lnn_control.policies.policy import Policy

        if not isinstance(learner, Policy):
            raise ValueError(f"a parallel DAgger collection sends the learner to its workers as a policy bundle, so "
                             f"it must be a Policy, got {type(learner).__name__}; collect without an executor")

        # a fresh folder per call: workers cache a loaded bundle by its path
        learner_bundle = str(save_policy(learner, staging / f"learner-{time.time_ns()}", {"command": "DAgger learner"}))
    futures = [executor.submit(collect_episode_task, config, index, str(staging / f"{index:06d}"), learner_bundle)
               for index in indices]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc=f"collect {config.task}/{config.backend} ×{executor.workers}", unit="episode")
    total_steps, successes = 0, 0
    writer: EpisodeWriter | None = None
    try:
        for index, future in zip(indices, futures):  # adopted in episode order, as each is ready
            steps, success = future.result()
            folder = staging / f"{index:06d}"
            if writer is None:
                writer = EpisodeWriter(out_dir, DatasetManifest.read(folder))
            (episode,) = _episode_paths(folder)
            writer.adopt_episode(episode)
            total_steps += steps
            successes += int(success)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
        for future in futures:  # after a failed episode: none of the others may still write into staging
            if not future.cancel():
                try:
                    future.exception()
                except BaseException:  # noqa: BLE001 - a worker that died; its error is not ours to raise
                    pass
        shutil.rmtree(staging, ignore_errors=True)
    return CollectSummary(config.episodes, total_steps, successes, _episode_paths(out_dir))


def _episode_env(config: CollectConfig, index: int) -> Any:
    return make_env(config.task, config.backend, _condition(config, index), training_seed(index, config.seed),
                    domain_randomization=config.domain_randomization, **config.env_kwargs)


def _condition(config: CollectConfig, index: int) -> str:
    return config.conditions[index % len(config.conditions)]


def _episode_paths(folder: Path) -> list[Path]:
    return sorted((folder / "episodes").glob("episode_*.safetensors"))


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
