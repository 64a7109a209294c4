"""Procedural two-lane roads: geometry computed once here, rendered identically by every backend.

Conventions (all lengths in metres, angles in radians, world frame z up):

- The road has two lanes of ``lane_width`` each; its ``centerline`` is the dashed centre line.
- The car drives in ONE lane: the **right-hand lane** (looking along increasing ``s``), whose
  centre lies ``lane_width / 2`` to the right of the centre line.
- Lateral offsets are signed, **+ = left** of the reference line (the left normal of the heading).
- Seeds below :data:`HELD_OUT_SEED_START` (1000) are training roads; seeds from 1000 on are held out.

A road is a piecewise-constant-curvature sequence (straights and arcs) joined by clothoids
(curvature ramps linearly), so curvature is continuous and bounded by ``1 / min_radius``.
It starts with a straight lead-in so every episode starts on a straight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lnn_control.seeds import HELD_OUT_SEED_START, VALIDATION_SEED_START

__all__ = [
    "HELD_OUT_SEED_START",
    "Mesh",
    "Projection",
    "Road",
    "RoadConfig",
    "generate_road",
    "held_out_seeds",
    "is_held_out",
    "training_seeds",
]


def is_held_out(seed: int) -> bool:
    """True for evaluation-only road seeds (≥ 1000)."""
    if int(seed) < 0:
        raise ValueError(f"road seed must be ≥ 0, got {seed}")
    return int(seed) >= HELD_OUT_SEED_START


def training_seeds(count: int, start: int = 0) -> list[int]:
    """``count`` consecutive training seeds from ``start``; raises if they would reach the
    validation seeds (900)."""
    if start < 0 or start + count > VALIDATION_SEED_START:
        raise ValueError(
            f"training seeds must lie in [0, {VALIDATION_SEED_START}) ({VALIDATION_SEED_START}-"
            f"{HELD_OUT_SEED_START - 1} select models, ≥ {HELD_OUT_SEED_START} are held out); "
            f"got start={start}, count={count}"
        )
    return list(range(start, start + count))


def held_out_seeds(count: int, start: int = HELD_OUT_SEED_START) -> list[int]:
    """``count`` consecutive held-out seeds from ``start`` (≥ 1000)."""
    if start < HELD_OUT_SEED_START:
        raise ValueError(f"held-out seeds start at {HELD_OUT_SEED_START}, got start={start}")
    return list(range(start, start + count))


@dataclass(frozen=True)
class RoadConfig:
    """Road generation and marking parameters (1/10 scale; metres, radians).

    lane_width: width of ONE lane (0.5 m ≈ a 3.5–5 m lane at 1/10 scale, room for a 0.2 m track car).
    length: total arclength of the road's centre line, including the straight lead-in.
    min_radius: smallest turn radius of the centre line (curvature bound 1/min_radius).
    lead_in: straight at the start where the car is placed.
    segment_min / segment_max: length range of each constant-curvature piece (arc or straight).
    transition: length of the clothoid (linear curvature ramp) between pieces.
    straight_probability: chance that a piece is a straight.
    sample_spacing: spacing of the dense centre-line samples.
    line_width: width of the painted edge and centre lines.
    dash_length / dash_gap: dashed centre line pattern.
    shoulder: asphalt beyond each edge line.
    mesh_spacing: spacing of the render mesh along the road (coarser than samples; ≤ 3 mm sagitta
        at the minimum radius with the defaults).
    ground_margin: grass extends this far beyond the road's bounding box.
    """

    lane_width: float = 0.5
    length: float = 50.0
    min_radius: float = 2.0
    lead_in: float = 2.0
    segment_min: float = 2.0
    segment_max: float = 6.0
    transition: float = 1.0
    straight_probability: float = 0.25
    sample_spacing: float = 0.02
    line_width: float = 0.04
    dash_length: float = 0.3
    dash_gap: float = 0.3
    shoulder: float = 0.1
    mesh_spacing: float = 0.2
    ground_margin: float = 5.0

    def __post_init__(self) -> None:
        positive = (
            "lane_width", "length", "min_radius", "segment_min", "segment_max", "sample_spacing",
            "line_width", "dash_length", "dash_gap", "mesh_spacing",
        )
        for name in positive:
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"RoadConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("lead_in", "transition", "shoulder", "ground_margin"):
            if not float(getattr(self, name)) >= 0:  # also rejects NaN
                raise ValueError(f"RoadConfig.{name} must be ≥ 0, got {getattr(self, name)}")
        if self.min_radius < 1.5:
            raise ValueError(f"RoadConfig.min_radius must be ≥ 1.5 m (1/10-scale car), got {self.min_radius}")
        if self.min_radius <= self.half_width:
            raise ValueError(
                f"RoadConfig.min_radius={self.min_radius} must exceed the road half width {self.half_width}"
            )
        if self.segment_max < self.segment_min:
            raise ValueError(
                f"RoadConfig.segment_max={self.segment_max} must be ≥ segment_min={self.segment_min}"
            )
        if not 0.0 <= self.straight_probability <= 1.0:
            raise ValueError(f"RoadConfig.straight_probability must be in [0, 1], got {self.straight_probability}")
        if self.length < self.lead_in + 1.0:
            raise ValueError(f"RoadConfig.length={self.length} must be ≥ lead_in + 1 m = {self.lead_in + 1.0}")
        if self.sample_spacing > 0.05:
            raise ValueError(f"RoadConfig.sample_spacing must be ≤ 0.05 m, got {self.sample_spacing}")

    @property
    def half_width(self) -> float:
        """Distance from the centre line to the outer asphalt edge (m)."""
        return self.lane_width + self.line_width / 2 + self.shoulder

    @property
    def max_curvature(self) -> float:
        return 1.0 / self.min_radius


@dataclass(frozen=True)
class Mesh:
    """A flat triangle mesh on the ground: vertices [N,3] float64 (m, z=0), triangles [M,3] int32
    (counter-clockwise seen from above, normals +z), uv [N,2] (m: arclength, lateral offset)."""

    vertices: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray

    @staticmethod
    def merge(meshes: list[Mesh]) -> Mesh:
        vertices, triangles, uvs, base = [], [], [], 0
        for mesh in meshes:
            vertices.append(mesh.vertices)
            triangles.append(mesh.triangles + base)
            uvs.append(mesh.uv)
            base += len(mesh.vertices)
        if not vertices:
            return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int32), np.zeros((0, 2)))
        return Mesh(np.concatenate(vertices), np.concatenate(triangles).astype(np.int32), np.concatenate(uvs))


@dataclass(frozen=True)
class Projection:
    """A point projected onto the road.

    s: arclength of the closest centre-line point (m).
    lateral_offset: signed offset from the DRIVING-lane centre (m, + = left).
    heading: road heading at s (rad, continuous / unwrapped).
    """

    s: float
    lateral_offset: float
    heading: float


@dataclass(frozen=True)
class Road:
    """A generated road. Arrays have K dense samples along the centre line.

    centerline: [K,2] m; heading: [K] rad (unwrapped); curvature: [K] 1/m; s: [K] m (s[0] = 0).
    """

    seed: int
    config: RoadConfig
    centerline: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray
    s: np.ndarray

    @property
    def lane_width(self) -> float:
        return self.config.lane_width

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @property
    def driving_lane_offset(self) -> float:
        """Offset of the driving (right) lane centre from the centre line (m, + = left): −lane_width/2."""
        return -0.5 * self.config.lane_width

    # --- interpolation ---------------------------------------------------------------------------
    def heading_at(self, s: float | np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.heading)

    def curvature_at(self, s: float | np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.curvature)

    def point_at(self, s: float | np.ndarray, offset: float | np.ndarray = 0.0) -> np.ndarray:
        """Point(s) at arclength ``s`` shifted ``offset`` m to the left of the centre line: [...,2]."""
        s = np.clip(np.asarray(s, float), 0.0, self.length)
        x = np.interp(s, self.s, self.centerline[:, 0])
        y = np.interp(s, self.s, self.centerline[:, 1])
        h = np.interp(s, self.s, self.heading)
        offset = np.asarray(offset, float)
        return np.stack([x - np.sin(h) * offset, y + np.cos(h) * offset], axis=-1)

    def lane_center(self, s: float | np.ndarray) -> np.ndarray:
        """Centre of the driving (right-hand) lane at arclength ``s``: [...,2] m."""
        return self.point_at(s, self.driving_lane_offset)

    # --- projection --------------------------------------------------------------------------------
    def project(self, xy: np.ndarray, s_hint: float | None = None, window: float = 2.0) -> Projection:
        """Project a world point (m) onto the road.

        ``s_hint`` (e.g. the previous step's s) restricts the search to ``[s_hint ± window]`` so a
        road passing near itself cannot capture the point; without it the whole road is searched.
        """
        xy = np.asarray(xy, float).reshape(2)
        if not np.all(np.isfinite(xy)):
            raise ValueError(f"cannot project a non-finite point {xy.tolist()} onto the road")
        if s_hint is None:
            lo, hi = 0, len(self.s)
        else:
            ds = self.s[1] - self.s[0]
            centre = int(round(float(s_hint) / ds))
            half = int(np.ceil(window / ds))
            lo, hi = max(0, centre - half), min(len(self.s), centre + half + 1)
            if hi - lo < 2:
                lo, hi = max(0, min(lo, len(self.s) - 2)), min(len(self.s), max(hi, lo + 2))
        pts = self.centerline[lo:hi]
        d2 = np.sum((pts - xy) ** 2, axis=1)
        i = lo + int(np.argmin(d2))
        # refine on the neighbouring segment(s); scalar arithmetic (this runs twice per env step)
        px, py = float(xy[0]), float(xy[1])
        best_d2, s = float(d2[i - lo]), float(self.s[i])
        for j in (i - 1, i):
            if j < 0 or j + 1 >= len(self.s):
                continue
            ax, ay = float(self.centerline[j, 0]), float(self.centerline[j, 1])
            sx, sy = float(self.centerline[j + 1, 0]) - ax, float(self.centerline[j + 1, 1]) - ay
            t = min(max(((px - ax) * sx + (py - ay) * sy) / (sx * sx + sy * sy), 0.0), 1.0)
            dx, dy = px - (ax + t * sx), py - (ay + t * sy)
            dist2 = dx * dx + dy * dy
            if dist2 < best_d2:
                best_d2, s = dist2, float(self.s[j] + t * (self.s[j + 1] - self.s[j]))
        h = float(np.interp(s, self.s, self.heading))
        cx, cy = float(np.interp(s, self.s, self.centerline[:, 0])), float(np.interp(s, self.s, self.centerline[:, 1]))
        offset_from_centerline = (px - cx) * -float(np.sin(h)) + (py - cy) * float(np.cos(h))
        return Projection(s=s, lateral_offset=offset_from_centerline - self.driving_lane_offset, heading=h)

    # --- render helpers (both backends draw exactly these) ------------------------------------------
    def strip(
        self, left_offset: float, right_offset: float, s_start: float = 0.0, s_end: float | None = None
    ) -> Mesh:
        """A band between lateral offsets ``right_offset < left_offset`` (m from the centre line)
        from ``s_start`` to ``s_end`` (default: end of road)."""
        s_end = self.length if s_end is None else float(s_end)
        return self._strips(left_offset, right_offset, np.array([float(s_start)]), np.array([s_end]))

    def _strips(self, left_offset: float, right_offset: float, starts: np.ndarray, ends: np.ndarray) -> Mesh:
        """Several bands between the same offsets, band i from ``starts[i]`` to ``ends[i]``, as ONE
        mesh: the same vertices and triangles, in the same order, as merging :meth:`strip` per band,
        but all points interpolated in one call (the dashed centre line has ~170 bands on 50 m)."""
        if not right_offset < left_offset:
            raise ValueError(f"strip needs right_offset < left_offset, got {right_offset} ≥ {left_offset}")
        starts, ends = np.asarray(starts, float), np.asarray(ends, float)
        counts = np.maximum(2, np.ceil((ends - starts) / self.config.mesh_spacing).astype(int) + 1)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # first station of each band
        band = np.repeat(np.arange(len(counts)), counts)
        j = np.arange(int(counts.sum())) - first[band]
        # exactly np.linspace(start, end, n) per band: start + j·(end − start)/(n − 1), last = end
        stations = j * ((ends - starts) / (counts - 1))[band] + starts[band]
        stations[first + counts - 1] = ends
        left = self.point_at(stations, left_offset)
        right = self.point_at(stations, right_offset)
        n = len(stations)
        vertices = np.zeros((2 * n, 3))
        vertices[0::2, :2] = right
        vertices[1::2, :2] = left
        uv = np.zeros((2 * n, 2))
        uv[0::2, 0] = stations
        uv[1::2, 0] = stations
        uv[0::2, 1] = right_offset
        uv[1::2, 1] = left_offset
        # quads (r_i, l_i, r_i+1, l_i+1) inside each band, counter-clockwise seen from above;
        # per band: all lower triangles, then all upper ones
        quad = np.flatnonzero(j < counts[band] - 1)
        k = 2 * quad
        lower = np.stack([k, k + 2, k + 1], axis=1)
        upper = np.stack([k + 1, k + 2, k + 3], axis=1)
        order = np.argsort(np.concatenate([2 * band[quad], 2 * band[quad] + 1]), kind="stable")
        tris = np.concatenate([lower, upper])[order].astype(np.int32)
        return Mesh(vertices, tris, uv)

    def asphalt(self) -> Mesh:
        """The asphalt surface: both lanes plus shoulders."""
        half = self.config.half_width
        return self.strip(half, -half)

    def edge_lines(self) -> Mesh:
        """The two solid white edge lines, at ±lane_width from the centre line."""
        w, lw = self.config.lane_width, self.config.line_width / 2
        return Mesh.merge([self.strip(w + lw, w - lw), self.strip(-w + lw, -w - lw)])

    def centre_dashes(self) -> Mesh:
        """The dashed centre line (``dash_length`` painted, ``dash_gap`` empty), starting painted at s=0."""
        cfg = self.config
        lw = cfg.line_width / 2
        period = cfg.dash_length + cfg.dash_gap
        starts = np.arange(0.0, self.length, period)
        starts = starts[starts < self.length - 1e-6]
        return self._strips(lw, -lw, starts, np.minimum(starts + cfg.dash_length, self.length))

    def ground_extent(self) -> tuple[float, float, float, float]:
        """Grass rectangle (xmin, ymin, xmax, ymax) covering the road plus ``ground_margin`` (m)."""
        margin = self.config.ground_margin + self.config.half_width
        lo = self.centerline.min(axis=0) - margin
        hi = self.centerline.max(axis=0) + margin
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    # --- invariants --------------------------------------------------------------------------------
    def min_clearance(self) -> float:
        """Smallest distance between centre-line points further apart along the road than π·half-width·2
        (m). The road does not overlap itself iff this exceeds twice the half width."""
        step = max(1, int(round(0.25 / (self.s[1] - self.s[0]))))
        pts = self.centerline[::step]
        ss = self.s[::step]
        d = np.sqrt(np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1))
        far = np.abs(ss[:, None] - ss[None, :]) > np.pi * 2 * self.config.half_width
        return float(d[far].min()) if np.any(far) else float("inf")


def _curvature_profile(config: RoadConfig, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Piecewise-linear curvature: lead-in straight, then plateaus joined by clothoid ramps."""
    kmax = config.max_curvature
    knots_s, knots_k = [0.0, config.lead_in], [0.0, 0.0]
    pos, current, heading = config.lead_in, 0.0, 0.0
    while pos < config.length:
        straight = rng.random() < config.straight_probability
        # turn back towards the start direction more often the further the road has turned, so
        # roads meander instead of spiralling into themselves: P(left) = 1 / (1 + exp(heading))
        left = rng.random() < 1.0 / (1.0 + np.exp(heading))
        target = 0.0 if straight else float((1.0 if left else -1.0) * rng.uniform(0.3, 1.0) * kmax)
        ramp = config.transition * max(abs(target - current) / kmax, 0.25) if config.transition > 0 else 0.0
        plateau = float(rng.uniform(config.segment_min, config.segment_max))
        knots_s += [pos + ramp, pos + ramp + plateau]
        knots_k += [target, target]
        heading += 0.5 * (current + target) * ramp + target * plateau
        pos += ramp + plateau
        current = target
    return np.interp(s, np.asarray(knots_s), np.asarray(knots_k))


def generate_road(seed: int, config: RoadConfig | None = None, max_attempts: int = 200) -> Road:
    """The road for ``seed`` (deterministic). Draws are retried until the road clears itself by at
    least one road width; raises ``RuntimeError`` if no valid road is found in ``max_attempts``."""
    config = RoadConfig() if config is None else config
    if int(seed) != seed or seed < 0:
        raise ValueError(f"road seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x0AD]))
    n = int(np.ceil(config.length / config.sample_spacing)) + 1
    s = np.linspace(0.0, config.length, n)
    ds = s[1] - s[0]
    for _ in range(max_attempts):
        curvature = _curvature_profile(config, s, rng)
        heading = np.concatenate([[0.0], np.cumsum(0.5 * (curvature[1:] + curvature[:-1]) * ds)])
        mid = 0.5 * (heading[1:] + heading[:-1])
        steps = np.stack([np.cos(mid), np.sin(mid)], axis=1) * ds
        centerline = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
        arclength = s.copy()
        for array in (centerline, heading, curvature, arclength):
            array.setflags(write=False)
        road = Road(int(seed), config, centerline, heading, curvature, arclength)
        if road.min_clearance() > 2 * config.half_width + 0.5:
            return road
    raise RuntimeError(
        f"no self-clearing road found for seed {seed} in {max_attempts} attempts; "
        f"shorten RoadConfig.length ({config.length}) or raise min_radius ({config.min_radius})"
    )
