"""Where a behaviour-cloning step spends its time (``lnn-control bench bcstep``).

One training step of the task's launch file (its batch size, window length, augmentation and torch
threads) on the task's shipped policy, split into its phases: augmentation of the uint8 windows,
the forward pass, the backward pass and the Adam step. Then the two halves of the network alone
(forward + backward of the perception CNN on the batch's frames; of the core on features of that
shape), and the CNN once more on contiguous NCHW activations instead of the ``channels_last`` ones it
uses (since 2026-12-07), to show what that layout buys. Frames and labels are seeded random numbers: the
cost of these layers does not depend on the pixels. Medians over ``steps`` timed steps, milliseconds;
the step's ``total`` is the sum of its phases' medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Phases of a full step, in the order they run.
PHASES = ("augment", "forward", "backward", "optimizer")


@dataclass(frozen=True)
class BCStepBenchSettings:
    """task: whose launch file and shipped policy; steps: timed steps per figure (after ``warmup``)."""

    task: str = "drone-forest"
    steps: int = 20
    warmup: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.warmup < 0:
            raise ValueError(f"bench bcstep needs steps >= 1 and warmup >= 0, got {self.steps} and {self.warmup}")


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000.0, 2)


def _timed(settings: BCStepBenchSettings, call: Callable[[], None]) -> float:
    """Median wall time of ``call`` in ms over ``settings.steps`` calls after the warm-up."""
    samples = []
    for index in range(settings.warmup + settings.steps):
        started = time.perf_counter()
        call()
        if index >= settings.warmup:
            samples.append(time.perf_counter() - started)
    return _median_ms(samples)


def run_bcstep_bench(settings: BCStepBenchSettings) -> dict[str, Any]:
    """Time the phases (see the module docstring); returns the JSON report."""
    import torch

    from lnn_control.policies.bundle import load_policy
    from lnn_control.runtime.launch import resolve_policy_path
    from lnn_control.tasks import TASKS
    from lnn_control.train.augment import augment_windows
    from lnn_control.train.recipe import load_train_launch

    if settings.task not in TASKS:
        raise ValueError(f"unknown task {settings.task!r}; allowed: {sorted(TASKS)}")
    task = TASKS[settings.task]
    launch, _ = load_train_launch(task.launch_file)
    train = launch.train
    torch.set_num_threads(train.threads)
    policy = load_policy(resolve_policy_path(task.shipped_policy))
    policy.train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-6)
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    b, t = train.batch_size, train.seq_len
    height, width, channels = policy.config.observation_spec.image_shape
    images = rng.integers(0, 256, (b, t, height, width, channels), dtype=np.uint8)
    extras = torch.randn(b, t, len(policy.config.observation_spec.extras), generator=generator)
    dt = torch.full((b, t), 1.0 / float(policy.config.control_rate_hz))
    labels = torch.randn(b, t, policy.config.action_spec.size, generator=generator) * 0.1

    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    for index in range(settings.warmup + settings.steps):
        clock = [time.perf_counter()]
        augmented = torch.from_numpy(augment_windows(images, train.augment, rng))
        clock.append(time.perf_counter())
        actions, _ = policy(augmented, extras, dt)
        loss = ((actions - labels) ** 2).mean()
        clock.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clock.append(time.perf_counter())
        optimizer.step()
        clock.append(time.perf_counter())
        if index >= settings.warmup:
            for name, start, end in zip(PHASES, clock, clock[1:]):
                phases[name].append(end - start)
    step = {name: _median_ms(values) for name, values in phases.items()}
    total = sum(step.values())

    frames = torch.from_numpy(images.reshape(b * t, height, width, channels))
    cnn = policy.perception

    def cnn_pass() -> None:
        cnn.zero_grad(set_to_none=True)
        cnn(frames).sum().backward()

    features = torch.randn(b, t, cnn.config.features + extras.shape[-1], generator=generator)

    def core_pass() -> None:
        policy.zero_grad(set_to_none=True)
        outputs, _ = policy.core(features, None, dt=policy._core_dt(dt))
        outputs.sum().backward()

    cnn_ms = _timed(settings, cnn_pass)
    core_ms = _timed(settings, core_pass)
    cnn_nchw = _nchw_copy(cnn)

    def cnn_nchw_pass() -> None:
        cnn_nchw.zero_grad(set_to_none=True)
        cnn_nchw(frames).sum().backward()

    cnn_nchw_ms = _timed(settings, cnn_nchw_pass)
    return {
        "settings": asdict(settings),
        "training": {"batch_size": b, "seq_len": t, "threads": train.threads, "launch_file": task.launch_file,
                     "policy": task.shipped_policy, "augment": asdict(train.augment)},
        "step_ms": {**step, "total": round(total, 2)},
        "step_share": {name: round(value / total, 3) for name, value in step.items()},
        "parts_forward_backward_ms": {"cnn": cnn_ms, "core": core_ms, "cnn_nchw": cnn_nchw_ms},
        "cnn_channels_last_speedup": round(cnn_nchw_ms / cnn_ms, 2) if cnn_ms > 0 else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_1min": round(os.getloadavg()[0], 2)},
    }


def _nchw_copy(cnn: Any) -> Any:
    """A copy of the perception CNN whose conv stack runs on contiguous NCHW activations (the layout
    training used before 2026-12-07)."""
    import copy

    import torch

    twin = copy.deepcopy(cnn)
    convs = twin.convs

    class _Nchw(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = convs

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.contiguous())

    twin.convs = _Nchw()
    return twin


def format_bcstep_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_bcstep_bench`'s report."""
    training = report["training"]
    lines = [f"BC step of {training['launch_file']} on {training['policy']}: B={training['batch_size']} "
             f"T={training['seq_len']}, {training['threads']} torch thread(s); medians, ms"]
    for name in PHASES:
        lines.append(f"  {name:<10} {report['step_ms'][name]:>8.1f}  ({report['step_share'][name] * 100:.0f} %)")
    lines.append(f"  {'total':<10} {report['step_ms']['total']:>8.1f}")
    parts = report["parts_forward_backward_ms"]
    lines.append(f"forward + backward alone: CNN {parts['cnn']:.1f}, core {parts['core']:.1f}; the CNN on NCHW "
                 f"activations {parts['cnn_nchw']:.1f} (channels_last is {report['cnn_channels_last_speedup']}x faster)")
    return "\n".join(lines)
