"""Policy bundles: one directory per trained policy, ``config.json`` + ``model.safetensors``.

``config.json`` holds the format name and version, the full architecture (perception config,
core config with the wiring adjacency, observation/action specs with units and limits, image
size, control rate, output scaling), the SHA-256 of ``model.safetensors`` and the training
provenance (command, seed, dataset hash, git commit, metrics, creation time).

Writing is atomic per bundle: both files are written and fsynced into a temporary sibling
directory, which is then renamed onto ``directory``. A reader therefore sees a complete bundle
or none. Overwriting an existing bundle (``overwrite=True``) moves the old one aside first, so
for that instant the path is briefly absent - never half-written.

Loading never unpickles: JSON and safetensors only. Every problem with a bundle - missing file,
corrupt or truncated JSON or safetensors, checksum mismatch, wrong format version, unknown
architecture, missing/extra/misshaped tensors, invalid specs - raises :class:`PolicyBundleError`
(a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from lnn_control.policies.policy import Policy, PolicyConfig

from lnn_control.config import load_dataclass

BUNDLE_FORMAT = "lnn-control-policy"
BUNDLE_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
PROVENANCE_KEYS = ("command", "seed", "dataset_hash", "git_commit", "metrics")


class PolicyBundleError(ValueError):
    """A policy bundle cannot be written or read; the message names the file and the problem."""


def save_policy(
    policy: Policy,
    directory: str | os.PathLike[str],
    provenance: Mapping[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``policy`` as a bundle at ``directory`` (atomic); return the bundle path.

    provenance: JSON-serialisable facts about how the policy was made; the keys ``command``,
    ``seed``, ``dataset_hash``, ``git_commit`` and ``metrics`` are always present in the file
    (``None`` / ``{}`` when not given); ``created`` (UTC, ISO 8601) is added here.
    """
    if not isinstance(policy, Policy):
        raise PolicyBundleError(f"save_policy needs a Policy, got {type(policy).__name__}")
    if not isinstance(provenance, Mapping):
        raise PolicyBundleError(f"provenance must be a dict, got {type(provenance).__name__}")
    target = Path(directory)
    if target.exists() and not overwrite:
        raise PolicyBundleError(f"{target}: already exists; choose a new directory or pass overwrite=True")
    if target.exists() and not (target / CONFIG_FILE).is_file():
        raise PolicyBundleError(f"{target}: exists and is not a policy bundle; refusing to overwrite it")

    tensors = {name: value.detach().to("cpu").contiguous().clone() for name, value in policy.state_dict().items()}
    from safetensors.torch import save

    model_bytes = save(tensors, metadata={"format": BUNDLE_FORMAT})
    record = {key: None for key in PROVENANCE_KEYS} | {"metrics": {}} | dict(provenance)
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "policy": policy.config.to_dict(),
        "image_size": list(policy.config.observation_spec.image_shape[:2]),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "provenance": record,
    }
    try:
        config_text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise PolicyBundleError(f"{target / CONFIG_FILE}: provenance or config is not plain JSON: {exc}") from exc

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _write_synced(staging / MODEL_FILE, model_bytes)
        _write_synced(staging / CONFIG_FILE, config_text.encode("utf-8"))
        _fsync_directory(staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
        _fsync_directory(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _fsync_directory(directory: Path) -> None:
    """Make renames inside ``directory`` durable (POSIX); skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def read_bundle_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``config.json`` of a bundle (format, version); no torch, no weights."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise PolicyBundleError(f"{directory}: no such policy bundle directory")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyBundleError(f"{path}: missing file; a bundle needs {CONFIG_FILE} and {MODEL_FILE}") from None
    except OSError as exc:
        raise PolicyBundleError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyBundleError(f"{path}: corrupt or truncated JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyBundleError(f"{path}: expected a JSON object at top level, got {type(data).__name__}")
    if data.get("format") != BUNDLE_FORMAT:
        raise PolicyBundleError(f"{path}: 'format' is {data.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    version = data.get("format_version")
    if type(version) is not int or version != BUNDLE_FORMAT_VERSION:
        raise PolicyBundleError(
            f"{path}: format_version {version!r} is not supported; this lnn-control reads version "
            f"{BUNDLE_FORMAT_VERSION} (re-export the policy or upgrade lnn-control)"
        )
    for key, kind in (("policy", dict), ("provenance", dict), ("model_sha256", str)):
        if not isinstance(data.get(key), kind):
            raise PolicyBundleError(f"{path}: '{key}' must be a JSON {kind.__name__}, got {data.get(key)!r:.60}")
    return data


def load_policy(directory: str | os.PathLike[str]) -> Policy:
    """Rebuild the policy stored at ``directory`` (eval mode, state reset); never unpickles."""
    root = Path(directory)
    data = read_bundle_config(root)
    config_path = root / CONFIG_FILE
    try:
        config = load_dataclass(PolicyConfig, data["policy"], f"{config_path} (policy)")
    except ValueError as exc:
        raise PolicyBundleError(f"invalid policy config: {exc}") from None
    try:
        policy = Policy(config)
    except Exception as exc:  # anything the architecture code raises on a bad config is a bad bundle
        raise PolicyBundleError(
            f"{config_path}: cannot build the architecture (core type {config.core.get('type')!r}): {exc}"
        ) from None
    policy.load_state_dict(_read_weights(root / MODEL_FILE, data["model_sha256"], policy))
    policy.provenance = dict(data["provenance"])
    policy.eval()
    policy.reset()
    return policy


def _read_weights(path: Path, expected_sha256: str, policy: Policy) -> dict[str, torch.Tensor]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyBundleError(f"{path}: missing file; a bundle needs {CONFIG_FILE} and {MODEL_FILE}") from None
    except OSError as exc:
        raise PolicyBundleError(f"{path}: cannot read: {exc.strerror}") from exc
    from safetensors.torch import load

    try:
        tensors = load(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError and others on bad bytes
        raise PolicyBundleError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    if hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise PolicyBundleError(
            f"{path}: content does not match model_sha256 in {CONFIG_FILE} (corrupted, or the files "
            "come from different bundles)"
        )
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise PolicyBundleError(
            f"{path}: tensors do not fit the architecture in {CONFIG_FILE}: missing {missing}, unexpected {extra}"
        )
    for name, reference in expected.items():
        value = tensors[name]
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise PolicyBundleError(
                f"{path}: tensor {name!r} is {value.dtype} {tuple(value.shape)}, the architecture needs "
                f"{reference.dtype} {tuple(reference.shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise PolicyBundleError(f"{path}: tensor {name!r} contains NaN or inf")
    return tensors

