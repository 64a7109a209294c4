"""Run a policy closed-loop on held-out seeds under each condition and summarise by name.

Per episode the env's per-step ``info`` dicts go to the task's
``metrics.summarize_episode(infos, terminated, truncated)``; per condition the summaries go
to ``metrics.aggregate(summaries)``. The result is plain JSON-able data.

Camera timing: under a condition that reports frame delivery (``framedrop``, see
:mod:`lnn_control.envs.wrappers.timing`) the controller runs only on steps whose
``info["frame_delivered"]`` is true, with ``dt`` = the measured time between the capture
timestamps of consecutive delivered frames (``dt_mode="measured"``) or the env's nominal period
(``dt_mode="nominal"``, the ablation); the last command is held in between. Without such a
condition every step delivers a frame and ``dt`` is the control period.

``evaluate(..., executor=...)`` runs the episodes as independent tasks on the parallel seam
(:mod:`lnn_control.parallel`); each episode's seed fixes it, so the results equal the serial ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from lnn_control.data.collect import env_specs, make_env
from lnn_control.seeds import (
    HELD_OUT_SEED_START,
    VALIDATION_SEED_START,
    held_out_seed,
    validation_seed,
)
from lnn_control.spec import ActionSpec, ObservationSpec, check_compatible
from lnn_control.tasks import get_task


class StreamingPolicy(Protocol):
    @property
    def observation_spec(self) -> ObservationSpec: ...

    @property
    def action_spec(self) -> ActionSpec: ...

    def reset(self) -> None: ...

    def act(self, observation: dict[str, np.ndarray], dt: float) -> np.ndarray: ...


DtMode = Literal["measured", "nominal"]
DT_MODES: tuple[str, ...] = ("measured", "nominal")


Split = Literal["test", "validation"]


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate: task, backend, conditions (spec strings), episodes per condition, base seed.

    split ``test`` (default): held-out seeds from ``seed`` ≥ 1000. ``validation``: the model
    selection seeds 900 + i (``seed`` is ignored; at most 100 episodes), never trained on and
    never reported as test results."""

    task: str = "lane-keeping"
    backend: Literal["mujoco", "pybullet"] = "pybullet"
    conditions: list[str] = field(default_factory=lambda: ["clean"])
    episodes: int = 20
    seed: int = HELD_OUT_SEED_START
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    dt_mode: DtMode = "measured"
    split: Split = "test"

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.dt_mode not in DT_MODES:
            raise ValueError(f"dt_mode must be one of {list(DT_MODES)}, got {self.dt_mode!r}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be ≥ 1, got {self.episodes}")
        if self.split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation', got {self.split!r}")
        if self.split == "validation" and self.episodes > HELD_OUT_SEED_START - VALIDATION_SEED_START:
            raise ValueError(f"the validation split has {HELD_OUT_SEED_START - VALIDATION_SEED_START} seeds, asked for {self.episodes}")
        if self.split == "validation" and self.seed != HELD_OUT_SEED_START:
            raise ValueError(f"the validation split always uses seeds {VALIDATION_SEED_START}+; leave seed at its default")
        if self.split == "test" and self.seed < HELD_OUT_SEED_START:
            raise ValueError(
                f"evaluation seed {self.seed} is a training seed; held-out seeds start at {HELD_OUT_SEED_START}"
            )

        if not self.conditions:
            raise ValueError("conditions must name at least one condition, e.g. 'clean'")

    def episode_seed(self, index: int) -> int:
        """The road / forest seed of episode ``index``."""
        return validation_seed(index) if self.split == "validation" else held_out_seed(index, self.seed)


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
    results: dict[str, list[dict[str, Any]]] = {}
    for condition in config.conditions:
        iterator = range(config.episodes)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"eval {condition}", unit="episode", leave=False)
        results[condition] = [
            _episode_in_env(config, condition, index, controller, reset, policy) for index in iterator
        ]
    return _assemble(config, results)


def evaluate_parallel(config: EvalConfig, policy_ref: str, executor: Any, progress: bool = True) -> dict[str, Any]:
    """:func:`evaluate` with every (condition, episode) a task on ``executor``.

    ``policy_ref``: a policy bundle path (loaded once per worker) or ``"expert"``. Same numbers as
    the serial run: each episode is fixed by its seed and starts from a reset policy.
    """
    futures = {
        (condition, index): executor.submit(evaluate_episode_task, config, condition, index, policy_ref)
        for condition in config.conditions
        for index in range(config.episodes)
    }
    if progress:
        from concurrent.futures import as_completed

        from tqdm import tqdm

        for _ in tqdm(as_completed(futures.values()), total=len(futures), desc="eval", unit="episode", leave=False):
            pass
    results = {c: [futures[(c, i)].result() for i in range(config.episodes)] for c in config.conditions}
    return _assemble(config, results)


def evaluate_episode_task(config: EvalConfig, condition: str, index: int, policy_ref: str) -> dict[str, Any]:
    """One evaluation episode (a task for the parallel seam): the summary of episode ``index``."""
    if policy_ref == "expert":
        return _episode_in_env(config, condition, index, expert_controller, None, None)
    from lnn_control.policies.bundle import load_policy_in_worker

    policy = load_policy_in_worker(policy_ref)
    return _episode_in_env(config, condition, index, policy_controller(policy), policy.reset, policy)


def _episode_in_env(
    config: EvalConfig,
    condition: str,
    index: int,
    controller: Controller,
    reset: Callable[[], None] | None,
    policy: StreamingPolicy | None,
) -> dict[str, Any]:
    seed = config.episode_seed(index)
    env = make_env(config.task, config.backend, condition, seed, **config.env_kwargs)
    try:
        if policy is not None:
            obs_spec, act_spec = env_specs(env)
            check_compatible(policy.observation_spec, obs_spec, "env observation spec")
            check_compatible(policy.action_spec, act_spec, "env action spec")
        if reset is not None:
            reset()
        summary = run_episode(env, controller, seed, get_task(config.task).metrics(), config.dt_mode)
    finally:
        env.close()
    summary["seed"] = seed
    return summary


def _assemble(config: EvalConfig, results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    metrics = get_task(config.task).metrics()
    return {
        "config": {
            "task": config.task,
            "backend": config.backend,
            "conditions": list(config.conditions),
            "episodes": config.episodes,
            "seed": config.seed,
            "dt_mode": config.dt_mode,
            "split": config.split,
        },
        "conditions": {
            condition: {"aggregate": metrics.aggregate(summaries), "episodes": summaries}
            for condition, summaries in results.items()
        },
    }


def run_episode(
    env: Any, controller: Controller, seed: int, metrics: Any, dt_mode: DtMode = "measured"
) -> dict[str, Any]:
    """One closed-loop episode; returns the task's per-episode summary.

    The controller runs on delivered frames only (every step unless the env reports
    ``frame_delivered``), with the measured or nominal ``dt`` (see the module docstring); the
    summary gains ``policy_steps`` (controller calls) when frames were dropped.
    """
    nominal = float(env.unwrapped.control_dt)
    obs, info = env.reset(seed=seed)
    infos = []
    terminated = truncated = False
    last_stamp = info.get("frame_timestamp")
    action = controller(env, obs, nominal)
    calls = 1
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
        if not info.get("frame_delivered", True):
            continue  # no new frame: hold the last command
        stamp = info.get("frame_timestamp")
        dt = nominal
        if dt_mode == "measured" and stamp is not None and last_stamp is not None:
            dt = float(stamp) - float(last_stamp)
        last_stamp = stamp
        action = controller(env, obs, dt)
        calls += 1
    summary = metrics.summarize_episode(infos, terminated, truncated)
    if any("frame_delivered" in i for i in infos):
        summary["policy_steps"] = calls
    return summary
