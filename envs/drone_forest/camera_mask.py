"""Privileged per-pixel masks of the drone's onboard camera: trunks, the target beacon, the sky.

Pure geometry, the same for every backend: each pixel's ray (pinhole, vertical field of view
``QuadParams.camera_vertical_fov_deg``, from :meth:`~.quad.QuadParams.camera_pose` with the episode's
pitch jitter) is intersected with what both backends draw - trunks (vertical cylinders of
``trunk_radius`` from the ground to ``trunk_height``; the renderers use hexagonal prisms, so edges may
differ by a pixel), canopies (cones from ``canopy_base`` to 1 m above the trunk top, which hide what
is behind them), the target beacon (a box of ``TARGET_HALF_EXTENTS`` at ``target_position``) and the
ground ``z = 0`` - up to ``camera_far``. A pixel belongs to the nearest thing its ray meets: ``trunks``
where that is a trunk, ``target`` where it is the beacon, ``sky`` where the ray meets nothing and points
upward. Only trees within ``camera_far`` and not behind the camera are tested.

Used by ``lnn-control explain`` to measure where a policy's saliency falls. No torch, no simulator.
"""

from __future__ import annotations

import numpy as np

from lnn_control.envs.drone_forest.backend import TARGET_HALF_EXTENTS
from lnn_control.envs.drone_forest.forest import Forest
from lnn_control.envs.drone_forest.quad import QuadParams
from lnn_control.envs.lane_keeping.camera_mask import pixel_rays

_CANOPY_APEX_ABOVE_TRUNK = 1.0  # m, as the renderers build the cones


def _smallest_root(a: np.ndarray, b: np.ndarray, c: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both roots of ``a t² + b t + c = 0`` (inf where there is none)."""
    disc = b * b - 4 * a * c
    ok = valid & (disc >= 0) & (np.abs(a) > 1e-12)
    root = np.sqrt(np.where(ok, disc, 0.0))
    safe = np.where(ok, 2 * a, 1.0)
    t1 = np.where(ok, (-b - root) / safe, np.inf)
    t2 = np.where(ok, (-b + root) / safe, np.inf)
    return np.minimum(t1, t2), np.maximum(t1, t2)


def _first_positive(*candidates: np.ndarray) -> np.ndarray:
    best = np.full(candidates[0].shape, np.inf)
    for t in candidates:
        best = np.where((t > 1e-6) & (t < best), t, best)
    return best


def forest_masks(forest: Forest, quad: QuadParams, position: np.ndarray, rotation: np.ndarray,
                 pitch_offset: float = 0.0) -> dict[str, np.ndarray]:
    """``{"trunks", "target", "sky"}`` bool ``[H,W]`` for the camera of a body at ``position`` [3] (m)
    with body-to-world ``rotation`` [3,3]; see the module docstring."""
    eye, target, up = quad.camera_pose(position, rotation, pitch_offset)
    rays = pixel_rays(eye, target, up, quad.image_width, quad.image_height, quad.camera_vertical_fov_deg)
    shape = rays.shape[:2]
    d = rays.reshape(-1, 3)
    far = float(quad.camera_far)
    ground = np.where(d[:, 2] < -1e-9, -eye[2] / np.where(d[:, 2] < -1e-9, d[:, 2], -1.0), np.inf)
    nearest = np.minimum(ground, np.inf)
    kind = np.zeros(d.shape[0], np.int8)  # 0 ground / nothing, 1 trunk, 2 canopy, 3 target
    offset = forest.trunk_xy - eye[:2]
    heading = np.asarray(target - eye, float)[:2]
    heading /= max(float(np.linalg.norm(heading)), 1e-9)
    reach = forest.canopy_radius + 1.0
    # trees within the far plane and not behind the camera (the field of view is < 180°)
    near = (np.hypot(*offset.T) < far + reach) & (offset @ heading > -reach)
    for (x, y), radius, height, canopy_r, base in zip(
        forest.trunk_xy[near], forest.trunk_radius[near], forest.trunk_height[near],
        forest.canopy_radius[near], forest.canopy_base[near],
    ):
        dx, dy = eye[0] - x, eye[1] - y
        # trunk: (dx + t ux)^2 + (dy + t uy)^2 = r^2, 0 <= z <= height
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        t1, t2 = _smallest_root(a, 2 * (dx * d[:, 0] + dy * d[:, 1]), np.full_like(a, dx * dx + dy * dy - radius**2),
                                np.ones_like(a, bool))
        hits = []
        for t in (t1, t2):
            z = eye[2] + t * d[:, 2]
            hits.append(np.where((z >= 0) & (z <= height), t, np.inf))
        trunk = _first_positive(*hits)
        # canopy cone: apex at height + 1, radius canopy_r at z = base
        apex = height + _CANOPY_APEX_ABOVE_TRUNK
        k2 = (canopy_r / max(apex - base, 1e-6)) ** 2
        dz = apex - eye[2]
        c1, c2 = _smallest_root(
            a - k2 * d[:, 2] ** 2, 2 * (dx * d[:, 0] + dy * d[:, 1] + k2 * dz * d[:, 2]),
            np.full_like(a, dx * dx + dy * dy - k2 * dz * dz), np.ones_like(a, bool),
        )
        cone = []
        for t in (c1, c2):
            z = eye[2] + t * d[:, 2]
            cone.append(np.where((z >= base) & (z <= apex), t, np.inf))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_base = (base - eye[2]) / d[:, 2]
        px, py = dx + t_base * d[:, 0], dy + t_base * d[:, 1]
        cone.append(np.where(np.isfinite(t_base) & (px * px + py * py <= canopy_r**2), t_base, np.inf))
        canopy = _first_positive(*cone)
        for t, label in ((trunk, 1), (canopy, 2)):
            closer = t < nearest
            nearest = np.where(closer, t, nearest)
            kind = np.where(closer, label, kind)
    # target beacon: slab test against the axis-aligned box
    low = np.asarray(forest.target_position) - np.asarray(TARGET_HALF_EXTENTS)
    high = np.asarray(forest.target_position) + np.asarray(TARGET_HALF_EXTENTS)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        ta, tb = (low - eye) * inv, (high - eye) * inv
    t_enter = np.nanmax(np.minimum(ta, tb), axis=1)
    t_exit = np.nanmin(np.maximum(ta, tb), axis=1)
    box = np.where((t_exit >= np.maximum(t_enter, 0.0)) & (t_enter > 1e-6), t_enter, np.inf)
    closer = box < nearest
    nearest = np.where(closer, box, nearest)
    kind = np.where(closer, 3, kind)
    visible = nearest <= far
    return {
        "trunks": ((kind == 1) & visible).reshape(shape),
        "target": ((kind == 3) & visible).reshape(shape),
        "sky": (~np.isfinite(nearest) & (d[:, 2] >= 0)).reshape(shape),
    }


def camera_masks(env: object) -> dict[str, np.ndarray]:
    """The masks of :func:`forest_masks` for the current frame of a (reset) ``DroneForestEnv``
    (``env.unwrapped`` is used, so a wrapped env works); read-only."""
    from lnn_control.envs.drone_forest.env import DroneForestEnv

    drone = getattr(env, "unwrapped", env)
    if not isinstance(drone, DroneForestEnv):
        raise TypeError(f"camera_masks needs a DroneForestEnv (or a wrapper of one), got {type(drone).__name__}")
    forest = drone.forest
    if forest is None:
        raise RuntimeError("call reset() before camera_masks(): the env has no forest yet")
    state = drone.drone_state()
    return forest_masks(forest, drone.quad, state.position, state.rotation, drone.backend.visuals.camera_pitch_offset)
