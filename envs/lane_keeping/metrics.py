"""Lane-keeping evaluation metrics, by name, from the env's per-step ``info`` dicts.

Per-step info keys used: ``lateral_offset`` (m, signed), ``heading_error`` (rad),
``progress`` (m along the road), ``lane_departure`` (bool), and on the last step
``success`` (bool: the whole road was driven without a departure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize_episode(infos: Sequence[dict[str, Any]], terminated: bool, truncated: bool) -> dict[str, Any]:
    """Metrics of one episode: success, distance (m), mean/max |lateral error| (m), mean |heading error| (rad)."""
    if not infos:
        raise ValueError("an episode needs at least one step to be summarised")
    lateral = np.abs([float(i["lateral_offset"]) for i in infos])
    heading = np.abs([float(i["heading_error"]) for i in infos])
    departed = [bool(i["lane_departure"]) for i in infos]
    # count rising edges: the env may terminate on the first one, but a wrapper may not
    departures = int(sum(1 for before, now in zip([False, *departed], departed) if now and not before))
    success = bool(infos[-1].get("success", truncated and departures == 0))
    return {
        "success": success and departures == 0,
        "departures": departures,
        "distance_m": float(infos[-1]["progress"]),
        "mean_abs_lateral_error_m": float(lateral.mean()),
        "max_abs_lateral_error_m": float(lateral.max()),
        "mean_abs_heading_error_rad": float(heading.mean()),
        "steps": len(infos),
    }


def aggregate(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-condition numbers: success rate, mean errors (step-weighted), departures per km, distance."""
    if not summaries:
        raise ValueError("no episodes to aggregate")
    steps = np.array([s["steps"] for s in summaries], float)
    distance_km = sum(s["distance_m"] for s in summaries) / 1000.0
    departures = sum(s["departures"] for s in summaries)
    return {
        "episodes": len(summaries),
        "success_rate": float(np.mean([s["success"] for s in summaries])),
        "mean_abs_lateral_error_m": float(np.average([s["mean_abs_lateral_error_m"] for s in summaries], weights=steps)),
        "mean_abs_heading_error_rad": float(np.average([s["mean_abs_heading_error_rad"] for s in summaries], weights=steps)),
        "departures_per_km": float(departures / distance_km) if distance_km > 0 else float("nan"),
        "distance_m": float(sum(s["distance_m"] for s in summaries)),
    }
