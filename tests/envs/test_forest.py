"""Procedural forests: invariants (spacing, clear start, target distance, reachable path), determinism, split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_control.envs.drone_forest.forest import (
    HELD_OUT_SEED_START,
    ForestConfig,
    generate_forest,
    plan_path,
)

SEEDS = (0, 1, 7, 42, 999, 1000, 1003, 2024)


@pytest.mark.parametrize("seed", SEEDS)
def test_forest_invariants(seed: int) -> None:
    config = ForestConfig()
    forest = generate_forest(seed, config)
    xy = forest.trunk_xy
    # density: the requested count (50 × 50 m at 5 / 100 m² = 125 trees)
    assert forest.num_trees == round(config.density * config.area_size**2 / 100)
    # minimum trunk spacing
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    assert d.min() >= config.min_spacing - 1e-9
    # all trunks inside the area, radii in range
    assert np.all(np.abs(xy) <= forest.half_size)
    assert np.all((forest.trunk_radius >= 0.12) & (forest.trunk_radius <= 0.3))
    # canopies above the flight volume
    assert forest.canopy_base.min() > forest.ceiling
    # start clear, target clear
    assert forest.clearance(forest.start_position) >= config.start_clearance - 1e-9
    assert forest.clearance(forest.target_position) >= config.target_clearance - 1e-9
    # target 15–30 m away, both inside the flight volume with the edge margin
    distance = float(np.linalg.norm(forest.target_position - forest.start_position))
    assert 15.0 <= distance <= 30.0
    for point in (forest.start_position, forest.target_position):
        assert np.all(np.abs(point[:2]) <= forest.half_size - config.edge_margin + 1e-9)
        assert forest.in_flight_volume(point)
    # start yaw faces the target within the jitter
    bearing = math.atan2(*(forest.target_position - forest.start_position)[1::-1])
    assert abs(math.remainder(forest.start_yaw - bearing, 2 * math.pi)) <= config.start_yaw_jitter + 1e-9
    # a collision-free path exists: every segment keeps the inflated clearance
    path = forest.plan()
    assert path is not None
    assert np.allclose(path[0], forest.start_position[:2]) and np.allclose(path[-1], forest.target_position[:2])
    for a, b in zip(path[:-1], path[1:]):
        assert forest.segment_clearance(a, b) >= config.path_inflation - 1e-9


def test_same_seed_same_forest_and_seeds_differ() -> None:
    a, b, c = generate_forest(5), generate_forest(5), generate_forest(6)
    assert np.array_equal(a.trunk_xy, b.trunk_xy) and np.array_equal(a.trunk_radius, b.trunk_radius)
    assert np.array_equal(a.target_position, b.target_position) and a.start_yaw == b.start_yaw
    assert not np.array_equal(a.trunk_xy, c.trunk_xy)


def test_train_and_held_out_split() -> None:
    assert HELD_OUT_SEED_START == 1000
    assert not generate_forest(999).held_out
    assert generate_forest(1000).held_out


def test_density_scale_adds_trees_and_keeps_a_path() -> None:
    config = ForestConfig()
    base = generate_forest(3, config)
    dense = generate_forest(3, config, density_scale=2.0)
    assert dense.num_trees >= 1.9 * base.num_trees
    d = np.linalg.norm(dense.trunk_xy[:, None] - dense.trunk_xy[None], axis=2) + np.eye(dense.num_trees) * 1e9
    assert d.min() >= config.effective_min_spacing(2.0) - 1e-9
    assert config.effective_min_spacing(2.0) < config.min_spacing
    assert dense.plan() is not None


def test_clearance_and_segment_queries_match_brute_force() -> None:
    forest = generate_forest(11)
    rng = np.random.default_rng(0)
    points = rng.uniform(-20, 20, (50, 2))
    brute = [min(np.hypot(*(p - c)) - r for c, r in zip(forest.trunk_xy, forest.trunk_radius)) for p in points]
    assert np.allclose(forest.clearance(points), brute)
    # a segment through a trunk centre collides; one far above/around (sampled densely) agrees with sampling
    k = 0
    centre = forest.trunk_xy[k]
    assert forest.segment_collides(centre - [1.0, 0.0], centre + [1.0, 0.0], 0.0)
    for _ in range(20):
        a, b = rng.uniform(-20, 20, (2, 2))
        samples = a + np.linspace(0, 1, 2001)[:, None] * (b - a)
        assert forest.segment_clearance(a, b) == pytest.approx(float(forest.clearance(samples).min()), abs=0.01)


def test_planner_reports_no_path_when_walled_in() -> None:
    forest = generate_forest(2)
    # inflating every trunk by 3 m closes the forest (spacing 2.5 m): no path
    assert plan_path(forest, forest.start_position, forest.target_position, 3.0, 0.25) is None


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_forest(-1)
    with pytest.raises(ValueError, match="density_scale"):
        generate_forest(0, density_scale=float("nan"))
    with pytest.raises(ValueError, match="canopy_base_range"):
        ForestConfig(ceiling=5.0)
    with pytest.raises(ValueError, match="area_size"):
        ForestConfig(area_size=20.0)
    with pytest.raises(ValueError, match="density"):
        ForestConfig(density=-1.0)


def test_planner_leaves_the_inflated_zone_first_when_starting_close_to_a_trunk() -> None:
    forest = generate_forest(1001)
    centre, radius = forest.trunk_xy[5], forest.trunk_radius[5]
    start = centre + [radius + 0.4, 0.0]  # inside the 0.8 m planning margin
    path = plan_path(forest, start, forest.target_position, 0.8, 0.25)
    assert path is not None and np.allclose(path[0], start)
    assert forest.clearance(path[1]) >= 0.8  # the nearest free cell
    for a, b in zip(path[1:-1], path[2:]):
        assert forest.segment_clearance(a, b) >= 0.8 - 1e-9


def test_top_down_map_draws_target_path_and_rejects_bad_paths() -> None:
    from lnn_control.envs.drone_forest.topdown import PATH, TARGET, draw_top_down

    forest = generate_forest(1000)
    start, target = forest.start_position[:2], forest.target_position[:2]
    path = np.linspace(start, start + 0.5 * (target - start), 20)
    image = draw_top_down(forest, path, yaw=0.0, size=200)
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8
    assert np.all(image == TARGET, axis=-1).sum() > 10
    assert np.all(image == PATH, axis=-1).sum() > 20
    with pytest.raises(ValueError, match="path_xy"):
        draw_top_down(forest, np.array([[np.nan, 0.0]]), 0.0)
    with pytest.raises(ValueError, match="size"):
        draw_top_down(forest, path, 0.0, size=8)
