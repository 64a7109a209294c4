"""Which part of ``wind:3`` a drone policy fails on: the steady wind or the gusts.

    python wind_diag.py POLICY MEAN_M_S GUST_STD_M_S [EPISODES]

Flies POLICY (a bundle folder) on held-out forests 1000+ (PyBullet) under the ``wind:3`` condition
with its (mean speed, gust standard deviation) replaced by the given pair (``wind:3`` is 3.0, 1.5;
``envs/wrappers/dynamics.py`` ``WIND_BY_SEVERITY``), and prints one JSON line: success and collision
rates, the mean closest approach to a trunk surface (m), the failed seeds, and ``gap_mean``: the
mean |policy action - expert action| per component (vx, vy, vz m/s, yaw rate rad/s) along the
policy's own flight (the expert labels the states the policy visits, as in DAgger).
"""

from __future__ import annotations

import json
import sys

import numpy as np

import lnn_control.envs.wrappers.dynamics as dynamics
from lnn_control.evaluate.closed_loop import EvalConfig, evaluate
from lnn_control.policies.bundle import load_policy_in_worker


def main(policy_ref: str, mean: float, gust: float, episodes: int = 20) -> dict:
    table = list(dynamics.WIND_BY_SEVERITY)
    table[2] = (mean, gust)
    dynamics.WIND_BY_SEVERITY = tuple(table)  # read by WindGusts.from_severity when each env is made
    config = EvalConfig(task="drone-forest", backend="pybullet", conditions=["wind:3"], episodes=episodes)
    policy = load_policy_in_worker(policy_ref)
    gaps: list[np.ndarray] = []

    def act(env, observation, dt):
        action = policy.act(observation, dt)
        gaps.append(np.abs(action - np.asarray(env.unwrapped.expert_action(), np.float32)))
        return action

    rows = evaluate(config, act, policy.reset, policy, progress=False)["conditions"]["wind:3"]["episodes"]
    return {
        "policy": policy_ref, "mean": mean, "gust": gust,
        "success": float(np.mean([r["success"] for r in rows])),
        "collision": float(np.mean([r["collision"] for r in rows])),
        "min_clearance_mean": float(np.mean([r["min_clearance_m"] for r in rows])),
        "gap_mean": np.mean(gaps, axis=0).round(3).tolist(),
        "fails": [r["seed"] for r in rows if not r["success"]],
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(args[0], float(args[1]), float(args[2]), int(args[3]) if len(args) > 3 else 20)))
