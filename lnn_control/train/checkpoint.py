"""Atomic training checkpoints without pickle: model + optimizer tensors in safetensors, the rest JSON.

A checkpoint folder holds ``model.safetensors``, ``optimizer.safetensors`` and
``trainer.json`` (epoch, best validation loss, RNG states, optimizer hyper-parameters).
The three files are written into a fresh temporary folder that is then renamed over the
previous checkpoint, so a kill during saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from lnn_control.atomic import atomic_write_json


class CheckpointError(ValueError):
    """A checkpoint folder is missing or does not match the model being resumed."""


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict[str, Any]) -> None:
    """Write the checkpoint atomically (sibling temp folder + rename)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    tensors, groups = _flatten_optimizer(optimizer)
    save_file(tensors, tmp / "optimizer.safetensors")
    atomic_write_json(tmp / "trainer.json", {"trainer": trainer_state, "param_groups": groups})
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer in place; return the saved trainer state."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "trainer.json").is_file():
        # A kill between the two renames leaves the previous checkpoint as .old: use it.
        old = folder.with_name(f".{folder.name}.old")
        if (old / "trainer.json").is_file():
            folder = old
        else:
            raise CheckpointError(f"{folder}: no checkpoint to resume from (trainer.json missing); start without --resume")
    try:
        state = load_file(folder / "model.safetensors")
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{folder / 'model.safetensors'}: does not match this model: {exc}") from exc
    meta = json.loads((folder / "trainer.json").read_text(encoding="utf-8"))
    _restore_optimizer(optimizer, load_file(folder / "optimizer.safetensors"), meta["param_groups"])
    return meta["trainer"]


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{index}.{key}"] = tensor.detach().contiguous()
    return tensors, state_dict["param_groups"]


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state does not match this model: {exc}") from exc
