"""Policy bundles: one directory per trained policy, ``config.json`` + ``model.safetensors``.

``config.json`` holds the format name and version, the full architecture (perception config,
core config with the wiring adjacency, observation/action specs with units and limits, image
size, control rate, output scaling), the SHA-256 of ``model.safetensors`` and the training
provenance (command, seed, dataset hash, git commit, metrics, creation time).

Writing is atomic per bundle: both files are written and fsynced into a temporary sibling
directory, which is then renamed onto ``directory``. A reader therefore sees a complete bundle
or none. Overwriting an existing bundle (``overwrite=True``) moves the old one aside first, so
for that instant the path is briefly absent - never half-written.

A bundle can also travel as one ``.zip`` holding the two files at its top level
(:func:`pack_policy` writes one); :func:`load_policy` reads either form.

Loading never unpickles: JSON and safetensors only. Every problem with a bundle - missing file,
corrupt or truncated JSON or safetensors, checksum mismatch, wrong format version, unknown
architecture, missing/extra/misshaped tensors, invalid specs - raises :class:`PolicyBundleError`
(a ``ValueError``) naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lnn_control.atomic import atomic_write_bytes
from lnn_control.config import load_dataclass
from lnn_control.policies.policy import Policy, PolicyConfig

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


MAX_MEMBER_BYTES = 1 << 30  # a bundle member larger than 1 GiB is refused (zip bombs, wrong file)


def _read_member(bundle: Path, name: str) -> tuple[bytes, str]:
    """Bytes of ``name`` in a bundle directory or ``.zip`` archive, and a label naming it for errors."""
    if bundle.is_dir():
        path = bundle / name
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise PolicyBundleError(f"{path}: missing file; a bundle needs {CONFIG_FILE} and {MODEL_FILE}") from None
        except OSError as exc:
            raise PolicyBundleError(f"{path}: cannot read: {exc.strerror}") from exc
    label = f"{bundle}!{name}"
    if not bundle.is_file():
        raise PolicyBundleError(f"{bundle}: no such policy bundle directory or .zip archive")
    try:
        with zipfile.ZipFile(bundle) as archive:
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise PolicyBundleError(
                    f"{label}: missing file; the archive needs {CONFIG_FILE} and {MODEL_FILE} at its top level"
                ) from None
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                raise PolicyBundleError(f"{label}: encrypted or unsupported compression; pack with pack_policy")
            if info.file_size > MAX_MEMBER_BYTES:
                raise PolicyBundleError(f"{label}: {info.file_size} bytes is larger than a policy bundle can be")
            return archive.read(info), label
    except PolicyBundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise PolicyBundleError(f"{bundle}: not a readable policy bundle archive ({exc})") from None


def read_bundle_config(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``config.json`` of a bundle directory or ``.zip`` (format, version); no weights."""
    raw, label = _read_member(Path(bundle), CONFIG_FILE)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PolicyBundleError(f"{label}: corrupt or truncated JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PolicyBundleError(f"{label}: expected a JSON object at top level, got {type(data).__name__}")
    if data.get("format") != BUNDLE_FORMAT:
        raise PolicyBundleError(f"{label}: 'format' is {data.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    version = data.get("format_version")
    if type(version) is not int or version != BUNDLE_FORMAT_VERSION:
        raise PolicyBundleError(
            f"{label}: format_version {version!r} is not supported; this lnn-control reads version "
            f"{BUNDLE_FORMAT_VERSION} (re-export the policy or upgrade lnn-control)"
        )
    for key, kind in (("policy", dict), ("provenance", dict), ("model_sha256", str)):
        if not isinstance(data.get(key), kind):
            raise PolicyBundleError(f"{label}: '{key}' must be a JSON {kind.__name__}, got {data.get(key)!r:.60}")
    return data


def load_policy(bundle: str | os.PathLike[str]) -> Policy:
    """Rebuild the policy stored in ``bundle`` - a directory or a ``.zip`` of its two files -
    in eval mode with its state reset. Never unpickles."""
    root = Path(bundle)
    data = read_bundle_config(root)
    config_label = f"{root}/{CONFIG_FILE}" if root.is_dir() else f"{root}!{CONFIG_FILE}"
    try:
        config = load_dataclass(PolicyConfig, data["policy"], f"{config_label} (policy)")
    except ValueError as exc:
        raise PolicyBundleError(f"invalid policy config: {exc}") from None
    try:
        policy = Policy(config)
    except Exception as exc:  # anything the architecture code raises on a bad config is a bad bundle
        raise PolicyBundleError(
            f"{config_label}: cannot build the architecture (core type {config.core.get('type')!r}): {exc}"
        ) from None
    raw, label = _read_member(root, MODEL_FILE)
    policy.load_state_dict(_parse_weights(raw, label, data["model_sha256"], policy))
    policy.provenance = dict(data["provenance"])
    policy.eval()
    policy.reset()
    return policy


def pack_policy(directory: str | os.PathLike[str], archive: str | os.PathLike[str]) -> Path:
    """Write the bundle at ``directory`` as a single ``.zip`` (stored, not compressed) atomically;
    the bundle is fully checked first, so a broken bundle is never packed."""
    source = Path(directory)
    load_policy(source)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as handle:
        for name in (CONFIG_FILE, MODEL_FILE):
            handle.writestr(name, _read_member(source, name)[0])
    return atomic_write_bytes(archive, buffer.getvalue())


def _parse_weights(raw: bytes, label: str, expected_sha256: str, policy: Policy) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        tensors = load(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError and others on bad bytes
        raise PolicyBundleError(f"{label}: corrupt or truncated safetensors file ({exc})") from None
    if hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise PolicyBundleError(
            f"{label}: content does not match model_sha256 in {CONFIG_FILE} (corrupted, or the files "
            "come from different bundles)"
        )
    expected = policy.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise PolicyBundleError(
            f"{label}: tensors do not fit the architecture in {CONFIG_FILE}: missing {missing}, unexpected {extra}"
        )
    for name, reference in expected.items():
        value = tensors[name]
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise PolicyBundleError(
                f"{label}: tensor {name!r} is {value.dtype} {tuple(value.shape)}, the architecture needs "
                f"{reference.dtype} {tuple(reference.shape)}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise PolicyBundleError(f"{label}: tensor {name!r} contains NaN or inf")
    return tensors



_WORKER_POLICY: dict[str, Policy] = {}


def load_policy_in_worker(bundle: str) -> Policy:
    """:func:`load_policy` for tasks on the parallel seam: the last bundle loaded in this process is
    kept, so the tasks of one job (the episodes of an evaluation or a DAgger round) load it once.
    Every job writes a fresh bundle folder, so a path names one set of weights."""
    if bundle not in _WORKER_POLICY:
        _WORKER_POLICY.clear()
        _WORKER_POLICY[bundle] = load_policy(bundle)
    return _WORKER_POLICY[bundle]
