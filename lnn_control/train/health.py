"""Whether the camera still reaches the core: a probe logged with every epoch in ``metrics.jsonl``.

The drone runs that stalled at the mean command had let their unbounded CNN features drift to a
median |x| of 5-90, where 93-100 % of the LTC's image synapses (``sigmoid(sigma (x - mu))``) saturate,
so neither the frame nor a gradient crosses them (their kept stage-0 weights,
``assets/benchmarks/drone_recipe_seeds/feature_norm_2026-12-07/``: stalled runs 0.93-1.0; runs that
trained 0.0-0.87, 0.0 with ``policy.feature_norm: layer_tanh``). :func:`perception_health` measures
both after every epoch, between the closed-loop validations, on the first steps of a few held-out
episodes, with no gradients, no augmentation and no random draws (a run's numbers and its bundle are
the same with or without it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lnn_control.data.episodes import Episode
from lnn_control.explain.internals import is_ltc, ltc_sensory_saturation
from lnn_control.train.windows import Window, assemble_batch

#: Share of saturated image synapses from which the metrics line carries a warning: above every run
#: that trained, below every run that stalled (module docstring).
SATURATION_WARNING = 0.9


def episode_starts_pass(policy: Any, chosen: dict[int, Episode], steps: int = 32,
                        settle: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``policy`` (eval mode, no gradients, no augmentation) on the first ``steps`` control steps of
    each episode in ``chosen`` and return ``(core_output [N,A], core_input [N,F+E])`` over the steps
    after each episode's first ``settle`` (the core starts at rest; every step when all are shorter)."""
    windows = [Window(i, 0, min(steps, len(episode.label))) for i, episode in chosen.items()]
    batch = assemble_batch(chosen, windows, 1.0 / float(policy.config.control_rate_hz))
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            core_output, _, core_input = policy.core_pass(
                torch.from_numpy(batch.images), torch.from_numpy(batch.extras), torch.from_numpy(batch.dt))
    finally:
        policy.train(was_training)
    mask = batch.mask.astype(bool).copy()
    mask[:, :settle] = False
    if not mask.any():
        mask = batch.mask.astype(bool)  # episodes shorter than the settling time: every step
    kept = torch.from_numpy(mask)
    return core_output[kept], core_input[kept]


def perception_health(policy: Any, episodes: dict[int, Episode], episode_ids: list[int],
                      count: int = 16, steps: int = 32, settle: int = 8) -> dict[str, Any]:
    """Probe ``policy`` on the first ``steps`` control steps of up to ``count`` of ``episode_ids``
    (spread over the list), leaving out each episode's first ``settle`` steps (the core starts at rest).

    Returns ``feature_abs_median`` (median |CNN feature| over features and steps) and, for an LTC core,
    ``image_synapse_saturation``: the median over steps of the share of image synapses whose slope is
    below :data:`~lnn_control.explain.internals.SATURATED_SLOPE` (0..1), plus ``warning`` (a sentence)
    when that share is at least :data:`SATURATION_WARNING`."""
    if not episode_ids:
        raise ValueError("perception_health needs at least one episode id; the plan has no episodes")
    picks = np.linspace(0, len(episode_ids) - 1, min(count, len(episode_ids))).round().astype(int)
    chosen = {episode_ids[int(k)]: episodes[episode_ids[int(k)]] for k in dict.fromkeys(picks.tolist())}
    _, x = episode_starts_pass(policy, chosen, steps, settle)  # [steps, F + E]
    features = policy.config.perception.features
    result: dict[str, Any] = {"feature_abs_median": round(float(x[:, :features].abs().median()), 4)}
    if is_ltc(policy.core):
        share = float(ltc_sensory_saturation(policy.core, x, features).median())
        result["image_synapse_saturation"] = round(share, 4)
        if share >= SATURATION_WARNING:
            result["warning"] = (
                f"{share:.0%} of the core's image synapses are saturated: the frame no longer reaches the core "
                "and the run is likely to stall at the mean command; set policy.feature_norm: layer_tanh"
            )
    return result
