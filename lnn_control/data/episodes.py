"""Episode datasets: one safetensors file per completed episode, plus a JSON manifest.

Layout of a dataset folder::

    dataset.json                  manifest: format version, observation/action specs, creator
    episodes/episode_000000.safetensors
    episodes/episode_000001.safetensors
    ...

Each episode file holds, for T steps:

- ``image``      uint8   [T, H, W, 3]  camera frame the policy saw
- ``extras``     float32 [T, E]        scalar measurements named in the manifest (E may be 0)
- ``action``     float32 [T, A]        action applied to the robot (expert + DART noise, or learner)
- ``label``      float32 [T, A]        expert action for that frame (the training target)
- ``timestamp``  float64 [T]           measured capture time of the frame in seconds

and a JSON ``metadata`` header (task, backend, seed, conditions, outcome, ...).

Crash safety: an episode is kept in memory until :meth:`EpisodeWriter.end_episode`, then
written with an atomic rename. A crash or kill loses at most the episode in progress, and a
reader never sees a half-written file (temporary files start with ``.`` and are ignored).
Nothing is unpickled: safetensors + JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control.atomic import atomic_write_bytes, atomic_write_json
from lnn_control.spec import ActionSpec, ObservationSpec

FORMAT_NAME = "lnn-control-episodes"
FORMAT_VERSION = 1
MANIFEST = "dataset.json"
EPISODE_DIR = "episodes"
_EPISODE_RE = re.compile(r"^episode_(\d{6})\.safetensors$")
ARRAY_NAMES = ("image", "extras", "action", "label", "timestamp")


class DatasetError(ValueError):
    """A dataset folder or episode file is missing, corrupt or inconsistent; names the file."""


@dataclass
class Episode:
    """One recorded episode (arrays as described in the module docstring)."""

    image: np.ndarray
    extras: np.ndarray
    action: np.ndarray
    label: np.ndarray
    timestamp: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def elapsed(self, nominal_dt: float) -> np.ndarray:
        """Measured time between consecutive frames, seconds, shape [T]; the first is ``nominal_dt``."""
        dt = np.diff(self.timestamp, prepend=self.timestamp[0] - nominal_dt)
        return dt.astype(np.float32)


@dataclass(frozen=True)
class DatasetManifest:
    """What every episode in the folder conforms to."""

    observation_spec: ObservationSpec
    action_spec: ActionSpec
    created_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "observation_spec": self.observation_spec.to_dict(),
            "action_spec": self.action_spec.to_dict(),
            "created_by": self.created_by,
        }

    @classmethod
    def read(cls, root: Path) -> DatasetManifest:
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetError(f"{path}: no dataset manifest; is '{root}' a dataset folder made by 'lnn-control collect'?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: unreadable manifest: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise DatasetError(f"{path}: not an lnn-control episode dataset (format {data.get('format') if isinstance(data, dict) else None!r})")
        if data.get("version") != FORMAT_VERSION:
            raise DatasetError(f"{path}: dataset format version {data.get('version')!r}, this lnn-control reads version {FORMAT_VERSION}")
        try:
            return cls(
                observation_spec=ObservationSpec.from_dict(data["observation_spec"]),
                action_spec=ActionSpec.from_dict(data["action_spec"]),
                created_by=str(data.get("created_by", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: invalid manifest: {exc}") from exc


class EpisodeWriter:
    """Appends episodes to a dataset folder, one atomic file per completed episode.

    Usage::

        writer = EpisodeWriter(root, manifest)
        writer.begin_episode()
        writer.add_step(obs, action, label, timestamp)   # per control step
        writer.end_episode({"seed": 1000, "success": True})
    """

    def __init__(self, root: str | Path, manifest: DatasetManifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        manifest_path = self.root / MANIFEST
        if manifest_path.exists():
            existing = DatasetManifest.read(self.root)
            if (existing.observation_spec, existing.action_spec) != (manifest.observation_spec, manifest.action_spec):
                raise DatasetError(
                    f"{manifest_path}: existing dataset has different specs "
                    f"({existing.observation_spec}, {existing.action_spec}); write to a new folder"
                )
        else:
            atomic_write_json(manifest_path, manifest.to_dict())
        (self.root / EPISODE_DIR).mkdir(parents=True, exist_ok=True)
        self._steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] | None = None

    def begin_episode(self) -> None:
        if self._steps is not None:
            raise RuntimeError("begin_episode() called twice; call end_episode() or discard_episode() first")
        self._steps = []

    def add_step(
        self,
        observation: Mapping[str, np.ndarray],
        action: np.ndarray,
        label: np.ndarray,
        timestamp: float,
    ) -> None:
        """Record one control step. ``observation`` is the env's dict (``image`` + extras)."""
        if self._steps is None:
            raise RuntimeError("add_step() before begin_episode()")
        obs_spec, act_spec = self.manifest.observation_spec, self.manifest.action_spec
        image = np.asarray(observation["image"])
        if image.shape != tuple(obs_spec.image_shape) or image.dtype != np.uint8:
            raise DatasetError(
                f"image has shape {image.shape} dtype {image.dtype}; the dataset expects uint8 {tuple(obs_spec.image_shape)}"
            )
        extras = np.array([float(np.asarray(observation[name]).reshape(-1)[0]) for name in obs_spec.extras], np.float32)
        action = np.asarray(action, np.float32).reshape(act_spec.size)
        label = np.asarray(label, np.float32).reshape(act_spec.size)
        self._steps.append((image.copy(), extras, action, label, float(timestamp)))

    def discard_episode(self) -> None:
        self._steps = None

    def end_episode(self, metadata: Mapping[str, Any]) -> Path | None:
        """Write the episode atomically; returns its path (None for an empty episode)."""
        if self._steps is None:
            raise RuntimeError("end_episode() before begin_episode()")
        steps, self._steps = self._steps, None
        if not steps:
            return None
        images, extras, actions, labels, stamps = zip(*steps)
        arrays = {
            "image": np.stack(images),
            "extras": np.stack(extras).reshape(len(steps), -1).astype(np.float32),
            "action": np.stack(actions),
            "label": np.stack(labels),
            "timestamp": np.asarray(stamps, np.float64),
        }
        from safetensors.numpy import save

        payload = save(arrays, metadata={"metadata": json.dumps(dict(metadata), sort_keys=True)})
        path = self.root / EPISODE_DIR / f"episode_{self._next_index():06d}.safetensors"
        atomic_write_bytes(path, payload)
        return path

    def adopt_episode(self, path: str | Path) -> Path:
        """Move a finished episode file of a dataset with the same specs (e.g. written by a worker into
        a private folder) into this one as its next episode; returns the new path."""
        target = self.root / EPISODE_DIR / f"episode_{self._next_index():06d}.safetensors"
        os.replace(path, target)
        return target

    def _next_index(self) -> int:
        indices = [int(m.group(1)) for p in (self.root / EPISODE_DIR).iterdir() if (m := _EPISODE_RE.match(p.name))]
        return max(indices, default=-1) + 1


class EpisodeDataset:
    """Read-only view of a dataset folder: completed episodes in index order."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = DatasetManifest.read(self.root)
        folder = self.root / EPISODE_DIR
        self.paths = sorted(p for p in folder.glob("episode_*.safetensors") if _EPISODE_RE.match(p.name)) if folder.is_dir() else []

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self[index]

    def __getitem__(self, index: int) -> Episode:
        return load_episode(self.paths[index], self.manifest)

    def metadata(self, index: int) -> dict[str, Any]:
        """Episode ``index``'s metadata (mode, seed, condition, ...) from its file header only."""
        path = self.paths[index]
        try:
            with path.open("rb") as handle:
                header_len = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_len))
            return json.loads((header.get("__metadata__") or {}).get("metadata", "{}"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable episode header: {exc}") from exc

    def content_hash(self) -> str:
        """SHA-256 over the manifest and every episode file, in order (for provenance)."""
        digest = hashlib.sha256((self.root / MANIFEST).read_bytes())
        for path in self.paths:
            digest.update(path.name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def load_episode(path: str | Path, manifest: DatasetManifest) -> Episode:
    """Load and validate one episode file; errors name the file and the problem."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        data = path.read_bytes()
        arrays = load(data)
        header = json.loads(_read_metadata(data).get("metadata", "{}"))
    except (OSError, SafetensorError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable episode file: {exc}") from exc
    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise DatasetError(f"{path}: episode is missing arrays {missing}")
    steps = arrays["image"].shape[0]
    expected = {
        "image": (steps, *manifest.observation_spec.image_shape),
        "extras": (steps, len(manifest.observation_spec.extras)),
        "action": (steps, manifest.action_spec.size),
        "label": (steps, manifest.action_spec.size),
        "timestamp": (steps,),
    }
    for name, shape in expected.items():
        if tuple(arrays[name].shape) != shape:
            raise DatasetError(f"{path}: array '{name}' has shape {arrays[name].shape}, expected {shape}")
    return Episode(**{name: arrays[name] for name in ARRAY_NAMES}, metadata=header)


def _read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors payload (string → string)."""
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("safetensors __metadata__ is not a mapping")
    return metadata
