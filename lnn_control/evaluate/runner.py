"""Run a policy closed-loop on held-out seeds under each condition and summarise by name.

Per episode the env's per-step ``info`` dicts go to the task's
``metrics.summarize_episode(infos, terminated, truncated)``; per condition the summaries go
to ``metrics.aggregate(summaries)``. The result is plain JSON-able data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from lnn_control.data.collect import env_specs, make_env
from lnn_control.spec import check_compatible
from lnn_control.tasks import HELD_OUT_SEED_START, get_task, held_out_seed


class StreamingPolicy(Protocol):
    observation_spec: Any
    action_spec: Any

    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray: ...


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate: task, backend, conditions (spec strings), episodes per condition, base seed ≥ 1000."""

    task: str = "lane-keeping"
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    conditions: list[str] = field(default_factory=lambda: ["clean"])
    episodes: int = 20
    seed: int = HELD_OUT_SEED_START
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.episodes < 1:
            raise ValueError(f"episodes must be ≥ 1, got {self.episodes}")
        if self.seed < HELD_OUT_SEED_START:
            raise ValueError(
                f"evaluation seed {self.seed} is a training seed; held-out seeds start at {HELD_OUT_SEED_START}"
            )
        if not self.conditions:
            raise ValueError("conditions must name at least one condition, e.g. 'clean'")


Controller = Callable[[Any, dict[str, np.ndarray], float], np.ndarray]


def policy_controller(policy: StreamingPolicy) -> Controller:
    """Drive with a learned policy."""

    def act(env: Any, observation: dict[str, np.ndarray], dt: float) -> np.ndarray:
        return policy.act(observation, dt)

    return act


def expert_controller(env: Any, observation: dict[str, np.ndarray], dt: float) -> np.ndarray:
    """Drive with the env's privileged expert (the baseline every policy is compared to)."""
    return np.asarray(env.unwrapped.expert_action(), np.float32)


def evaluate(
    config: EvalConfig,
    controller: Controller,
    reset: Callable[[], None] | None = None,
    policy: StreamingPolicy | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate; returns ``{"config": ..., "conditions": {spec: {"aggregate": ..., "episodes": [...]}}}``."""
    metrics = get_task(config.task).metrics()
    results: dict[str, Any] = {}
    for condition in config.conditions:
        summaries = []
        iterator = range(config.episodes)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"eval {condition}", unit="episode", leave=False)
        for index in iterator:
            seed = held_out_seed(index, config.seed)
            env = make_env(config.task, config.backend, condition, seed, **config.env_kwargs)
            try:
                if policy is not None:
                    obs_spec, act_spec = env_specs(env)
                    check_compatible(policy.observation_spec, obs_spec, "env observation spec")
                    check_compatible(policy.action_spec, act_spec, "env action spec")
                if reset is not None:
                    reset()
                summary = run_episode(env, controller, seed, metrics)
            finally:
                env.close()
            summary["seed"] = seed
            summaries.append(summary)
        results[condition] = {"aggregate": metrics.aggregate(summaries), "episodes": summaries}
    return {
        "config": {
            "task": config.task,
            "backend": config.backend,
            "conditions": list(config.conditions),
            "episodes": config.episodes,
            "seed": config.seed,
        },
        "conditions": results,
    }


def run_episode(env: Any, controller: Controller, seed: int, metrics: Any) -> dict[str, Any]:
    """One closed-loop episode; returns the task's per-episode summary."""
    dt = float(env.unwrapped.control_dt)
    obs, info = env.reset(seed=seed)
    infos = []
    terminated = truncated = False
    while not (terminated or truncated):
        action = controller(env, obs, dt)
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
    return metrics.summarize_episode(infos, terminated, truncated)
