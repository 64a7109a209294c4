"""Drone-forest evaluation metrics, by name, from the env's per-step ``info`` dicts.

Per-step info keys used: ``x``, ``y``, ``z`` (m), ``clearance`` (m), ``collision`` (bool),
``sim_time`` (s), ``distance_to_target`` (m), and on the last step ``success`` and ``end_reason``.
The first info is the one ``reset`` returned (the start), if the caller includes it.

Times for episodes that did not reach the target are ``None`` (JSON ``null``), not NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize_episode(infos: Sequence[dict[str, Any]], terminated: bool, truncated: bool) -> dict[str, Any]:
    """Metrics of one episode: success, collision, time to target (s, None unless success), path
    length (m, sum of step displacements), minimum clearance (m), final distance (m), end reason."""
    if not infos:
        raise ValueError("an episode needs at least one step to be summarised")
    positions = np.array([[float(i["x"]), float(i["y"]), float(i["z"])] for i in infos])
    finite = np.all(np.isfinite(positions), axis=1)
    positions = positions[finite]
    path = float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum()) if len(positions) > 1 else 0.0
    last = infos[-1]
    collision = any(bool(i["collision"]) for i in infos) or last.get("end_reason") == "collision"
    success = bool(last.get("success", False)) and not collision
    return {
        "success": success,
        "collision": collision,
        "time_to_target_s": float(last["sim_time"]) if success else None,
        "path_length_m": path,
        "min_clearance_m": float(min(float(i["clearance"]) for i in infos)),
        "final_distance_m": float(last["distance_to_target"]),
        "end_reason": str(last.get("end_reason", "")) or ("time_limit" if truncated else ""),
        "terminated": bool(terminated),
        "steps": len(infos),
    }


def aggregate(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-condition numbers: success rate, collision rate, mean time to target (successful
    episodes; None if none), mean path length (m), mean and smallest per-episode minimum clearance (m)."""
    if not summaries:
        raise ValueError("no episodes to aggregate")
    times = [s["time_to_target_s"] for s in summaries if s["success"] and s["time_to_target_s"] is not None]
    clearances = [s["min_clearance_m"] for s in summaries]
    return {
        "episodes": len(summaries),
        "success_rate": float(np.mean([s["success"] for s in summaries])),
        "collision_rate": float(np.mean([s["collision"] for s in summaries])),
        "mean_time_to_target_s": float(np.mean(times)) if times else None,
        "mean_path_length_m": float(np.mean([s["path_length_m"] for s in summaries])),
        "mean_min_clearance_m": float(np.mean(clearances)),
        "min_clearance_m": float(np.min(clearances)),
    }
