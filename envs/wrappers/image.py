"""``CorruptImage``: a Gymnasium observation wrapper applying one image corruption to the camera.

Works on the envs' observation contract (``Dict`` with ``"image"``: uint8 ``(H, W, 3)``; other keys
pass through) and on a bare ``Box`` image space. The observation space is unchanged.

Seeding: the wrapper owns a :class:`numpy.random.Generator`, re-seeded from the seed given to
``reset(seed=...)`` (mixed with the corruption's name, so stacked corruptions draw independently);
before the first seeded reset it uses the ``seed`` given to the constructor. Same seed ⇒ same
corrupted frames. Corruptions marked ``per_episode`` (lens dirt, sun position, season hue) draw
once per episode and keep that draw for every frame of the episode.
"""

from __future__ import annotations

import zlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lnn_control.envs.wrappers.corruptions import CORRUPTIONS, check_severity


def stream_rng(seed: int | None, name: str) -> np.random.Generator:
    """A generator for ``seed`` mixed with a stable id of ``name`` (fresh entropy if seed is None)."""
    if seed is None:
        return np.random.default_rng()
    if int(seed) < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _image_space(space: spaces.Space) -> spaces.Box:
    box = space["image"] if isinstance(space, spaces.Dict) and "image" in space.spaces else space
    if not (
        isinstance(box, spaces.Box)
        and box.dtype == np.uint8
        and len(box.shape) == 3
        and box.shape[2] == 3
    ):
        raise ValueError(
            "image corruptions need an observation space Dict({'image': Box(0, 255, (H, W, 3), uint8), ...}) "
            f"or Box(0, 255, (H, W, 3), uint8); got {space}"
        )
    return box


class CorruptImage(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Corrupt ``obs["image"]`` with corruption ``name`` at ``severity`` 1..5 (see ``CORRUPTIONS``)."""

    def __init__(self, env: gym.Env, name: str, severity: int, seed: int | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, name=name, severity=severity, seed=seed)
        gym.ObservationWrapper.__init__(self, env)
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown image corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
        self.corruption = CORRUPTIONS[name]
        self.severity = check_severity(severity)
        _image_space(env.observation_space)
        self._dict_obs = isinstance(env.observation_space, spaces.Dict)
        self._rng = stream_rng(seed, name)
        self._episode_seed = int(self._rng.integers(2**63))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = stream_rng(seed, self.corruption.name)
        self._episode_seed = int(self._rng.integers(2**63))
        return super().reset(seed=seed, options=options)

    def corrupt(self, image: np.ndarray) -> np.ndarray:
        """Corrupt one frame with this wrapper's generator (per-episode draws held fixed)."""
        rng = np.random.default_rng(self._episode_seed) if self.corruption.per_episode else self._rng
        return self.corruption.function(np.ascontiguousarray(image), self.severity, rng)

    def observation(self, observation: Any) -> Any:
        if self._dict_obs:
            out = dict(observation)
            out["image"] = self.corrupt(observation["image"])
            return out
        return self.corrupt(observation)
