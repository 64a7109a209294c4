"""Privileged per-pixel masks of the onboard camera: which pixels show the road, which the sky.

Pure geometry, the same for every backend: each pixel's ray (the pinhole model both backends
render with: vertical field of view ``CarParams.camera_vertical_fov_deg``, square pixels) from the
camera pose of :meth:`~.car.CarParams.camera_pose` (flat ground, the episode's mount jitter) is
intersected with the ground plane ``z = 0``; a hit closer than ``camera_far`` (depth along the
optical axis) that lands on the asphalt (both lanes and shoulders, rasterised once per road at
``resolution`` m) is a road pixel; a ray that never meets the ground is sky. Grass and far ground
are neither. Body roll/pitch are ignored (the car is ~flat), so edges may be off by a pixel or two.

Used by ``lnn-control explain`` to measure where a policy's saliency falls. No torch, no simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_control.envs.lane_keeping.car import CarParams
from lnn_control.envs.lane_keeping.road import Road

RASTER_RESOLUTION = 0.02
"""Cell size (m) of the top-down asphalt raster."""


@dataclass(frozen=True)
class RoadRaster:
    """Top-down asphalt occupancy: ``cells[row, col]`` is True on asphalt; cell ``(r, c)`` covers
    ``x in origin_x + c*res .. +res``, ``y in origin_y + r*res .. +res`` (m)."""

    cells: np.ndarray
    origin_x: float
    origin_y: float
    resolution: float

    @classmethod
    def from_road(cls, road: Road, resolution: float = RASTER_RESOLUTION) -> RoadRaster:
        import cv2

        if not resolution > 0:
            raise ValueError(f"raster resolution must be > 0 m, got {resolution!r}")
        mesh = road.asphalt()
        xy = mesh.vertices[:, :2]
        origin = xy.min(axis=0) - 2 * resolution
        size = np.ceil((xy.max(axis=0) - origin) / resolution).astype(int) + 3
        cells = np.zeros((int(size[1]), int(size[0])), np.uint8)
        pixels = np.round((xy - origin) / resolution).astype(np.int32)
        cv2.fillPoly(cells, list(pixels[mesh.triangles]), 1)
        return cls(cells.astype(bool), float(origin[0]), float(origin[1]), float(resolution))

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where the world points (m, any shape) lie on asphalt."""
        cols = np.floor((np.asarray(x) - self.origin_x) / self.resolution).astype(np.int64)
        rows = np.floor((np.asarray(y) - self.origin_y) / self.resolution).astype(np.int64)
        inside = (rows >= 0) & (rows < self.cells.shape[0]) & (cols >= 0) & (cols < self.cells.shape[1])
        out = np.zeros(np.shape(x), bool)
        out[inside] = self.cells[rows[inside], cols[inside]]
        return out


def pixel_rays(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray, width: int, height: int, fov_deg: float
) -> np.ndarray:
    """World ray directions ``[height, width, 3]`` through pixel centres (row 0 = top), scaled so the
    component along the optical axis is 1 (so a hit's ray parameter is its depth)."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    tan_v = math.tan(math.radians(fov_deg) / 2)
    sv = (1.0 - 2.0 * (np.arange(height) + 0.5) / height) * tan_v
    su = (2.0 * (np.arange(width) + 0.5) / width - 1.0) * tan_v * width / height
    return forward + sv[:, None, None] * cam_up + su[None, :, None] * right


def road_masks(
    raster: RoadRaster, car: CarParams, x: float, y: float, yaw: float,
    pitch_offset: float = 0.0, height_offset: float = 0.0, yaw_offset: float = 0.0,
) -> dict[str, np.ndarray]:
    """``{"road": bool[H,W], "sky": bool[H,W]}`` for the onboard camera of a car at ``(x, y, yaw)``
    (m, m, rad) with the episode's mount jitter; ``H, W`` = the car's camera size."""
    eye, target, up = car.camera_pose(x, y, yaw, pitch_offset, height_offset, yaw_offset)
    rays = pixel_rays(eye, target, up, car.image_width, car.image_height, car.camera_vertical_fov_deg)
    down = rays[..., 2] < -1e-9
    depth = np.where(down, -eye[2] / np.where(down, rays[..., 2], -1.0), np.inf)
    ground = down & (depth <= car.camera_far)
    hit_x = eye[0] + depth * rays[..., 0]
    hit_y = eye[1] + depth * rays[..., 1]
    road = np.zeros(ground.shape, bool)
    road[ground] = raster.contains(hit_x[ground], hit_y[ground])
    return {"road": road, "sky": ~down}


_RASTERS: dict[int, tuple[Road, RoadRaster]] = {}


def camera_masks(env: object) -> dict[str, np.ndarray]:
    """The masks of :func:`road_masks` for the current frame of a (reset) ``LaneKeepingEnv``
    (``env.unwrapped`` is used, so a wrapped env works); read-only: it changes nothing in the env.
    The asphalt raster is built once per road."""
    from lnn_control.envs.lane_keeping.env import LaneKeepingEnv

    lane = getattr(env, "unwrapped", env)
    if not isinstance(lane, LaneKeepingEnv):
        raise TypeError(f"camera_masks needs a LaneKeepingEnv (or a wrapper of one), got {type(lane).__name__}")
    road = lane.road
    if road is None:
        raise RuntimeError("call reset() before camera_masks(): the env has no road yet")
    cached = _RASTERS.get(id(road))
    if cached is None or cached[0] is not road:
        if len(_RASTERS) > 8:
            _RASTERS.clear()
        cached = (road, RoadRaster.from_road(road))
        _RASTERS[id(road)] = cached
    state = lane.vehicle_state()
    visuals = lane.backend.visuals
    return road_masks(
        cached[1], lane.car, state.x, state.y, state.yaw,
        visuals.camera_pitch_offset, visuals.camera_height_offset, visuals.camera_yaw_offset,
    )
