"""Train stage 0 again when it stalled (launch keys ``select.restarts``, ``select.restart_below``).

Whether a behaviour-cloning run leaves the mean-command plateau is chaotic in its seed: the drone
recipe's seed 3 flew 0 % while the same seed with other float rounding flew 70 % (README "Measured
numbers"). With closed-loop selection the run knows when that happened: its kept checkpoint drives
the validation seeds (900-999) badly. Then stage 0 starts again from fresh weights with another
initialisation, up to ``restarts`` times, and the best attempt is kept (the first of equals).
Attempt k initialises the policy with ``seed + 1000 k`` and draws its training/validation episode
split and window order from ``train.seed + 1000 k`` (so its label scale is its own split's too).
Every attempt stays on disk under its own folder (``stage0``, ``stage0-restart1``, ...) so a
resumed run repeats none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lnn_control.train.bc import (
    TrainConfig,
    TrainResult,
    init_output_layer,
    train_behaviour_cloning,
)

logger = logging.getLogger(__name__)

#: Attempt k initialises the policy, splits the episodes and orders the windows with seed + k × this.
RESTART_SEED_STEP = 1000


@dataclass(frozen=True)
class Attempt:
    """One try at stage 0: its folder name and its result (``best_score`` is the validation score)."""

    name: str
    result: TrainResult


def attempt_name(attempt: int) -> str:
    return "stage0" if attempt == 0 else f"stage0-restart{attempt}"


def train_stage0_with_restarts(
    policy: Any,
    dataset: Any,
    config: TrainConfig,
    train_dir: Path,
    fresh_weights: Callable[[int], dict[str, torch.Tensor]],
    *,
    fresh_output_layer: bool = True,
    resume: bool = False,
    progress: bool = True,
    **train_kwargs: Any,
) -> tuple[list[Attempt], int]:
    """Train ``policy`` on ``dataset`` in ``train_dir/<attempt name>``; returns the attempts in the
    order they ran and the index of the kept one (its weights are left in ``policy``).

    fresh_weights(k): the state dict of a freshly built policy initialised with ``seed + k`` (used
        for attempts after the first). fresh_output_layer: fit the output layer to the data before an
        attempt that does not resume (False when the weights come from ``init_from``).
    train_kwargs: passed to :func:`~lnn_control.train.bc.train_behaviour_cloning` (``validator``,
        ``select``, ``label_std``, ``freeze``); without a validator there is one attempt.
    """
    select = train_kwargs.get("select")
    restarts = select.restarts if select is not None and train_kwargs.get("validator") is not None else 0
    tried: list[tuple[Attempt, dict[str, torch.Tensor]]] = []
    for attempt in range(1 + restarts):
        name = attempt_name(attempt)
        if attempt:
            policy.load_state_dict(fresh_weights(RESTART_SEED_STEP * attempt))
        saved = resume and (train_dir / name / "checkpoint").is_dir()
        if fresh_output_layer and not saved:  # a kill before an attempt's first checkpoint: it starts afresh
            init_output_layer(policy, dataset, config.min_label_std, config.output_spread)
        result = train_behaviour_cloning(policy, dataset, attempt_config(config, attempt), train_dir / name, resume=saved,
                                         progress=progress, **train_kwargs)
        done = Attempt(name, result)
        tried.append((done, {k: v.detach().clone() for k, v in policy.state_dict().items()}))
        if select is None or done.result.validation_success >= select.restart_below or attempt == restarts:
            break
        logger.warning("%s: validation success %.0f %% < select.restart_below %.0f %%: stage 0 again from fresh "
                       "weights (seed + %d)", name, 100 * done.result.validation_success, 100 * select.restart_below,
                       RESTART_SEED_STEP * (attempt + 1))
    best = max(range(len(tried)), key=lambda k: tried[k][0].result.validation_success)  # max keeps the first of equals
    policy.load_state_dict(tried[best][1])
    return [attempt for attempt, _ in tried], best


def attempt_config(config: TrainConfig, attempt: int) -> TrainConfig:
    """The training settings of attempt ``attempt`` (its split and window-order seed)."""
    return replace(config, seed=config.seed + RESTART_SEED_STEP * attempt) if attempt else config
