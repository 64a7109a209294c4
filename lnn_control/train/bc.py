"""Behaviour cloning with truncated BPTT: the training loop.

``train_behaviour_cloning(policy, dataset, config, out_dir)`` fits a policy to the expert
labels of an :class:`~lnn_control.data.episodes.EpisodeDataset` and writes, under ``out_dir``:

- ``checkpoint/``     atomic checkpoint after every epoch (``resume=True`` continues from it)
- ``metrics.jsonl``   one JSON line per epoch (train/val loss, seconds, the perception health probe of
                      :mod:`lnn_control.train.health`), flushed each epoch
- ``tensorboard/``    the same scalars for TensorBoard (when the package is installed)

and returns the model with the best validation loss loaded. Loss: mean squared error on
actions normalised to [-1, 1] by the action spec, padding masked out; with
``label_scaling="dataset_std"`` (default) each action component's error is further divided by
the standard deviation of its training labels (floored at ``min_label_std``), so a component that
varies little (the drone's lateral velocity, ±0.1 around its mean) weighs as much as one that
varies a lot. Measured on one drone episode: with range scaling alone the lateral-velocity error
stayed at its label variance (nothing learned) for 60 steps; standardised, it fell to 23 % of it.
:func:`init_output_layer` starts a fresh policy at the mean label with output gains of one label
standard deviation (same measurement; why the gain matters: its docstring).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from lnn_control.atomic import atomic_write_bytes
from lnn_control.data.episodes import Episode, EpisodeDataset
from lnn_control.data.mixture import DatasetMix
from lnn_control.spec import ActionSpec
from lnn_control.train.augment import AugmentConfig, augment_windows
from lnn_control.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lnn_control.train.freeze import frozen
from lnn_control.train.health import episode_starts_pass, perception_health
from lnn_control.train.readout import FeatureReadout, TrainedModules
from lnn_control.train.sampling import WindowPlan, plan_windows
from lnn_control.train.selection import Score, SelectSection
from lnn_control.train.windows import Window, assemble_batch

if TYPE_CHECKING:
    from lnn_control.policies.policy import Policy

logger = logging.getLogger(__name__)

LABEL_SCALINGS = ("dataset_std", "range")
"""``range``: errors in units of half the action range; ``dataset_std``: additionally divided by
each component's label standard deviation over the training episodes."""


def normalised_labels(episodes: Iterable[Episode], spec: ActionSpec) -> np.ndarray:
    """The episodes' expert labels mapped to [-1, 1] by the action spec, [N, A]."""
    low, high = np.asarray(spec.low, np.float64), np.asarray(spec.high, np.float64)
    labels = np.concatenate([np.asarray(episode.label, np.float64) for episode in episodes], axis=0)
    return (labels - (low + high) / 2) / ((high - low) / 2)


def init_output_layer(policy: Policy, dataset: EpisodeDataset | DatasetMix, min_label_std: float = 0.05,
                      output_spread: float = 0.0) -> None:
    """Start a fresh policy's output scaling at the labels' statistics: the bias so a zero core
    output gives the mean label (tanh or clip squash), the gain so one unit of core output moves an
    action component by about its label standard deviation (normalised units, floored at
    ``min_label_std``).

    The gain matters with ``dataset_std`` loss scaling: at the default gain of 1 the untrained
    core's output noise is many label standard deviations wide on a quiet component (the drone's
    yaw rate: std 0.07 of the range), so the quickest way down the loss was gain → 0, after which
    no gradient reached that motor neuron. Measured: a drone policy trained so ended with yaw-rate
    and vz gains of 0.006, flew a constant command and reached no target.

    ``output_spread`` > 0 fits the layer to the fresh core instead of to a unit output: the core runs
    on windows of the data (:func:`core_output_statistics`), the gain is set so its output spread
    across frames is ``output_spread`` label standard deviations (at most 50 × the default gain) and
    the bias so its mean output gives the mean label. A fresh drone NCP's motor outputs vary by only
    0.01–0.07 across frames, so at the default gain the policy starts as a near-constant command."""
    from lnn_control.policies.policy import OutputSquash

    labels = normalised_labels(iter(dataset), dataset.manifest.action_spec)
    mean = np.clip(labels.mean(axis=0), -0.95, 0.95)
    bias = np.arctanh(mean) if policy.config.output_squash is OutputSquash.TANH else mean
    gain = np.clip(labels.std(axis=0), min_label_std, 1.0)
    if output_spread > 0:
        core_mean, core_std = core_output_statistics(policy, dataset)
        gain = gain * output_spread / np.maximum(core_std, output_spread / 50.0)
        bias = bias - gain * core_mean
    with torch.no_grad():
        policy.output_bias.copy_(torch.as_tensor(bias, dtype=policy.output_bias.dtype))
        policy.output_gain.copy_(torch.as_tensor(gain, dtype=policy.output_gain.dtype))


def core_output_statistics(policy: Policy, dataset: EpisodeDataset | DatasetMix, episodes: int = 32,
                           steps: int = 32, settle: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``[A]`` of the core's outputs (before the output layer) over the
    first ``steps`` control steps of up to ``episodes`` episodes spread over the dataset, leaving out
    each window's first ``settle`` steps (the core starts from rest). No augmentation, no gradients."""
    chosen = np.linspace(0, len(dataset) - 1, min(episodes, len(dataset))).round().astype(int)
    picked = {int(i): dataset[int(i)] for i in dict.fromkeys(chosen)}
    outputs = episode_starts_pass(policy, picked, steps, settle)[0].numpy()
    return outputs.mean(axis=0).astype(np.float64), outputs.std(axis=0).astype(np.float64)


@dataclass(frozen=True)
class TrainConfig:
    """Behaviour-cloning hyper-parameters.

    seq_len / stride: window length and spacing in control steps (truncated BPTT length).
    lr: Adam learning rate; grad_clip: max global gradient norm (liquid ODE cells need it).
    val_fraction: share of episodes held out for validation (split by episode, seeded).
    threads: torch intra-op threads (2 on the project's reference machine).
    label_scaling / min_label_std: loss scaling per action component (see the module docstring);
    the floor is in normalised units ([-1, 1] = the action range).
    lr_schedule / warmup_steps: the learning rate rises linearly from 0 over ``warmup_steps``
    optimizer steps, then stays (``constant``) or follows a cosine to 0 at the last step (``cosine``).
    aux_readout: weight of the auxiliary frame-wise readout's loss (:mod:`lnn_control.train.readout`:
    CNN features + extras -> labels, trained alongside, never shipped); 0 = off. The logged
    ``train_loss`` and every validation loss are the policy's alone either way.
    output_spread: 0 = a fresh policy's output layer maps one unit of core output to one label
    standard deviation; > 0 = fitted to the fresh core's outputs on the data (:func:`init_output_layer`).
    core_lr_scale: the recurrent core's parameters learn at ``lr × core_lr_scale`` (the perception
    CNN, the output layer and the extras' scaling at ``lr``); 1 = one learning rate for everything.
    """

    epochs: int = 20
    batch_size: int = 16
    seq_len: int = 16
    stride: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    val_fraction: float = 0.15
    seed: int = 0
    threads: int = 2
    label_scaling: str = "dataset_std"
    min_label_std: float = 0.05
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    aux_readout: float = 0.0
    output_spread: float = 0.0
    core_lr_scale: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seq_len", "stride", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.label_scaling not in LABEL_SCALINGS:
            raise ValueError(f"TrainConfig.label_scaling must be one of {LABEL_SCALINGS}, got {self.label_scaling!r}")
        if not 0 < self.min_label_std <= 1:
            raise ValueError(f"TrainConfig.min_label_std must be in (0, 1] (normalised units), got {self.min_label_std}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"TrainConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be ≥ 0, got {self.warmup_steps}")
        if not 0 <= self.aux_readout <= 10:
            raise ValueError(f"TrainConfig.aux_readout must be in [0, 10] (0 = off), got {self.aux_readout}")
        if not 0 <= self.output_spread <= 2:
            raise ValueError(f"TrainConfig.output_spread must be in [0, 2] label stds (0 = off), got {self.output_spread}")
        if not 0 < self.core_lr_scale <= 100:
            raise ValueError(f"TrainConfig.core_lr_scale must be in (0, 100] (1 = the core learns at lr), got {self.core_lr_scale}")

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of ``lr`` at optimizer step ``step`` (0-based) of ``total_steps``."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.lr_schedule == "constant":
            return warm
        progress = min(1.0, step / max(1, total_steps - 1))
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainResult:
    """Outcome of a training run: the kept checkpoint's epoch and validation loss, its closed-loop
    score (with a validator), the label scale used (pass it to later stages to keep one scale),
    whether patience stopped the run, and the per-epoch history."""

    best_val_loss: float
    best_epoch: int
    history: list[dict[str, Any]]
    best_score: dict[str, float] | None = None
    label_std: list[float] | None = None
    stopped_early: bool = False

    @property
    def validation_success(self) -> float:
        """Closed-loop success rate of the kept checkpoint in [0, 1]; -1 when no validator scored it."""
        return self.best_score["success_rate"] if self.best_score else -1.0


def train_behaviour_cloning(
    policy: Policy,
    dataset: EpisodeDataset | DatasetMix,
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    validator: Callable[[Policy], dict[str, Any]] | None = None,
    select: SelectSection | None = None,
    label_std: Iterable[float] | None = None,
    freeze: str = "none",
) -> TrainResult:
    """Train ``policy`` in place; the kept checkpoint's weights are loaded into it on return.

    Without ``validator`` the kept checkpoint is the one with the lowest validation loss. With one
    (and ``select``), ``validator(policy)`` drives the policy every ``select.every_epochs`` epochs
    and the kept checkpoint is the best :class:`~lnn_control.train.selection.Score`; ``patience``
    stops early. ``label_std`` fixes the per-component label scale (else: from this dataset's
    training split), so DAgger stages keep the first stage's loss units.

    ``dataset`` may be a :class:`~lnn_control.data.mixture.DatasetMix`: each epoch then draws its
    windows by the datasets' weights, and the validation loss is the share-weighted mean of the
    datasets' validation losses (each in the metrics as ``val_loss_per_dataset``); see
    :mod:`lnn_control.train.sampling`. ``freeze`` (``none``, ``perception``, ``core``) keeps that
    part of the policy bit-identical (:mod:`lnn_control.train.freeze`)."""
    with frozen(policy, freeze) as trainable:
        return _train(policy, dataset, config, Path(out_dir), resume, progress, validator, select, label_std,
                      freeze, trainable)


def _train(
    policy: Policy,
    dataset: EpisodeDataset | DatasetMix,
    config: TrainConfig,
    out: Path,
    resume: bool,
    progress: bool,
    validator: Callable[[Policy], dict[str, Any]] | None,
    select: SelectSection | None,
    label_std: Iterable[float] | None,
    freeze: str,
    trainable: list[torch.nn.Parameter],
) -> TrainResult:
    if validator is not None and select is None:
        raise ValueError("a closed-loop validator needs its SelectSection (every_epochs, patience)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    plan = plan_windows(dataset, config.seq_len, config.stride, config.val_fraction, rng)
    episodes = plan.episodes
    spec = dataset.manifest.action_spec
    low = torch.tensor(spec.low, dtype=torch.float32)
    high = torch.tensor(spec.high, dtype=torch.float32)
    nominal_dt = 1.0 / float(policy.config.control_rate_hz)
    fingerprint = _settings_fingerprint(config, select, validator is not None, freeze, dataset)

    readout: FeatureReadout | None = None
    checkpointed: torch.nn.Module = policy  # what the checkpoint files hold
    clipped = list(policy.parameters())  # gradient clipping covers these
    if config.aux_readout > 0:
        readout = FeatureReadout(policy.config.core_input_size, low, high)
        checkpointed = TrainedModules(policy, readout)
        trainable, clipped = trainable + list(readout.parameters()), clipped + list(readout.parameters())
    optimizer = torch.optim.Adam(_parameter_groups(policy, trainable, config.core_lr_scale), lr=config.lr,
                                 weight_decay=config.weight_decay)
    batches_per_epoch = math.ceil(len(plan.sampler) / config.batch_size)
    total_steps = max(1, batches_per_epoch * config.epochs)
    start_epoch, best_val, best_epoch, history = 0, math.inf, -1, []
    best_key: list[float] | None = None  # the kept checkpoint's Score.key() (closed-loop selection)
    best_score: dict[str, float] | None = None
    since_best, global_step, stopped_early = 0, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    if resume:
        saved = load_checkpoint(out / "checkpoint", checkpointed, optimizer)
        if saved.get("settings", fingerprint) != fingerprint:
            raise CheckpointError(
                f"{out / 'checkpoint'} was written with other training settings ({saved['settings']}); resume with "
                "the same launch file and overrides, or train into a new --out folder"
            )
        label_std = saved.get("label_std", label_std)  # the run's one label scale, whatever the data now
        start_epoch = saved["epoch"] + 1
        best_val, best_epoch, history = saved["best_val_loss"], saved["best_epoch"], saved["history"]
        best_key, best_score = saved.get("best_key"), saved.get("best_score")
        since_best, global_step = saved.get("since_best", 0), saved.get("global_step", 0)
        stopped_early = saved.get("stopped_early", False)
        if stopped_early:
            start_epoch = config.epochs  # patience had ended the run: nothing left to train
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(torch.tensor(saved["torch_rng"], dtype=torch.uint8))
        if (out / "best.safetensors").is_file():
            from safetensors.torch import load_file

            best_state = load_file(out / "best.safetensors")
        # epochs after the checkpoint (a kill between the metrics line and the checkpoint) run again
        atomic_write_bytes(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history).encode())
    if label_std is None:
        label_std = normalised_labels((episodes[i] for i in plan.train_ids), spec).std(axis=0)
    label_std = [float(v) for v in label_std]
    if len(label_std) != spec.size:
        raise ValueError(f"label_std has {len(label_std)} entries, the action spec {spec.size}")
    scale = (high - low) / 2  # error unit per action component, action units
    if config.label_scaling == "dataset_std":
        scale = scale * torch.tensor(np.maximum(label_std, config.min_label_std), dtype=torch.float32)

    # the health probe's episodes: the held-out ones (the training ones when nothing is held out)
    probe_ids = sorted({w.episode for group in plan.validation for w in group.windows}) or sorted(plan.train_ids)
    writer = _tensorboard_writer(out / "tensorboard")
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        policy.train()
        drawn = plan.sampler.epoch(rng)
        losses, aux_losses = [], []
        batches = range(0, len(drawn), config.batch_size)
        for begin in _progress(batches, progress, f"epoch {epoch + 1}/{config.epochs}"):
            chosen = drawn[begin : begin + config.batch_size]
            batch = assemble_batch(episodes, chosen, nominal_dt)
            images = augment_windows(batch.images, config.augment, rng)
            loss, aux_loss = _losses(policy, images, batch, scale, readout)
            optimizer.zero_grad(set_to_none=True)
            (loss if aux_loss is None else loss + config.aux_readout * aux_loss).backward()
            torch.nn.utils.clip_grad_norm_(clipped, config.grad_clip)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * group.get("lr_scale", 1.0) * config.lr_factor(global_step, total_steps)
            optimizer.step()
            global_step += 1
            losses.append(float(loss.detach()))
            if aux_loss is not None:
                aux_losses.append(float(aux_loss.detach()))
        train_loss = float(np.mean(losses))
        val_loss, per_dataset = _validation_loss(policy, plan, config.batch_size, nominal_dt, scale, train_loss)
        record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                                  "lr": optimizer.param_groups[0]["lr"]}
        if aux_losses:
            record["train_aux_readout_loss"] = float(np.mean(aux_losses))
        if per_dataset is not None:
            record["val_loss_per_dataset"] = per_dataset
        record["perception_health"] = perception_health(policy, episodes, probe_ids)
        if "warning" in record["perception_health"]:
            logger.warning("epoch %d: %s", epoch + 1, record["perception_health"]["warning"])
        if validator is None:
            improved = val_loss < best_val
        elif select is not None and ((epoch + 1) % select.every_epochs == 0 or epoch == config.epochs - 1):
            closed_loop = validator(policy)
            score = Score(closed_loop["success_rate"], val_loss)
            record["closed_loop"] = closed_loop
            improved = best_key is None or list(score.key()) > best_key
            if improved:
                best_key, best_score, since_best = list(score.key()), score.to_dict(), 0
            else:
                since_best += 1
        else:
            improved = False
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if improved:
            best_val, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
            from safetensors.torch import save_file

            save_file(best_state, out / ".best.tmp")
            (out / ".best.tmp").replace(out / "best.safetensors")
        _append_jsonl(out / "metrics.jsonl", record)
        if writer is not None:
            writer.add_scalar("loss/train", train_loss, epoch)
            writer.add_scalar("loss/val", val_loss, epoch)
            for name, value in record["perception_health"].items():
                if isinstance(value, float):
                    writer.add_scalar(f"perception/{name}", value, epoch)
            writer.flush()
        if validator is not None and select is not None and select.patience and since_best >= select.patience:
            stopped_early = True
        save_checkpoint(
            out / "checkpoint",
            checkpointed,
            optimizer,
            {
                "epoch": epoch,
                "best_val_loss": best_val,
                "best_epoch": best_epoch,
                "best_key": best_key,
                "best_score": best_score,
                "since_best": since_best,
                "global_step": global_step,
                "stopped_early": stopped_early,
                "label_std": label_std,
                "settings": fingerprint,
                "history": history,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state().tolist(),
            },
        )
        if progress:
            extra = f"  closed-loop success {record['closed_loop']['success_rate']:.0%}" if "closed_loop" in record else ""
            logger.info("epoch %d/%d: train %.4f  val %.4f%s  (%.1f s)", epoch + 1, config.epochs, train_loss, val_loss,
                        extra, record["seconds"])
        if stopped_early:
            break
    if writer is not None:
        writer.close()
    if best_state is not None:
        policy.load_state_dict(best_state)
    policy.eval()
    return TrainResult(best_val_loss=best_val, best_epoch=best_epoch, history=history, best_score=best_score,
                       label_std=label_std, stopped_early=stopped_early)


def _validation_loss(policy: Policy, plan: WindowPlan, batch_size: int, nominal_dt: float, scale: torch.Tensor,
                     train_loss: float) -> tuple[float, dict[str, float] | None]:
    """The epoch's validation loss: over the one dataset's validation windows (the training loss when
    it has none); with several datasets the share-weighted mean over those that have validation
    windows, and each one's loss by name."""
    groups = [g for g in plan.validation if g.windows]
    if len(plan.validation) == 1:
        windows = plan.validation[0].windows
        return (evaluate_loss(policy, plan.episodes, windows, batch_size, nominal_dt, scale) if windows else train_loss), None
    per = {g.name: evaluate_loss(policy, plan.episodes, g.windows, batch_size, nominal_dt, scale) for g in groups}
    if not groups:
        return train_loss, per
    return sum(g.share * per[g.name] for g in groups) / sum(g.share for g in groups), per


def evaluate_loss(
    policy: Policy,
    episodes: dict,
    windows: list[Window],
    batch_size: int,
    nominal_dt: float,
    scale: torch.Tensor,
) -> float:
    """Mean masked loss over ``windows`` without augmentation or gradients; ``scale`` [A] is the
    error unit per action component (action units)."""
    policy.eval()
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for begin in range(0, len(windows), batch_size):
            batch = assemble_batch(episodes, windows[begin : begin + batch_size], nominal_dt)
            steps = float(batch.mask.sum())
            total += float(_losses(policy, batch.images, batch, scale)[0]) * steps
            weight += steps
    return total / max(weight, 1.0)


def _losses(policy: Policy, images: np.ndarray, batch: Any, scale: torch.Tensor,
            readout: FeatureReadout | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The policy's masked loss and, with ``readout``, the readout's (same units; else None)."""
    images_t, extras_t, dt_t = torch.from_numpy(images), torch.from_numpy(batch.extras), torch.from_numpy(batch.dt)
    labels = torch.from_numpy(batch.labels)
    mask = torch.from_numpy(batch.mask)
    if readout is None:
        actions, _ = policy(images_t, extras_t, dt_t)
        return _masked_error(actions, labels, mask, scale), None
    core_output, _, core_input = policy.core_pass(images_t, extras_t, dt_t)
    actions = policy.squash(core_output)
    return _masked_error(actions, labels, mask, scale), _masked_error(readout(core_input), labels, mask, scale)


def _masked_error(actions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean squared error in units of ``scale`` [A] over the unmasked steps of ``[B,T,A]``."""
    error = ((actions - labels) / scale) ** 2
    return (error.mean(dim=-1) * mask).sum() / mask.sum()


def _progress(iterable: Any, enabled: bool, description: str) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=description, leave=False, unit="batch")


def _parameter_groups(policy: Policy, trainable: list[torch.nn.Parameter], core_lr_scale: float) -> list[dict[str, Any]]:
    """Adam's parameter groups: one (``lr_scale`` 1) unless the core learns at its own rate, then the
    core's trainable parameters in a second group (``lr_scale`` = ``core_lr_scale``). Base group first:
    the logged ``lr`` is its rate."""
    if core_lr_scale == 1.0:
        return [{"params": trainable, "lr_scale": 1.0}]
    in_core = {id(parameter) for parameter in policy.core.parameters()}
    rest = [parameter for parameter in trainable if id(parameter) not in in_core]
    core = [parameter for parameter in trainable if id(parameter) in in_core]
    groups = [{"params": rest, "lr_scale": 1.0}, {"params": core, "lr_scale": core_lr_scale}]
    return [group for group in groups if group["params"]]


def _settings_fingerprint(config: TrainConfig, select: SelectSection | None, closed_loop: bool, freeze: str = "none",
                          dataset: EpisodeDataset | DatasetMix | None = None) -> str:
    """What a resumed run must share with the one it continues (epochs, schedule, selection, what is
    frozen, the datasets' names and shares; the last two only when used, so earlier checkpoints resume)."""
    import dataclasses
    import hashlib

    train_settings = dataclasses.asdict(config)
    train_settings.pop("threads", None)  # threads change speed, not the result
    for name in ("blur", "lines"):  # added 2026-12-07: only when used, so earlier checkpoints resume
        if not train_settings["augment"][name]:
            train_settings["augment"].pop(name)
    for name, off in (("aux_readout", 0.0), ("output_spread", 0.0), ("core_lr_scale", 1.0)):  # added 2026-12-07, likewise
        if train_settings[name] == off:
            train_settings.pop(name)
    select_settings = dataclasses.asdict(select) if select else None
    if select_settings is not None:  # a restart trains another folder; a stage trains the same either way
        select_settings.pop("restarts")
        select_settings.pop("restart_below")
    settings: dict[str, Any] = {"train": train_settings, "select": select_settings, "closed_loop": closed_loop}
    if freeze != "none":
        settings["freeze"] = freeze
    if isinstance(dataset, DatasetMix) and len(dataset.sources) > 1:
        settings["mix"] = [[s.name, share] for s, share in zip(dataset.sources, dataset.shares)]
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _tensorboard_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; metrics.jsonl always has the scalars
        return None
    return SummaryWriter(log_dir=str(folder))
