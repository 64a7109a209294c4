"""PyBullet drone-forest backend: the quadrotor as one rigid body, the forest as ONE static body.

- Quadrotor: a box (``QuadParams.body_half_extents``) with ``mass`` and diagonal ``inertia`` (no
  joint, no damping). Every physics step: the four rotor thrusts along body +z at the rotor hubs and
  each rotor's yaw reaction torque ``−spin·k·T``, applied as their exact equivalent wrench at the
  centre of mass (``QuadParams.body_wrench``: total thrust + the hubs' moment arms + reaction
  torques), plus linear drag against the wind — converted to the world frame and applied with
  ``WORLD_FRAME`` (PyBullet clears external forces after each ``stepSimulation``).
- World: a collision plane (the ground, drawn by painting empty pixels, see below), ONE static body
  whose collision shape is a concave triangle mesh of all trunks, and visual-only bodies per 10 × 10 m
  tile (trunk prisms; canopy cones) — at most 50 for the 50 m forest, never one per tree. Before
  each frame, tiles outside the camera's horizontal view or range are hidden (TinyRenderer's cost
  grows with triangles: 125 trees ≈ 6 ms per 128 × 64 frame unculled). The target is a red beacon (``TARGET_HALF_EXTENTS``) on a pole.
- Camera: TinyRenderer (CPU), shadows off. Pixels without geometry are painted as the ground plane
  (rays pointing down: ground colour with a world-fixed 1 m speckle) or sky.
- Own physics client per backend (``BulletClient``), so several envs can live in one process.
"""

from __future__ import annotations

import math

import numpy as np
import pybullet as p
from pybullet_utils.bullet_client import BulletClient

from lnn_control.envs.common import check_render_size
from lnn_control.envs.drone_forest.backend import (
    CHASE_FOV_DEG,
    TARGET_HALF_EXTENTS,
    DroneState,
    VisualVariation,
    chase_camera,
)
from lnn_control.envs.drone_forest.forest import Forest
from lnn_control.envs.drone_forest.quad import QuadParams
from lnn_control.envs.pybullet_client import PyBulletClient

_GROUND_CELL = 1.0  # m; ground speckle cell
_GROUND_PATTERN = 64  # cells before the pattern repeats (power of two)
_SIDES = 6  # trunk prism / canopy cone sides
_TILE = 10.0  # m; side of a visual forest tile


def trunk_mesh(forest: Forest, trees: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Trunks (all, or the indices ``trees``) as open hexagonal prisms: vertices [V, 3] (m, world),
    triangle indices [T*3]."""
    trees = np.arange(forest.num_trees) if trees is None else np.asarray(trees, int)
    angles = np.linspace(0.0, 2 * np.pi, _SIDES, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    vertices, indices = [], []
    for k, ((x, y), r, h) in enumerate(zip(forest.trunk_xy[trees], forest.trunk_radius[trees], forest.trunk_height[trees])):
        base = k * 2 * _SIDES
        xy = np.array([x, y]) + r * ring
        vertices.append(np.concatenate([np.c_[xy, np.zeros(_SIDES)], np.c_[xy, np.full(_SIDES, h)]]))
        for i in range(_SIDES):
            j = (i + 1) % _SIDES
            indices += [base + i, base + j, base + _SIDES + j, base + i, base + _SIDES + j, base + _SIDES + i]
    if not vertices:
        return np.zeros((0, 3)), np.zeros(0, int)
    return np.concatenate(vertices), np.asarray(indices, int)


def canopy_mesh(forest: Forest, trees: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canopies (all, or the indices ``trees``) as closed cones (base at ``canopy_base``, apex at
    trunk top + 1 m)."""
    trees = np.arange(forest.num_trees) if trees is None else np.asarray(trees, int)
    angles = np.linspace(0.0, 2 * np.pi, _SIDES, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    vertices, indices = [], []
    stride = _SIDES + 2
    for k, ((x, y), r, b, h) in enumerate(
        zip(forest.trunk_xy[trees], forest.canopy_radius[trees], forest.canopy_base[trees], forest.trunk_height[trees])
    ):
        base = k * stride
        xy = np.array([x, y]) + r * ring
        vertices.append(np.concatenate([np.c_[xy, np.full(_SIDES, b)], [[x, y, h + 1.0], [x, y, b]]]))
        apex, centre = base + _SIDES, base + _SIDES + 1
        for i in range(_SIDES):
            j = (i + 1) % _SIDES
            indices += [base + i, base + j, apex, base + j, base + i, centre]
    if not vertices:
        return np.zeros((0, 3)), np.zeros(0, int)
    return np.concatenate(vertices), np.asarray(indices, int)


def _tinted(color: tuple[float, float, float], tint: tuple[float, float, float]) -> list[float]:
    return [float(np.clip(c * t, 0.0, 1.0)) for c, t in zip(color, tint)] + [1.0]


class PyBulletDroneBackend:
    """:class:`~.backend.DroneBackend` on PyBullet (see the module docstring)."""

    def __init__(self) -> None:
        self._connection = PyBulletClient()
        self._build_args: tuple[Forest, QuadParams, VisualVariation, float] | None = None
        self._quad_id = -1
        self._forest_ids: tuple[int, ...] = ()
        self._time = 0.0
        self._thrusts = np.zeros(4)
        self._wind = np.zeros(3)
        self._collided = False
        self._state: DroneState | None = None

    # --- world ------------------------------------------------------------------------------------
    def _connect(self) -> BulletClient:
        return self._connection.connect()

    def build(self, forest: Forest, quad: QuadParams, visuals: VisualVariation, physics_dt: float) -> None:
        if not 0 < physics_dt <= 0.01:
            raise ValueError(f"physics_dt must be in (0, 0.01] s (≥ 100 Hz for a quadrotor), got {physics_dt}")
        self._build_args = (forest, quad, visuals, physics_dt)
        self.forest, self.quad, self.visuals, self.physics_dt = forest, quad, visuals, physics_dt
        client = self._connect()
        client.resetSimulation()
        if self._connection.gui:
            client.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0)
        client.setGravity(0, 0, -9.81)
        client.setPhysicsEngineParameter(
            fixedTimeStep=physics_dt, numSubSteps=1, numSolverIterations=10, deterministicOverlappingPairs=1
        )
        self._torque_rows = quad.mixer()[1:]  # body torque [3] = rows @ thrusts[4]
        self._pattern = np.random.default_rng(forest.seed).uniform(-1.0, 1.0, _GROUND_PATTERN**2).astype(np.float32)
        self._forest_ids = self._build_world(client, forest, visuals)
        self._quad_id = self._build_quad(client, quad, visuals)
        if self._connection.gui:
            client.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1)
        self.reset(DroneState(0.0, forest.start_position, np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3), np.zeros(3)))

    def _build_world(self, client: BulletClient, forest: Forest, visuals: VisualVariation) -> tuple[int, ...]:
        # a collision-only body would be drawn with PyBullet's default checker: give the plane a
        # hidden speck as its visual; the ground is painted into empty pixels instead
        hidden = client.createVisualShape(p.GEOM_BOX, halfExtents=[1e-3] * 3, visualFramePosition=[0, 0, -50])
        ids = [client.createMultiBody(0, client.createCollisionShape(p.GEOM_PLANE), hidden)]
        vertices, indices = trunk_mesh(forest)
        if len(indices):  # collision: every trunk in one static concave mesh, drawn by the tiles below
            collision = client.createCollisionShape(
                p.GEOM_MESH, vertices=vertices.tolist(), indices=indices.tolist(), flags=p.GEOM_FORCE_CONCAVE_TRIMESH
            )
            ids.append(client.createMultiBody(0, collision, hidden))
        # visuals: trunks and canopies of each TILE × TILE m square as one body each (≤ 2 × 25 bodies),
        # so a frame hides the tiles outside the camera's view (TinyRenderer cost ∝ triangles)
        tile = np.floor((forest.trunk_xy + forest.half_size) / _TILE).astype(int)
        trunk_rgba = _tinted(forest.trunk_color, visuals.trunk_tint)
        foliage_rgba = _tinted(forest.foliage_color, visuals.foliage_tint)
        self._tiles: list[tuple[np.ndarray, tuple[int, int], list[float], list[float]]] = []
        for key in sorted({tuple(t) for t in tile.tolist()}):
            trees = np.flatnonzero(np.all(tile == key, axis=1))
            bodies = []
            for mesh, rgba in ((trunk_mesh(forest, trees), trunk_rgba), (canopy_mesh(forest, trees), foliage_rgba)):
                visual = client.createVisualShape(
                    p.GEOM_MESH, vertices=mesh[0].tolist(), indices=mesh[1].tolist(), rgbaColor=rgba
                )
                bodies.append(client.createMultiBody(0, -1, visual))
            centre = (np.asarray(key) + 0.5) * _TILE - forest.half_size
            self._tiles.append((centre, (bodies[0], bodies[1]), trunk_rgba, foliage_rgba))
        self._tile_visible = [True] * len(self._tiles)
        tx, ty, tz = forest.target_position
        cube = client.createVisualShape(p.GEOM_BOX, halfExtents=list(TARGET_HALF_EXTENTS), rgbaColor=[*visuals.target_color, 1])
        pole_length = max(tz - TARGET_HALF_EXTENTS[2], 0.01)  # from the ground to the beacon's bottom
        pole = client.createVisualShape(
            p.GEOM_BOX, halfExtents=[0.04, 0.04, pole_length / 2], rgbaColor=[0.9, 0.9, 0.9, 1],
            visualFramePosition=[0, 0, -TARGET_HALF_EXTENTS[2] - pole_length / 2],
        )
        ids.append(client.createMultiBody(0, -1, cube, [tx, ty, tz], linkMasses=[0], linkCollisionShapeIndices=[-1],
                                          linkVisualShapeIndices=[pole], linkPositions=[[0, 0, 0]],
                                          linkOrientations=[[0, 0, 0, 1]], linkInertialFramePositions=[[0, 0, 0]],
                                          linkInertialFrameOrientations=[[0, 0, 0, 1]], linkParentIndices=[0],
                                          linkJointTypes=[p.JOINT_FIXED], linkJointAxis=[[0, 0, 1]]))
        return tuple(ids)

    def _build_quad(self, client: BulletClient, quad: QuadParams, visuals: VisualVariation) -> int:
        half = list(quad.body_half_extents)
        collision = client.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        visual = client.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[*visuals.drone_color, 1])
        body = client.createMultiBody(quad.mass, collision, visual, list(self.forest.start_position))
        client.changeDynamics(
            body, -1, localInertiaDiagonal=list(quad.inertia), linearDamping=0.0, angularDamping=0.0,
            lateralFriction=0.5,
        )
        return body

    def reset(self, state: DroneState) -> None:
        client = self._require()
        w, x, y, z = state.quaternion
        client.resetBasePositionAndOrientation(self._quad_id, state.position.tolist(), [x, y, z, w])
        omega_world = state.rotation @ state.angular_velocity
        client.resetBaseVelocity(self._quad_id, state.velocity.tolist(), omega_world.tolist())
        self._time = float(state.time)
        self._thrusts = np.zeros(4)
        self._collided = False
        self._state = None

    def set_rotor_thrusts(self, thrusts: np.ndarray) -> None:
        values = np.asarray(thrusts, float)
        if values.shape != (4,):
            raise ValueError(f"rotor thrusts must have shape (4,), got {values.shape}")
        self._thrusts = self.quad.clip_thrusts(values)

    def advance(self, duration: float) -> None:
        client = self._require()
        if not duration > 0:
            raise ValueError(f"advance duration must be > 0 s, got {duration}")
        steps = max(1, int(round(duration / self.physics_dt)))
        body, cid = self._quad_id, client._client  # direct module calls skip BulletClient's per-call wrapper
        drag = np.asarray(self.quad.linear_drag)
        thrusts = self._thrusts.tolist()
        total_thrust = float(sum(thrusts))
        torque_body = self._torque_rows @ self._thrusts
        for _ in range(steps):
            # the four rotor forces and reaction torques as their equivalent wrench at the centre of
            # mass (identical rigid-body motion, 3 calls instead of 6) + drag against the wind
            position, orientation = p.getBasePositionAndOrientation(body, physicsClientId=cid)
            rotation = np.array(p.getMatrixFromQuaternion(orientation)).reshape(3, 3)
            velocity = np.array(p.getBaseVelocity(body, physicsClientId=cid)[0])
            force = rotation[:, 2] * total_thrust + rotation @ (-drag * ((velocity - self._wind) @ rotation))
            p.applyExternalForce(body, -1, force.tolist(), position, p.WORLD_FRAME, physicsClientId=cid)
            p.applyExternalTorque(body, -1, (rotation @ torque_body).tolist(), p.WORLD_FRAME, physicsClientId=cid)
            p.stepSimulation(physicsClientId=cid)
            if not self._collided and p.getContactPoints(bodyA=body, physicsClientId=cid):
                self._collided = True
        self._time += steps * self.physics_dt
        self._state = None

    # --- state ------------------------------------------------------------------------------------
    def drone_state(self) -> DroneState:
        client = self._require()
        if self._state is None:
            position, (x, y, z, w) = client.getBasePositionAndOrientation(self._quad_id)
            linear, angular = client.getBaseVelocity(self._quad_id)
            rotation = np.array(client.getMatrixFromQuaternion((x, y, z, w))).reshape(3, 3)
            self._state = DroneState(
                self._time, np.asarray(position), np.array([w, x, y, z]), np.asarray(linear), np.asarray(angular) @ rotation
            )
        return self._state

    def collided(self) -> bool:
        return self._collided

    def set_wind(self, velocity: np.ndarray) -> None:
        wind = np.asarray(velocity, float)
        if wind.shape != (3,) or not np.all(np.isfinite(wind)):
            raise ValueError(f"wind must be a finite (3,) world-frame velocity in m/s, got {velocity!r}")
        self._wind = wind.copy()

    # --- rendering --------------------------------------------------------------------------------
    def _render(self, width: int, height: int, eye: np.ndarray, target: np.ndarray, up: np.ndarray,
                fov_deg: float, near: float, far: float) -> np.ndarray:
        client = self._require()
        v = self.visuals
        self._cull_tiles(client, eye, target, fov_deg, width / height, far)
        view = client.computeViewMatrix(eye.tolist(), target.tolist(), up.tolist())
        projection = client.computeProjectionMatrixFOV(fov_deg, width / height, near, far)
        _, _, rgba, depth, _ = client.getCameraImage(
            width, height, viewMatrix=view, projectionMatrix=projection, renderer=p.ER_TINY_RENDERER,
            shadow=0, lightDirection=list(v.light_direction), lightAmbientCoeff=v.ambient,
            lightDiffuseCoeff=v.diffuse, lightSpecularCoeff=0.05, flags=p.ER_NO_SEGMENTATION_MASK,
        )
        image = np.asarray(rgba, np.uint8).reshape(height, width, 4)[:, :, :3].copy()
        empty = np.asarray(depth).reshape(height, width) >= 0.99999
        if np.any(empty):
            self._paint_background(image, empty, eye, target, up, fov_deg)
        return image

    def _cull_tiles(self, client: BulletClient, eye: np.ndarray, target: np.ndarray, fov_deg: float,
                    aspect: float, far: float) -> None:
        """Hide forest tiles that are beyond ``far`` or outside the horizontal field of view (with a
        margin for roll/pitch); only tiles whose visibility changes are touched."""
        forward = np.asarray(target, float)[:2] - np.asarray(eye, float)[:2]
        norm = float(np.linalg.norm(forward))
        half_h = math.atan(math.tan(math.radians(fov_deg) / 2) * aspect) + 0.25
        reach = _TILE / math.sqrt(2) + float(self.forest.config.canopy_radius_range[1])
        for i, (centre, bodies, trunk_rgba, foliage_rgba) in enumerate(self._tiles):
            d = centre - np.asarray(eye, float)[:2]
            dist = float(np.linalg.norm(d))
            if dist <= reach or norm < 1e-3 or half_h >= math.pi:
                visible = True
            elif dist - reach > far:
                visible = False
            else:
                angle = math.acos(float(np.clip(d @ forward / (dist * norm), -1.0, 1.0)))
                visible = angle <= half_h + math.asin(min(1.0, reach / dist))
            if visible != self._tile_visible[i]:
                self._tile_visible[i] = visible
                alpha = 1.0 if visible else 0.0
                client.changeVisualShape(bodies[0], -1, rgbaColor=[*trunk_rgba[:3], alpha])
                client.changeVisualShape(bodies[1], -1, rgbaColor=[*foliage_rgba[:3], alpha])

    def _paint_background(self, image: np.ndarray, empty: np.ndarray, eye: np.ndarray, target: np.ndarray,
                          up: np.ndarray, fov_deg: float) -> None:
        """Fill pixels without geometry with the ground plane (speckled) or the sky (in place)."""
        height, width = empty.shape
        v = self.visuals
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        cam_up = np.cross(right, forward)
        tan_v = math.tan(math.radians(fov_deg) / 2)
        sv = (1.0 - 2.0 * (np.arange(height) + 0.5) / height) * tan_v
        su = (2.0 * (np.arange(width) + 0.5) / width - 1.0) * tan_v * width / height
        ray_z = forward[2] + sv[:, None] * cam_up[2] + su[None, :] * right[2]
        ground = ray_z < -1e-6
        image[empty & ~ground] = np.round(np.asarray(v.sky_color) * 255).astype(np.uint8)
        rows, cols = np.nonzero(empty & ground)
        if len(rows) == 0:
            return
        light = np.asarray(v.light_direction, float)
        shade = v.ambient + v.diffuse * max(0.0, light[2] / np.linalg.norm(light))
        colour = np.clip(np.asarray(_tinted(self.forest.ground_color, v.ground_tint)[:3]) * shade, 0, 1) * 255
        # ground hit point of each remaining pixel's ray, then a world-fixed cell pattern
        row_v, col_u = sv[rows], su[cols]
        t = -eye[2] / np.minimum(ray_z[rows, cols], -1e-6)
        cx = np.floor((eye[0] + t * (forward[0] + row_v * cam_up[0] + col_u * right[0])) / _GROUND_CELL)
        cy = np.floor((eye[1] + t * (forward[1] + row_v * cam_up[1] + col_u * right[1])) / _GROUND_CELL)
        index = (cx.astype(np.int64) & (_GROUND_PATTERN - 1)) * _GROUND_PATTERN + (cy.astype(np.int64) & (_GROUND_PATTERN - 1))
        factor = 1.0 + np.float32(0.15) * self._pattern[index]
        image[rows, cols] = np.clip(factor[:, None] * colour[None, :].astype(np.float32), 0, 255).astype(np.uint8)

    def render_camera(self) -> np.ndarray:
        quad = self.quad
        state = self.drone_state()
        eye, target, up = quad.camera_pose(state.position, state.rotation, self.visuals.camera_pitch_offset)
        return self._render(quad.image_width, quad.image_height, eye, target, up, quad.camera_vertical_fov_deg,
                            quad.camera_near, quad.camera_far)

    def render_chase(self, width: int, height: int) -> np.ndarray:
        check_render_size(width, height)
        eye, target, up = chase_camera(self.drone_state())
        return self._render(width, height, eye, target, up, CHASE_FOV_DEG, 0.05, 60.0)

    # --- viewer / lifetime -------------------------------------------------------------------------
    def open_viewer(self) -> None:
        state = self.drone_state() if self._connection.client is not None and self._quad_id >= 0 else None
        if self._connection.request_gui() and self._build_args is not None:
            self.build(*self._build_args)  # the world moves to the new GUI connection
            if state is not None:
                self.reset(state)

    def sync_viewer(self) -> None:
        if self._connection.gui and self._connection.client is not None and self._quad_id >= 0:
            state = self.drone_state()
            self._connection.client.resetDebugVisualizerCamera(3.0, math.degrees(state.yaw) - 90, -20, state.position.tolist())

    def close(self) -> None:
        self._connection.disconnect()
        self._quad_id = -1

    def _require(self) -> BulletClient:
        if self._connection.client is None or self._quad_id < 0:
            raise RuntimeError("call build() before using the PyBullet drone backend")
        return self._connection.client
