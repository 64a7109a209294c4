"""Road generation invariants: curvature bound, continuity, no self-overlap, seeds, projection, meshes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnn_control.envs.lane_keeping.road import (
    HELD_OUT_SEED_START,
    Mesh,
    RoadConfig,
    generate_road,
    held_out_seeds,
    is_held_out,
    training_seeds,
)

SEEDS = [0, 1, 7, 42, 999, 1000, 1001, 1234]


@pytest.mark.parametrize("seed", SEEDS)
def test_curvature_is_bounded_and_continuous(seed):
    config = RoadConfig()
    road = generate_road(seed, config)
    assert np.max(np.abs(road.curvature)) <= config.max_curvature + 1e-9
    # clothoid transitions: curvature changes by at most kmax/transition per metre
    dk_ds = np.abs(np.diff(road.curvature)) / np.diff(road.s)
    assert dk_ds.max() <= config.max_curvature / config.transition * 1.01
    # the road is not a straight line: it actually turns somewhere
    assert np.max(np.abs(road.curvature)) > 0.3 * config.max_curvature


@pytest.mark.parametrize("seed", SEEDS)
def test_centerline_is_continuous_with_arclength_spacing(seed):
    road = generate_road(seed)
    steps = np.linalg.norm(np.diff(road.centerline, axis=0), axis=1)
    ds = np.diff(road.s)
    np.testing.assert_allclose(steps, ds, rtol=1e-3)
    assert road.length == pytest.approx(road.config.length)
    # heading matches the direction of travel between samples
    direction = np.arctan2(*np.diff(road.centerline, axis=0)[:, ::-1].T)
    mid_heading = 0.5 * (road.heading[1:] + road.heading[:-1])
    err = (direction - mid_heading + np.pi) % (2 * np.pi) - np.pi
    assert np.max(np.abs(err)) < 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_road_starts_straight_and_does_not_overlap_itself(seed):
    road = generate_road(seed)
    lead = road.s <= road.config.lead_in
    assert np.all(road.curvature[lead] == 0.0)
    assert road.min_clearance() > 2 * road.config.half_width


def test_min_clearance_detects_a_self_overlapping_road():
    road = generate_road(3, RoadConfig(length=20.0))
    # bend the same road into a tight circle that laps itself: clearance collapses
    s = road.s
    circle = np.stack([2.0 * np.sin(s / 2.0), 2.0 - 2.0 * np.cos(s / 2.0)], axis=1)
    looped = dataclasses.replace(road, centerline=circle)
    assert looped.min_clearance() < 0.1


def test_same_seed_same_road_and_different_seeds_differ():
    a, b, c = generate_road(17), generate_road(17), generate_road(18)
    np.testing.assert_array_equal(a.centerline, b.centerline)
    np.testing.assert_array_equal(a.curvature, b.curvature)
    assert not np.allclose(a.curvature, c.curvature)


def test_seed_split_helpers():
    assert HELD_OUT_SEED_START == 1000
    assert not is_held_out(999) and is_held_out(1000)
    assert training_seeds(3, start=897) == [897, 898, 899]
    assert held_out_seeds(2) == [1000, 1001]
    with pytest.raises(ValueError, match=r"training seeds must lie in \[0, 900\) \(900-999 select models"):
        training_seeds(5, start=898)
    with pytest.raises(ValueError, match="held-out seeds start at 1000"):
        held_out_seeds(2, start=5)
    with pytest.raises(ValueError, match="≥ 0"):
        is_held_out(-1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_radius": 1.0}, "min_radius must be ≥ 1.5"),
        ({"lane_width": -0.5}, "lane_width must be > 0"),
        ({"segment_min": 5.0, "segment_max": 2.0}, "segment_max"),
        ({"length": 2.5}, "lead_in"),
        ({"straight_probability": 1.5}, "straight_probability"),
        ({"transition": float("nan")}, "transition must be ≥ 0"),
    ],
)
def test_bad_config_is_rejected_with_the_field_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RoadConfig(**kwargs)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="non-negative integer"):
        generate_road(-3)
    with pytest.raises(ValueError, match="non-negative integer"):
        generate_road(1.5)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(s=st.floats(0.5, 29.5), offset=st.floats(-0.6, 0.6))
def test_projection_inverts_point_at(s, offset):
    road = _ROAD
    point = road.point_at(s, offset)
    proj = road.project(point, s_hint=s)
    assert proj.s == pytest.approx(s, abs=5e-3)
    # lateral offset is measured from the DRIVING (right) lane centre, which sits at -lane_width/2
    assert proj.lateral_offset == pytest.approx(offset + road.lane_width / 2, abs=2e-3)
    assert proj.heading == pytest.approx(float(road.heading_at(s)), abs=1e-2)
    assert road.project(point).s == pytest.approx(s, abs=5e-3)


_ROAD = generate_road(5, RoadConfig(length=30.0))


def test_lane_center_is_right_of_centerline():
    road = _ROAD
    for s in (1.0, 10.0, 20.0):
        centre, lane = road.point_at(s), road.lane_center(s)
        h = float(road.heading_at(s))
        left = np.array([-np.sin(h), np.cos(h)])
        assert float(np.dot(lane - centre, left)) == pytest.approx(-road.lane_width / 2)
        assert road.project(lane, s_hint=s).lateral_offset == pytest.approx(0.0, abs=1e-3)


def test_project_rejects_non_finite_points():
    with pytest.raises(ValueError, match="non-finite"):
        _ROAD.project(np.array([np.nan, 0.0]))


def test_render_meshes_cover_the_road_with_markings():
    road = _ROAD
    cfg = road.config
    asphalt = road.asphalt()
    assert asphalt.vertices.shape[1] == 3 and asphalt.triangles.dtype == np.int32
    assert asphalt.triangles.max() < len(asphalt.vertices)
    # every asphalt vertex lies half_width from the centre line
    for vertex in asphalt.vertices[::7]:
        proj = road.project(vertex[:2])
        assert abs(proj.lateral_offset - road.lane_width / 2) == pytest.approx(cfg.half_width, abs=5e-3)
    # triangles face up (+z): counter-clockwise seen from above
    v = asphalt.vertices[asphalt.triangles]
    normals_z = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])[:, 2]
    assert np.all(normals_z > 0)
    edges = road.edge_lines()
    offsets = [road.project(p[:2]).lateral_offset - road.lane_width / 2 for p in edges.vertices[::5]]
    assert np.allclose(np.abs(offsets), cfg.lane_width, atol=cfg.line_width / 2 + 5e-3)
    dashes = road.centre_dashes()
    # the dashed line covers dash_length/(dash_length+dash_gap) of the road (triangle area)
    d = dashes.vertices[dashes.triangles]
    area = 0.5 * np.abs(np.cross(d[:, 1] - d[:, 0], d[:, 2] - d[:, 0])[:, 2]).sum()
    expected = cfg.line_width * road.length * cfg.dash_length / (cfg.dash_length + cfg.dash_gap)
    assert area == pytest.approx(expected, rel=0.05)
    xmin, ymin, xmax, ymax = road.ground_extent()
    assert xmin < road.centerline[:, 0].min() - cfg.ground_margin
    assert ymax > road.centerline[:, 1].max() + cfg.ground_margin


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000), length=st.floats(5.0, 80.0))
def test_any_seed_and_length_gives_a_valid_road(seed, length):
    config = RoadConfig(length=length)
    road = generate_road(seed, config)
    assert road.length == pytest.approx(length, abs=config.sample_spacing)
    assert np.max(np.abs(road.curvature)) <= config.max_curvature + 1e-9
    assert road.min_clearance() > 2 * config.half_width
    assert np.all(np.isfinite(road.centerline))


def test_centre_dashes_are_the_per_dash_strips_in_one_mesh():
    road = generate_road(1000, RoadConfig(length=17.0))  # the last dash is cut short by the road's end
    cfg = road.config
    lw = cfg.line_width / 2
    starts = np.arange(0.0, road.length, cfg.dash_length + cfg.dash_gap)
    expected = Mesh.merge([road.strip(lw, -lw, a, min(a + cfg.dash_length, road.length)) for a in starts])
    dashes = road.centre_dashes()
    np.testing.assert_array_equal(dashes.vertices, expected.vertices)
    np.testing.assert_array_equal(dashes.triangles, expected.triangles)
    np.testing.assert_array_equal(dashes.uv, expected.uv)
    # one strip is the band between the offsets at linspace stations along the road
    single = road.strip(lw, -lw, 3.25, 3.75)
    stations = np.linspace(3.25, 3.75, int(np.ceil(0.5 / cfg.mesh_spacing)) + 1)
    np.testing.assert_array_equal(single.vertices[0::2, :2], road.point_at(stations, -lw))
    np.testing.assert_array_equal(single.vertices[1::2, :2], road.point_at(stations, lw))
    assert dashes.uv[:, 0].max() == pytest.approx(road.length)
    with pytest.raises(ValueError, match="right_offset < left_offset"):
        road.strip(-lw, lw)
