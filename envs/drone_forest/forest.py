"""Procedural forests from a seed: trunks and canopies, start pose and target, reachability check.

World frame: x, y on the ground, z up (m). The forest fills the square ``|x|, |y| ≤ area_size/2``
(the horizontal flight volume); vertically the drone may fly in ``(0, ceiling]``. Canopies start above
``ceiling`` so only trunks (vertical cylinders) and the ground can be hit inside the flight volume.

Generation (:func:`generate_forest`), deterministic in ``seed``:

1. start and target: a distance drawn in ``target_distance_range`` (15–30 m), a random bearing and a
   random centre, both at ``flight_altitude`` and ``edge_margin`` inside the area; the start yaw
   faces the target ± ``start_yaw_jitter``.
2. trunks: Poisson-disk (dart-throwing) placement at ``density × density_scale`` trees per 100 m²
   with centres at least ``effective_min_spacing`` apart, none within ``start_clearance`` /
   ``target_clearance`` (plus its radius) of the start / target; uniformly dense, so the target
   stands beyond trees.
3. a collision-free path must exist: 8-connected grid search at ``path_resolution`` over trunks
   inflated by ``path_inflation``; otherwise the forest is redrawn (same seed, next attempt).

Seeds < ``HELD_OUT_SEED_START`` (1000) are for training, ≥ 1000 held out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lnn_control.envs.common import rgb
from lnn_control.seeds import HELD_OUT_SEED_START

__all__ = ["HELD_OUT_SEED_START", "Forest", "ForestConfig", "generate_forest", "plan_path"]


@dataclass(frozen=True)
class ForestConfig:
    """Forest generation parameters (m unless stated).

    area_size: side of the square flight area centred at the origin.
    density: trees per 100 m² (scaled by ``density_scale`` of :func:`generate_forest`).
    trunk_radius_range / trunk_height_range / canopy_radius_range: uniform ranges per tree.
    canopy_base_range: height of a canopy's bottom above the ground (must exceed ``ceiling``).
    min_spacing: minimum distance between trunk centres (lowered automatically for very dense
        forests, see :meth:`effective_min_spacing`).
    start_clearance / target_clearance: no trunk surface this close to the start / target.
    target_distance_range: start-to-target distance.
    flight_altitude: start and target height; ceiling: top of the flight volume.
    edge_margin: start and target stay this far inside the area.
    start_yaw_jitter: start yaw = bearing to target ± this (rad).
    path_resolution: grid cell of the reachability search; path_inflation: added to trunk radii
        in that search (≥ the quad's collision radius).
    max_attempts: redraws before giving up with a ValueError.
    """

    area_size: float = 50.0
    density: float = 5.0
    trunk_radius_range: tuple[float, float] = (0.12, 0.3)
    trunk_height_range: tuple[float, float] = (7.0, 11.0)
    canopy_radius_range: tuple[float, float] = (1.0, 1.8)
    canopy_base_range: tuple[float, float] = (4.5, 6.0)
    min_spacing: float = 2.5
    start_clearance: float = 2.0
    target_clearance: float = 1.5
    target_distance_range: tuple[float, float] = (15.0, 30.0)
    flight_altitude: float = 1.5
    ceiling: float = 4.0
    edge_margin: float = 3.0
    start_yaw_jitter: float = 0.3
    path_resolution: float = 0.25
    path_inflation: float = 0.35
    max_attempts: int = 20

    def __post_init__(self) -> None:
        for name in ("area_size", "min_spacing", "flight_altitude", "ceiling", "path_resolution", "path_inflation"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ForestConfig.{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.density) and self.density >= 0):
            raise ValueError(f"ForestConfig.density must be ≥ 0 trees per 100 m², got {self.density}")
        for name in ("trunk_radius_range", "trunk_height_range", "canopy_radius_range", "canopy_base_range",
                     "target_distance_range"):
            low, high = getattr(self, name)
            if not (0 < low <= high):
                raise ValueError(f"ForestConfig.{name} must be (low, high) with 0 < low ≤ high, got {(low, high)}")
        if self.canopy_base_range[0] <= self.ceiling:
            raise ValueError(
                f"ForestConfig.canopy_base_range starts at {self.canopy_base_range[0]} m, at or below the "
                f"ceiling {self.ceiling} m; canopies must be above the flight volume"
            )
        if self.flight_altitude >= self.ceiling:
            raise ValueError(f"ForestConfig.flight_altitude ({self.flight_altitude}) must be below ceiling ({self.ceiling})")
        if self.target_distance_range[1] > (self.area_size - 2 * self.edge_margin) * 0.95:
            raise ValueError(
                f"ForestConfig.area_size={self.area_size} is too small for target distances up to "
                f"{self.target_distance_range[1]} m with edge_margin={self.edge_margin}"
            )
        if self.start_clearance < 0 or self.target_clearance < 0 or self.edge_margin < 0:
            raise ValueError("ForestConfig.start_clearance, target_clearance and edge_margin must be ≥ 0")
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ValueError(f"ForestConfig.max_attempts must be an int ≥ 1, got {self.max_attempts!r}")

    def effective_min_spacing(self, density_scale: float = 1.0) -> float:
        """Trunk spacing actually enforced: ``min_spacing``, lowered to 0.75/√(trees per m²) when
        the requested density could not be packed otherwise (dense-forest shift)."""
        per_m2 = self.density * density_scale / 100.0
        if per_m2 <= 0:
            return self.min_spacing
        return float(min(self.min_spacing, 0.75 / math.sqrt(per_m2)))


@dataclass(frozen=True, eq=False)
class Forest:
    """One generated forest (immutable; arrays are read-only).

    trunk_xy [K, 2], trunk_radius [K], trunk_height [K], canopy_radius [K], canopy_base [K] (m).
    start_position [3], start_yaw (rad), target_position [3] (m).
    half_size: the flight area is |x|, |y| ≤ half_size; ceiling: top of the flight volume (m).
    ground_color / foliage_color / trunk_color: RGB in [0, 1].
    """

    seed: int
    density_scale: float
    trunk_xy: np.ndarray
    trunk_radius: np.ndarray
    trunk_height: np.ndarray
    canopy_radius: np.ndarray
    canopy_base: np.ndarray
    start_position: np.ndarray
    start_yaw: float
    target_position: np.ndarray
    half_size: float
    ceiling: float
    ground_color: tuple[float, float, float]
    foliage_color: tuple[float, float, float]
    trunk_color: tuple[float, float, float]
    config: ForestConfig = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("trunk_xy", "trunk_radius", "trunk_height", "canopy_radius", "canopy_base",
                     "start_position", "target_position"):
            array = np.array(getattr(self, name), dtype=float)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def num_trees(self) -> int:
        return int(self.trunk_xy.shape[0])

    @property
    def held_out(self) -> bool:
        return self.seed >= HELD_OUT_SEED_START

    def clearance(self, points: np.ndarray) -> np.ndarray | float:
        """Horizontal distance (m) from point(s) [..., 2 or 3] to the nearest trunk surface
        (negative inside a trunk; +inf without trees). A single point gives a float."""
        pts = np.asarray(points, float)
        single = pts.ndim == 1
        xy = pts.reshape(-1, pts.shape[-1])[:, :2]
        if self.num_trees == 0:
            out = np.full(len(xy), np.inf)
        else:
            d = np.linalg.norm(xy[:, None, :] - self.trunk_xy[None], axis=2) - self.trunk_radius[None]
            out = d.min(axis=1)
        return float(out[0]) if single else out.reshape(pts.shape[:-1])

    def segment_clearance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Smallest horizontal distance (m) from the segment a→b (xy) to any trunk surface."""
        if self.num_trees == 0:
            return math.inf
        a2, b2 = np.asarray(a, float)[:2], np.asarray(b, float)[:2]
        ab = b2 - a2
        length2 = float(ab @ ab)
        t = np.zeros(self.num_trees) if length2 < 1e-12 else np.clip((self.trunk_xy - a2) @ ab / length2, 0.0, 1.0)
        closest = a2 + t[:, None] * ab
        return float((np.linalg.norm(self.trunk_xy - closest, axis=1) - self.trunk_radius).min())

    def segment_collides(self, a: np.ndarray, b: np.ndarray, radius: float) -> bool:
        """True if a sphere of ``radius`` (m) swept along a→b touches a trunk (horizontal test)."""
        return self.segment_clearance(a, b) < radius

    def in_flight_volume(self, position: np.ndarray) -> bool:
        """Inside the area horizontally and below the ceiling (the ground is a collision, not this)."""
        x, y, z = np.asarray(position, float)[:3]
        return bool(abs(x) <= self.half_size and abs(y) <= self.half_size and z <= self.ceiling)

    def occupancy(self, inflation: float, resolution: float) -> tuple[np.ndarray, float]:
        """Free-space grid: bool [N, N] (True = free, index [i, j] = cell centre
        (origin + (i+0.5)·res, origin + (j+0.5)·res)) with trunks grown by ``inflation``; and origin (m)."""
        n = int(math.ceil(2 * self.half_size / resolution))
        origin = -self.half_size
        free = np.ones((n, n), bool)
        centres = origin + (np.arange(n) + 0.5) * resolution
        for (x, y), r in zip(self.trunk_xy, self.trunk_radius):
            reach = r + inflation
            i0, i1 = np.searchsorted(centres, [x - reach, x + reach])
            j0, j1 = np.searchsorted(centres, [y - reach, y + reach])
            if i0 >= i1 or j0 >= j1:
                continue
            dx = centres[i0:i1, None] - x
            dy = centres[None, j0:j1] - y
            free[i0:i1, j0:j1] &= dx * dx + dy * dy >= reach * reach
        return free, origin

    def plan(self, inflation: float | None = None, resolution: float | None = None) -> np.ndarray | None:
        """Shortest 8-connected grid path start→target (xy [N, 2], m, shortcut-smoothed) around
        trunks inflated by ``inflation`` (default: the config's ``path_inflation``); None if none exists."""
        return plan_path(
            self, self.start_position[:2], self.target_position[:2],
            self.config.path_inflation if inflation is None else inflation,
            self.config.path_resolution if resolution is None else resolution,
        )


_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


def _wavefront(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> np.ndarray | None:
    """Breadth-first step counts from ``start`` over free cells (8-connected, whole-array wavefront);
    −1 = not reached. None if ``goal`` is unreachable."""
    n0, n1 = free.shape
    dist = np.full(free.shape, -1, np.int32)
    if not (free[start] and free[goal]):
        return None
    frontier = np.zeros(free.shape, bool)
    frontier[start] = True
    dist[start] = 0
    step = 0
    while frontier.any():
        step += 1
        grown = np.zeros_like(frontier)
        grown[1:, :] |= frontier[:-1, :]
        grown[:-1, :] |= frontier[1:, :]
        grown[:, 1:] |= frontier[:, :-1]
        grown[:, :-1] |= frontier[:, 1:]
        grown[1:, 1:] |= frontier[:-1, :-1]
        grown[1:, :-1] |= frontier[:-1, 1:]
        grown[:-1, 1:] |= frontier[1:, :-1]
        grown[:-1, :-1] |= frontier[1:, 1:]
        frontier = grown & free & (dist < 0)
        dist[frontier] = step
        if dist[goal] >= 0:
            return dist
    return None


def plan_path(forest: Forest, start_xy: np.ndarray, goal_xy: np.ndarray, inflation: float, resolution: float) -> np.ndarray | None:
    """Collision-free xy path [N, 2] (m) from ``start_xy`` to ``goal_xy`` around trunks grown by
    ``inflation`` (grid search at ``resolution``, then line-of-sight shortcutting); None if none.
    A start inside the grown trunks first heads to the nearest free cell."""
    if not (inflation >= 0 and resolution > 0):
        raise ValueError(f"plan_path needs inflation ≥ 0 and resolution > 0, got {inflation}, {resolution}")
    free, origin = forest.occupancy(inflation, resolution)
    n = free.shape[0]

    def cell(p: np.ndarray) -> tuple[int, int]:
        i, j = np.clip(np.floor((np.asarray(p, float)[:2] - origin) / resolution).astype(int), 0, n - 1)
        return int(i), int(j)

    start, goal = cell(start_xy), cell(goal_xy)
    start_xy = np.asarray(start_xy, float)[:2]
    entry = None  # a start inside the inflated zone (e.g. a learner near a trunk) leaves via the nearest free cell
    if not free[start]:
        cells_free = np.argwhere(free)
        if len(cells_free) == 0:
            return None
        centres = origin + (cells_free + 0.5) * resolution
        nearest = int(np.argmin(np.sum((centres - start_xy) ** 2, axis=1)))
        start, entry = (int(cells_free[nearest][0]), int(cells_free[nearest][1])), centres[nearest]
    dist = _wavefront(free, start, goal)
    if dist is None:
        return None
    cells = [goal]
    while cells[-1] != start:
        i, j = cells[-1]
        here = dist[i, j]
        best: tuple[int, int] | None = None
        for di, dj in _NEIGHBOURS:  # orthogonal first: prefer straight moves on ties
            a, b = i + di, j + dj
            if 0 <= a < n and 0 <= b < n and dist[a, b] == here - 1:
                best = (a, b)
                break
        if best is None:  # pragma: no cover - a predecessor exists by construction of the wavefront
            raise RuntimeError(f"path reconstruction lost the wavefront at cell {(i, j)}")
        cells.append(best)
    cells.reverse()
    points = origin + (np.array(cells, float) + 0.5) * resolution
    points[-1] = np.asarray(goal_xy, float)[:2]
    if entry is None:
        points[0] = start_xy
    else:
        points = np.vstack([start_xy, points])
    # line-of-sight shortcutting against the same inflated trunks
    smooth = [points[0]]
    k = 0
    while k < len(points) - 1:
        far = len(points) - 1
        while far > k + 1 and forest.segment_collides(points[k], points[far], inflation):
            far -= 1
        smooth.append(points[far])
        k = far
    return np.array(smooth)


def generate_forest(seed: int, config: ForestConfig | None = None, density_scale: float = 1.0) -> Forest:
    """The forest of ``seed`` (int ≥ 0) with ``config`` and trees × ``density_scale`` (> 0)."""
    config = ForestConfig() if config is None else config
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"forest seed must be an int ≥ 0, got {seed!r}")
    if not (isinstance(density_scale, (int, float)) and math.isfinite(density_scale) and density_scale > 0):
        raise ValueError(f"density_scale must be a finite number > 0, got {density_scale!r}")
    rng = np.random.default_rng([int(seed), 0x0F0E57])
    for _ in range(config.max_attempts):
        forest = _draw(int(seed), config, float(density_scale), rng)
        if forest.plan(resolution=config.path_resolution) is not None:
            return forest
    raise ValueError(
        f"no forest with a collision-free path after {config.max_attempts} attempts for seed {seed} "
        f"(density {config.density} × {density_scale}); lower the density or raise max_attempts"
    )


def _draw(seed: int, config: ForestConfig, density_scale: float, rng: np.random.Generator) -> Forest:
    half = config.area_size / 2
    distance = rng.uniform(*config.target_distance_range)
    bearing = rng.uniform(-math.pi, math.pi)
    u = np.array([math.cos(bearing), math.sin(bearing)])
    room = half - config.edge_margin - 0.5 * distance * np.abs(u)  # centre range keeping both ends inside
    centre = rng.uniform(-room, room)
    start = centre - 0.5 * distance * u
    target = centre + 0.5 * distance * u
    start_yaw = float(bearing + rng.uniform(-config.start_yaw_jitter, config.start_yaw_jitter))

    wanted = int(round(config.density * density_scale * config.area_size**2 / 100.0))
    spacing = config.effective_min_spacing(density_scale)
    xy = np.empty((0, 2))
    radii = np.empty(0)
    candidates = 0
    while len(xy) < wanted and candidates < 60 * max(wanted, 1):
        batch = rng.uniform(-half, half, (256, 2))
        batch_r = rng.uniform(*config.trunk_radius_range, 256)
        candidates += 256
        for p, r in zip(batch, batch_r):
            if np.linalg.norm(p - start) < config.start_clearance + r:
                continue
            if np.linalg.norm(p - target) < config.target_clearance + r:
                continue
            if len(xy) and np.min(np.sum((xy - p) ** 2, axis=1)) < spacing * spacing:
                continue
            xy = np.vstack([xy, p])
            radii = np.append(radii, r)
            if len(xy) >= wanted:
                break
    k = len(xy)
    ground = np.clip(np.array([0.36, 0.42, 0.22]) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    foliage = np.clip(np.array([0.16, 0.42, 0.16]) + rng.uniform(-0.06, 0.06, 3), 0, 1)
    trunk = np.clip(np.array([0.40, 0.29, 0.19]) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    return Forest(
        seed=seed,
        density_scale=density_scale,
        trunk_xy=xy,
        trunk_radius=radii,
        trunk_height=rng.uniform(*config.trunk_height_range, k),
        canopy_radius=rng.uniform(*config.canopy_radius_range, k),
        canopy_base=rng.uniform(*config.canopy_base_range, k),
        start_position=np.array([start[0], start[1], config.flight_altitude]),
        start_yaw=start_yaw,
        target_position=np.array([target[0], target[1], config.flight_altitude]),
        half_size=half,
        ceiling=config.ceiling,
        ground_color=rgb(ground),
        foliage_color=rgb(foliage),
        trunk_color=rgb(trunk),
        config=config,
    )
