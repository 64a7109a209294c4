"""Offline replay: feed a run log's frames to a policy with the logged dt, compare its commands.

The policy is reset once, as at the start of the run, then stepped on every logged policy step
(``/loop/timing`` state ``run``) in order, with the frame, extras and dt the loop used. With
frames logged every step as PNG the replay reproduces the run's policy outputs exactly (up to
float rounding of the engine); with JPEG frames the difference measures what compression does;
with frames logged at a lower rate only the steps with a frame are replayed and dt becomes the
time between those frames (liquid networks take irregular steps), so differences are larger.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.runtime.logs.runlog import RunLog, decode_image


@dataclass
class ReplayResult:
    """times_s: capture time of each replayed frame since the first; logged / replayed: (N, A)."""

    action_names: tuple[str, ...]
    sequences: list[int]
    times_s: np.ndarray
    logged: np.ndarray
    replayed: np.ndarray
    every_step_had_a_frame: bool
    skipped_steps: int

    @property
    def steps(self) -> int:
        return len(self.sequences)

    @property
    def per_action(self) -> dict[str, dict[str, float]]:
        diff = np.abs(self.replayed - self.logged)
        out = {}
        for i, name in enumerate(self.action_names):
            column = diff[:, i][np.isfinite(diff[:, i])]
            out[name] = {
                "max_abs_diff": float(column.max()) if column.size else math.nan,
                "mean_abs_diff": float(column.mean()) if column.size else math.nan,
            }
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "every_step_had_a_frame": self.every_step_had_a_frame,
            "skipped_steps": self.skipped_steps,
            "per_action": self.per_action,
        }


def replay_log(log: RunLog, policy: Any) -> ReplayResult:
    """Re-run ``policy`` (``reset()`` / ``act(obs, dt)``) on ``log``; see the module docstring."""
    names = log.action_names
    if not names:
        raise ValueError(f"{log.path}: no action names in the run metadata; is this an lnn-control run log?")
    if log.mode == "teleop":
        raise ValueError(
            f"{log.path} is a teleop log: a human drove and no policy ran, so there is nothing to replay; "
            "turn it into training data with 'lnn-control dataset from-log'"
        )
    images = {m.sequence: m.payload for m in log.topic("/camera/image")}
    commands = {m.sequence: m.payload["values"] for m in log.topic("/commands/policy")}
    run_steps = [m for m in log.topic("/loop/timing") if m.payload["state"] == "run"]
    if not run_steps:
        raise ValueError(f"{log.path}: the log holds no policy steps (every step was a stop or hold)")
    usable = [m for m in run_steps if m.sequence in images and m.sequence in commands]
    if not usable:
        raise ValueError(
            f"{log.path}: no policy step has a logged frame; record with log.image_rate_hz: null "
            "(every step) to replay"
        )
    every = len(usable) == len(run_steps)
    policy.reset()
    logged, replayed, times, seqs = [], [], [], []
    previous_ts: float | None = None
    for message in usable:
        timing = message.payload
        frame_ts = float(timing["frame_timestamp_s"])
        if every or previous_ts is None:
            dt = float(timing["dt_s"])
        else:
            dt = frame_ts - previous_ts
        previous_ts = frame_ts
        image = decode_image(base64.b64decode(images[message.sequence]["data"]))
        obs = {"image": image, **{k: np.array([v], np.float32) for k, v in timing.get("extras", {}).items()}}
        action = np.asarray(policy.act(obs, dt), np.float64).reshape(-1)
        values = commands[message.sequence]
        logged.append([math.nan if values.get(n) is None else float(values[n]) for n in names])
        replayed.append(action)
        times.append(frame_ts)
        seqs.append(message.sequence)
    times_arr = np.asarray(times) - times[0]
    return ReplayResult(
        tuple(names), seqs, times_arr, np.asarray(logged), np.asarray(replayed), every,
        len(run_steps) - len(usable),
    )


def plot_replay(result: ReplayResult, path: str | Path) -> None:
    """One panel per action component: logged vs replayed commands over time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.action_names)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n), sharex=True, squeeze=False)
    for i, name in enumerate(result.action_names):
        ax = axes[i, 0]
        ax.plot(result.times_s, result.logged[:, i], label="logged (run)", linewidth=2.0)
        ax.plot(result.times_s, result.replayed[:, i], "--", label="replayed", linewidth=1.2)
        stats = result.per_action[name]
        ax.set_ylabel(name)
        ax.set_title(f"{name}: max |diff| {stats['max_abs_diff']:.2e}, mean {stats['mean_abs_diff']:.2e}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time since first replayed frame (s)")
    fig.tight_layout()
    import io

    from lnn_control.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
