"""PyBullet lane-keeping backend: the car built from :class:`~.car.CarParams`, the road as ONE body.

- Car: a multibody made here from ``CarParams`` (no URDF file): chassis box; two front steering
  hinges (revolute about z, position servo with ``steering_rate`` / ``steering_stiffness``, Ackermann
  geometry) carrying free-rolling wheels; two driven rear wheels. Wheels collide as spheres of
  ``wheel_radius`` (smooth rolling), are drawn as cylinders. Tyre friction = ``tyre_friction`` ×
  friction scale.
- Cruise control: the driven wheels' velocity motors hold the target speed at the wheel surface
  (per-wheel Ackermann speeds: an electronic differential), torque limited to ``max_drive_torque``.
- World: one static multibody (mass 0) = infinite collision plane + asphalt, white edge lines and
  dashed centre line as mesh links, all from the shared :class:`~.road.Road` meshes.
- Camera: TinyRenderer (CPU, no GL), shadows off. TinyRenderer's cost is pixel fill (≈ 2 ms per
  full-screen layer at 128×64), so the grass is not a mesh under the road: pixels where no geometry
  was hit are painted as the ground plane (rays pointing down: grass, shaded like a +z surface,
  with a world-fixed speckle pattern of ``texture_strength``) or sky (rays pointing up).
- Own physics client per backend (``BulletClient``), so several envs can live in one process.
- Known limitation: PyBullet never frees mesh visual shapes, neither on ``resetSimulation`` nor on
  disconnect (bullet3 issue #2898), and :meth:`PyBulletLaneBackend.build` recreates the road meshes
  every episode: the process grows ≈ 0.9 MB per episode on the default 50 m road (measured, RSS).
  Long collection or evaluation runs (thousands of episodes) should be split across processes.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pybullet as p
from pybullet_utils.bullet_client import BulletClient

from lnn_control.envs.common import check_render_size, rgb, wrap_angle
from lnn_control.envs.lane_keeping.backend import (
    CHASE_FOV_DEG,
    Pose2D,
    VehicleState,
    VisualVariation,
    chase_camera,
)
from lnn_control.envs.lane_keeping.car import WHEEL_NAMES, CarParams
from lnn_control.envs.lane_keeping.road import Mesh, Road
from lnn_control.envs.pybullet_client import PyBulletClient

_GRASS_CELL = 0.5  # m; size of one cell of the grass speckle pattern
_GRASS_PATTERN = 64  # cells before the pattern repeats (a power of two)
_ASPHALT_Z, _LINE_Z = 0.002, 0.004  # m above the ground plane: draw order without z-fighting


def _wheel_mesh(radius: float, width: float, sides: int = 12) -> tuple[list, list]:
    """A low-poly closed cylinder along y (PyBullet's own cylinder costs ~0.5 ms per frame in TinyRenderer)."""
    angles = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([radius * np.cos(angles), np.zeros(sides), radius * np.sin(angles)], axis=1)
    left, right = ring + [0.0, width / 2, 0.0], ring - [0.0, width / 2, 0.0]
    vertices = np.concatenate([left, right, [[0.0, width / 2, 0.0], [0.0, -width / 2, 0.0]]])
    cl, cr = 2 * sides, 2 * sides + 1
    triangles = []
    for i in range(sides):
        j = (i + 1) % sides
        triangles += [i, j, sides + j, i, sides + j, sides + i, cl, j, i, cr, sides + i, sides + j]
    return vertices.tolist(), triangles


class PyBulletLaneBackend:
    """:class:`~.backend.LaneBackend` on PyBullet (DIRECT by default, GUI after :meth:`open_viewer`)."""

    def __init__(self) -> None:
        self._connection = PyBulletClient()
        self._build_args: tuple[Road, CarParams, VisualVariation, float] | None = None
        self._friction_scale = 1.0
        self._texture_dir: tempfile.TemporaryDirectory | None = None
        self._car_id = -1
        self._world_id = -1
        self._joints: dict[str, int] = {}
        self._time = 0.0
        self._state: VehicleState | None = None

    # --- world ------------------------------------------------------------------------------------
    def _connect(self) -> BulletClient:
        return self._connection.connect()

    def build(self, road: Road, car: CarParams, visuals: VisualVariation, physics_dt: float) -> None:
        if not 0 < physics_dt <= 0.02:
            raise ValueError(f"physics_dt must be in (0, 0.02] s (≥ 50 Hz), got {physics_dt}")
        self._build_args = (road, car, visuals, physics_dt)
        self.road, self.car, self.visuals, self.physics_dt = road, car, visuals, physics_dt
        client = self._connect()
        client.resetSimulation()
        if self._connection.gui:
            client.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0)
        client.setGravity(0, 0, -9.81)
        client.setPhysicsEngineParameter(
            fixedTimeStep=physics_dt, numSubSteps=1, numSolverIterations=10, deterministicOverlappingPairs=1
        )
        self._grass_pattern_flat = np.random.default_rng(visuals.texture_seed).uniform(
            -1.0, 1.0, _GRASS_PATTERN * _GRASS_PATTERN
        ).astype(np.float32)
        self._world_id = self._build_world(client, road, visuals)
        self._car_id = self._build_car(client, car, visuals)
        self._apply_friction()
        if self._connection.gui:
            client.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1)
        self.reset(Pose2D(float(road.centerline[0, 0]), float(road.centerline[0, 1]), float(road.heading[0])), 0.0)

    @staticmethod
    def _mesh_shape(client: BulletClient, mesh: Mesh, z: float, color: tuple[float, float, float]) -> int:
        vertices = mesh.vertices.copy()
        vertices[:, 2] = z
        return client.createVisualShape(
            p.GEOM_MESH,
            vertices=vertices.tolist(),
            indices=mesh.triangles.reshape(-1).tolist(),
            uvs=mesh.uv.tolist(),
            normals=[[0.0, 0.0, 1.0]] * len(vertices),
            rgbaColor=[*color, 1.0],
            specularColor=[0.05, 0.05, 0.05],
        )

    def _build_world(self, client: BulletClient, road: Road, visuals: VisualVariation) -> int:
        plane = client.createCollisionShape(p.GEOM_PLANE)
        # a body without a visual shape gets its collision shape drawn (a checkered plane): give the
        # base a tiny visual far below the ground instead
        hidden = client.createVisualShape(p.GEOM_BOX, halfExtents=[1e-3] * 3, visualFramePosition=[0, 0, -50])
        layers = [
            self._asphalt_shape(client, road, visuals),
            self._mesh_shape(client, road.edge_lines(), _LINE_Z, visuals.line_color),
            self._mesh_shape(client, road.centre_dashes(), _LINE_Z, visuals.centre_line_color),
        ]
        n = len(layers)
        body = client.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=plane, baseVisualShapeIndex=hidden,
            linkMasses=[0.0] * n, linkCollisionShapeIndices=[-1] * n, linkVisualShapeIndices=layers,
            linkPositions=[[0, 0, 0]] * n, linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0]] * n, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=[0] * n, linkJointTypes=[p.JOINT_FIXED] * n, linkJointAxis=[[0, 0, 1]] * n,
        )
        client.changeDynamics(body, -1, lateralFriction=1.0, restitution=0.0)
        if visuals.texture_strength > 0:
            client.changeVisualShape(body, 0, textureUniqueId=self._asphalt_texture(client, road, visuals))
        return body

    def _asphalt_shape(self, client: BulletClient, road: Road, visuals: VisualVariation) -> int:
        mesh = road.asphalt()
        half = road.config.half_width
        # texture coordinates normalised to [0, 1]: u along the whole road, v across it
        uv = np.stack([mesh.uv[:, 0] / road.length, (mesh.uv[:, 1] + half) / (2 * half)], axis=1)
        colour = visuals.asphalt_color
        if visuals.texture_strength > 0:
            # the texture multiplies the colour and averages 1 − strength: compensate
            colour = rgb(min(1.0, c / (1.0 - visuals.texture_strength)) for c in colour)
        return self._mesh_shape(client, Mesh(mesh.vertices, mesh.triangles, uv), _ASPHALT_Z, colour)

    def _asphalt_texture(self, client: BulletClient, road: Road, visuals: VisualVariation) -> int:
        """A procedural grey asphalt texture (fine grain + blotches, ~2.5 cm texels along the road)."""
        import cv2

        rng = np.random.default_rng(visuals.texture_seed)
        along = int(min(4096, max(64, np.ceil(road.length / 0.025))))
        across = 32
        grain = rng.uniform(-1.0, 1.0, (across, along))
        blotches = cv2.resize(rng.uniform(-1.0, 1.0, (4, max(2, along // 32))), (along, across), interpolation=cv2.INTER_CUBIC)
        noise = np.clip(0.5 * grain + 0.7 * blotches, -1.0, 1.0)
        factor = np.clip(1.0 - visuals.texture_strength * (1.0 - noise), 0.0, 1.0)
        image = np.repeat(np.round(factor * 255).astype(np.uint8)[:, :, None], 3, axis=2)
        if self._texture_dir is None:
            self._texture_dir = tempfile.TemporaryDirectory(prefix="lnn_lane_textures_")
        path = os.path.join(self._texture_dir.name, f"asphalt_{visuals.texture_seed}.png")
        if not cv2.imwrite(path, image):
            raise RuntimeError(f"could not write the asphalt texture to {path}")
        try:
            return client.loadTexture(path)  # PyBullet copies the pixels: the file is not needed after this
        finally:
            os.remove(path)  # one texture per episode would otherwise pile up (~110 kB each) until close()

    def _build_car(self, client: BulletClient, car: CarParams, visuals: VisualVariation) -> int:
        self._base_height = car.chassis_clearance + car.chassis_height / 2  # base frame above the ground
        half = [car.chassis_length / 2, car.chassis_width / 2, car.chassis_height / 2]
        chassis_col = client.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        chassis_vis = client.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=[*visuals.car_color, 1])
        wheel_col = client.createCollisionShape(p.GEOM_SPHERE, radius=car.wheel_radius)
        vertices, triangles = _wheel_mesh(car.wheel_radius, car.wheel_width)
        wheel_vis = client.createVisualShape(
            p.GEOM_MESH, vertices=vertices, indices=triangles, rgbaColor=[0.08, 0.08, 0.08, 1]
        )
        hinge_col = client.createCollisionShape(p.GEOM_SPHERE, radius=0.01)
        masses: list[float] = []
        cols: list[int] = []
        viss: list[int] = []
        positions: list[list[float]] = []
        parents: list[int] = []
        types: list[int] = []
        axes: list[list[float]] = []
        names: list[str] = []
        for name in WHEEL_NAMES:
            centre = car.wheel_position(name) - np.array([0.0, 0.0, self._base_height])
            if name.startswith("front"):
                masses += [0.05, car.wheel_mass]
                cols += [hinge_col, wheel_col]
                viss += [-1, wheel_vis]
                positions += [centre.tolist(), [0.0, 0.0, 0.0]]
                parents += [0, len(names) + 1]
                types += [p.JOINT_REVOLUTE, p.JOINT_REVOLUTE]
                axes += [[0, 0, 1], [0, 1, 0]]
                names += [f"{name}_steer", name]
            else:
                masses.append(car.wheel_mass)
                cols.append(wheel_col)
                viss.append(wheel_vis)
                positions.append(centre.tolist())
                parents.append(0)
                types.append(p.JOINT_REVOLUTE)
                axes.append([0, 1, 0])
                names.append(name)
        n = len(names)
        body = client.createMultiBody(
            baseMass=car.chassis_mass, baseCollisionShapeIndex=chassis_col, baseVisualShapeIndex=chassis_vis,
            basePosition=[0, 0, self._base_height],
            linkMasses=masses, linkCollisionShapeIndices=cols, linkVisualShapeIndices=viss,
            linkPositions=positions, linkOrientations=[[0, 0, 0, 1]] * n,
            linkInertialFramePositions=[[0, 0, 0]] * n, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
            linkParentIndices=parents, linkJointTypes=types, linkJointAxis=axes,
        )
        self._joints = {name: index for index, name in enumerate(names)}
        self._wheel_links = [self._joints[name] for name in WHEEL_NAMES]
        for name in WHEEL_NAMES:
            if name.startswith("front"):
                # the steering hinge's helper sphere never touches anything
                client.setCollisionFilterGroupMask(body, self._joints[f"{name}_steer"], 0, 0)
        # chassis and wheels never collide with each other
        for link in [-1, *range(n)]:
            for other in range(n):
                if other != link:
                    client.setCollisionFilterPair(body, body, link, other, 0)
        for name in WHEEL_NAMES:
            if name not in car.driven_wheels:
                client.setJointMotorControl2(body, self._joints[name], p.VELOCITY_CONTROL, targetVelocity=0, force=0)
        return body

    def _apply_friction(self) -> None:
        if self._connection.client is None or self._car_id < 0:
            return
        friction = self.car.tyre_friction * self._friction_scale
        for link in self._wheel_links:
            self._connection.client.changeDynamics(
                self._car_id, link, lateralFriction=friction, rollingFriction=self.car.rolling_friction,
                spinningFriction=0.0, restitution=0.0,
            )

    # --- control ----------------------------------------------------------------------------------
    def reset(self, pose: Pose2D, speed: float) -> None:
        client = self._require()
        car = self.car
        orientation = client.getQuaternionFromEuler([0.0, 0.0, pose.yaw])
        client.resetBasePositionAndOrientation(self._car_id, [pose.x, pose.y, self._base_height + 0.001], orientation)
        velocity = [speed * math.cos(pose.yaw), speed * math.sin(pose.yaw), 0.0]
        client.resetBaseVelocity(self._car_id, velocity, [0.0, 0.0, 0.0])
        for name in WHEEL_NAMES:
            client.resetJointState(self._car_id, self._joints[name], 0.0, speed / car.wheel_radius)
            if name.startswith("front"):
                client.resetJointState(self._car_id, self._joints[f"{name}_steer"], 0.0, 0.0)
        self._time = 0.0
        self._state = None
        self.set_command(0.0, speed)

    def set_command(self, steering: float, target_speed: float) -> None:
        client = self._require()
        car = self.car
        if not (math.isfinite(steering) and math.isfinite(target_speed)):
            raise ValueError(f"steering ({steering}) and target_speed ({target_speed}) must be finite")
        delta = float(np.clip(steering, -car.max_steering, car.max_steering))
        speed = float(np.clip(target_speed, 0.0, car.max_speed))
        for name in ("front_left", "front_right"):
            client.setJointMotorControl2(
                self._car_id, self._joints[f"{name}_steer"], p.POSITION_CONTROL,
                targetPosition=car.ackermann_angle(name, delta), force=car.steering_stiffness,
                maxVelocity=car.steering_rate,
            )
        for name in car.driven_wheels:
            wheel_speed = car.wheel_ground_speed(name, speed, delta)
            client.setJointMotorControl2(
                self._car_id, self._joints[name], p.VELOCITY_CONTROL,
                targetVelocity=wheel_speed / car.wheel_radius, force=car.max_drive_torque,
            )

    def advance(self, duration: float) -> None:
        client = self._require()
        if not duration > 0:
            raise ValueError(f"advance duration must be > 0 s, got {duration}")
        steps = max(1, int(round(duration / self.physics_dt)))
        for _ in range(steps):
            client.stepSimulation()
        self._time += steps * self.physics_dt
        self._state = None

    # --- state ------------------------------------------------------------------------------------
    def vehicle_state(self) -> VehicleState:
        client = self._require()
        if self._state is not None:  # cached until the next advance/reset (read 3× per env step)
            return self._state
        position, orientation = client.getBasePositionAndOrientation(self._car_id)
        linear, angular = client.getBaseVelocity(self._car_id)
        roll, pitch, yaw = client.getEulerFromQuaternion(orientation)
        rotation = np.array(client.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        reference = np.array(position) - rotation[:, 2] * self._base_height
        forward, left = rotation[:, 0], rotation[:, 1]
        velocity = np.array(linear)
        steer = client.getJointStates(self._car_id, [self._joints["front_left_steer"], self._joints["front_right_steer"]])
        contacts = {c[3] for c in client.getContactPoints(bodyA=self._car_id, bodyB=self._world_id)}
        self._state = VehicleState(
            time=self._time,
            x=float(reference[0]),
            y=float(reference[1]),
            yaw=wrap_angle(yaw),
            roll=float(roll),
            pitch=float(pitch),
            speed=float(velocity @ forward),
            lateral_speed=float(velocity @ left),
            yaw_rate=float(angular[2]),
            steering_angle=float(0.5 * (steer[0][0] + steer[1][0])),
            wheel_contacts=tuple(link in contacts for link in self._wheel_links),
        )
        return self._state

    # --- rendering --------------------------------------------------------------------------------
    def _render(
        self, width: int, height: int, eye: np.ndarray, target: np.ndarray, up: np.ndarray,
        fov_deg: float, near: float, far: float,
    ) -> np.ndarray:
        client = self._require()
        v = self.visuals
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

    def _paint_background(
        self, image: np.ndarray, empty: np.ndarray, eye: np.ndarray, target: np.ndarray, up: np.ndarray,
        fov_deg: float,
    ) -> None:
        """Fill pixels without geometry with the ground plane (grass) or the sky (in place)."""
        height, width = empty.shape
        v = self.visuals
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        cam_up = np.cross(right, forward)
        tan_v = math.tan(math.radians(fov_deg) / 2)
        sv = (1.0 - 2.0 * (np.arange(height) + 0.5) / height) * tan_v
        su = (2.0 * (np.arange(width) + 0.5) / width - 1.0) * tan_v * width / height
        # ray z per pixel (rows × cols) without building every 3-vector
        ray_z = forward[2] + sv[:, None] * cam_up[2] + su[None, :] * right[2]
        ground = ray_z < -1e-6
        light = np.asarray(v.light_direction, float)
        shade = v.ambient + v.diffuse * max(0.0, light[2] / np.linalg.norm(light))
        grass = np.clip(np.asarray(v.grass_color) * shade, 0.0, 1.0).astype(np.float32) * 255
        image[empty & ~ground] = np.round(np.asarray(v.sky_color) * 255).astype(np.uint8)
        grass_pixels = empty & ground
        if not np.any(grass_pixels):
            return
        if v.texture_strength <= 0:
            image[grass_pixels] = np.round(grass).astype(np.uint8)
            return
        # ground hit point of each pixel's ray, then a world-fixed cell pattern (float32 for speed)
        t = (-eye[2] / np.minimum(ray_z, -1e-6)).astype(np.float32)
        cells = []
        for axis in (0, 1):
            direction = (forward[axis] + sv[:, None] * cam_up[axis]).astype(np.float32) + (
                su[None, :] * right[axis]
            ).astype(np.float32)
            coordinate = (eye[axis] + t * direction) * (1.0 / _GRASS_CELL)
            cells.append(np.floor(coordinate).astype(np.int32) & (_GRASS_PATTERN - 1))
        index = (cells[0] * _GRASS_PATTERN + cells[1])[grass_pixels]
        factor = 1.0 + np.float32(v.texture_strength) * np.take(self._grass_pattern_flat, index)
        image[grass_pixels] = np.clip(factor[:, None] * grass[None, :], 0, 255).astype(np.uint8)

    def render_camera(self) -> np.ndarray:
        car, v = self.car, self.visuals
        state = self.vehicle_state()
        eye, target, up = car.camera_pose(
            state.x, state.y, state.yaw, v.camera_pitch_offset, v.camera_height_offset, v.camera_yaw_offset
        )
        return self._render(
            car.image_width, car.image_height, eye, target, up, car.camera_vertical_fov_deg,
            car.camera_near, car.camera_far,
        )

    def render_chase(self, width: int, height: int) -> np.ndarray:
        check_render_size(width, height)
        eye, target = chase_camera(self.vehicle_state())
        return self._render(width, height, eye, target, np.array([0.0, 0.0, 1.0]), CHASE_FOV_DEG, 0.05, 30.0)

    def set_friction_scale(self, scale: float) -> None:
        if not (math.isfinite(scale) and 0 < scale <= 1):
            raise ValueError(f"friction scale must be in (0, 1] (1 = dry road), got {scale}")
        self._friction_scale = float(scale)
        self._apply_friction()

    # --- viewer / lifetime -------------------------------------------------------------------------
    def open_viewer(self) -> None:
        state = self.vehicle_state() if self._connection.client is not None and self._car_id >= 0 else None
        if self._connection.request_gui() and self._build_args is not None:
            self.build(*self._build_args)  # the world moves to the new GUI connection
            if state is not None:
                self.reset(Pose2D(state.x, state.y, state.yaw), state.speed)

    def sync_viewer(self) -> None:
        if self._connection.gui and self._connection.client is not None and self._car_id >= 0:
            state = self.vehicle_state()
            self._connection.client.resetDebugVisualizerCamera(1.5, math.degrees(state.yaw) - 90, -25, [state.x, state.y, 0.1])

    def close(self) -> None:
        if self._texture_dir is not None:
            self._texture_dir.cleanup()
            self._texture_dir = None
        self._connection.disconnect()
        self._car_id = self._world_id = -1

    def _require(self) -> BulletClient:
        if self._connection.client is None or self._car_id < 0:
            raise RuntimeError("PyBulletLaneBackend: call build(road, car, visuals, physics_dt) first")
        return self._connection.client
