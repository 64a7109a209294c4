"""Closed-loop model selection: which checkpoint of a training run to keep.

A low behaviour-cloning loss does not mean the policy drives: small errors compound in closed loop,
and the epoch with the lowest validation loss is often not the one that completes the most roads
(the drone's loss fell sharply only in epochs 7-10, and a lane seed with a fine loss drove 70 %).
With ``metric: closed_loop`` the trainer drives the policy being trained every ``every_epochs``
epochs on the *validation* roads / forests (seeds 900-999: never trained on, never reported as test
results) and keeps the checkpoint with the highest success rate, ties broken by the lower
validation loss. ``patience`` stops a run whose score has not improved for that many validations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lnn_control.seeds import HELD_OUT_SEED_START, VALIDATION_SEED_START


@dataclass(frozen=True)
class SelectSection:
    """How ``train`` picks the checkpoint it keeps (launch file section ``select``).

    metric: ``val_loss`` (the lowest behaviour-cloning validation loss) or ``closed_loop`` (the
        highest success rate driving the validation seeds; ties: the lower validation loss).
    every_epochs: closed-loop validation every this many epochs (and after the last one).
    episodes: validation episodes per condition (seeds 900, 901, ...; at most 100).
    conditions: condition specs to validate under (e.g. ``[clean, rain:3]``).
    workers: more than 1: the validation episodes run on worker processes (in ``train``, the run's
        pool of ``max(collect.workers, select.workers)``; 1 = in this process, in memory).
    patience: stop after this many validations without a better score (0 = never stop early).
    restarts: how many times stage 0 may start again from fresh weights when its kept checkpoint's
        success rate is below ``restart_below`` (attempt k initialises the policy with seed
        ``seed + 1000 k`` and draws its validation split and window order from ``train.seed + 1000 k``;
        a run that stalls on the mean-command plateau is chaotic in its seed, README "Measured numbers").
    restart_below: the success rate (0..1) stage 0 must reach to be kept without a restart.
    """

    metric: Literal["val_loss", "closed_loop"] = "val_loss"
    every_epochs: int = 2
    episodes: int = 6
    conditions: list[str] = field(default_factory=lambda: ["clean"])
    workers: int = 1
    patience: int = 0
    restarts: int = 0
    restart_below: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in ("val_loss", "closed_loop"):
            raise ValueError(f"select.metric must be 'val_loss' or 'closed_loop', got {self.metric!r}")
        for name in ("every_epochs", "episodes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"select.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.episodes > HELD_OUT_SEED_START - VALIDATION_SEED_START:
            raise ValueError(f"select.episodes must be ≤ {HELD_OUT_SEED_START - VALIDATION_SEED_START} (validation seeds 900-999)")
        if self.patience < 0:
            raise ValueError(f"select.patience must be ≥ 0 (0 = never stop early), got {self.patience}")
        if self.restarts < 0:
            raise ValueError(f"select.restarts must be ≥ 0 (0 = never restart), got {self.restarts}")
        if not 0.0 <= self.restart_below <= 1.0:
            raise ValueError(f"select.restart_below is a success rate in [0, 1], got {self.restart_below}")
        if bool(self.restarts) != bool(self.restart_below):
            raise ValueError(f"select.restarts is {self.restarts} and select.restart_below is {self.restart_below}: "
                             "give both (e.g. restarts: 1, restart_below: 0.5) or neither")
        if self.restarts and self.metric != "closed_loop":
            raise ValueError(f"select.restarts is {self.restarts} but select.metric is {self.metric!r}: a restart is "
                             "decided on the closed-loop validation score; set metric: closed_loop or restarts: 0")
        if not self.conditions:
            raise ValueError("select.conditions must name at least one condition, e.g. [clean]")


@dataclass(frozen=True)
class Score:
    """A checkpoint's closed-loop result: mean success rate over the conditions (0..1) and its
    behaviour-cloning validation loss (tie-break). Larger :meth:`key` is better."""

    success_rate: float
    val_loss: float

    def key(self) -> tuple[float, float]:
        return (round(self.success_rate, 9), -self.val_loss)

    def to_dict(self) -> dict[str, float]:
        return {"success_rate": self.success_rate, "val_loss": self.val_loss}


class ClosedLoopValidator:
    """Drives a policy on the validation seeds of ``task`` and returns its success rate.

    Serial (``workers == 1``): the in-memory policy, reset per episode. Parallel: the policy is
    saved to a fresh bundle under ``work_dir`` and every (condition, episode) is a task on
    ``executor`` (the training run's pool; without one, a pool of ``workers`` processes per call);
    the same numbers either way (each episode is fixed by its seed)."""

    def __init__(self, task: str, backend: Literal["mujoco", "pybullet"], env_kwargs: dict[str, Any],
                 select: SelectSection, work_dir: Path, executor: Any = None) -> None:
        from lnn_control.evaluate.closed_loop import EvalConfig

        self.select = select
        self.work_dir = Path(work_dir)
        self.config = EvalConfig(
            task=task, backend=backend, conditions=list(select.conditions), episodes=select.episodes,
            env_kwargs=dict(env_kwargs), split="validation",
        )
        self.executor = executor
        self.calls = 0

    def __call__(self, policy: Any) -> dict[str, Any]:
        """Success rate over the validation episodes: ``{"success_rate": float, "per_condition": {...}}``."""
        from lnn_control.evaluate.closed_loop import evaluate, evaluate_parallel, policy_controller

        self.calls += 1
        was_training = policy.training
        policy.eval()
        try:
            if self.select.workers == 1:
                result = evaluate(self.config, policy_controller(policy), policy.reset, policy, progress=False)
            else:
                from lnn_control.parallel.executor import make_executor
                from lnn_control.policies.bundle import save_policy

                bundle = save_policy(policy, self.work_dir / f"candidate{self.calls:03d}", {"command": "validation"},
                                     overwrite=True)
                if self.executor is not None:
                    result = evaluate_parallel(self.config, str(bundle), self.executor, progress=False)
                else:
                    with make_executor("local", self.select.workers) as executor:
                        result = evaluate_parallel(self.config, str(bundle), executor, progress=False)
        finally:
            policy.reset()
            policy.train(was_training)
        per_condition = {c: r["aggregate"]["success_rate"] for c, r in result["conditions"].items()}
        return {"success_rate": float(np.mean(list(per_condition.values()))), "per_condition": per_condition}
