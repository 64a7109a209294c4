"""MuJoCo lane-keeping backend: the car MJCF asset sized from :class:`~.car.CarParams`, the road as meshes.

- Car: ``assets/mujoco/lane_car.xml`` (read with ``importlib.resources``) gives structure, names,
  contact and actuator settings; :func:`build_model_spec` overwrites every dimension, mass, limit
  and the camera mount from ``CarParams`` (the one source shared with PyBullet). Wheels collide as
  spheres of ``wheel_radius`` with the ground plane; tyre friction = ``tyre_friction`` × friction
  scale (tyre geoms have contact priority, so the ground's friction never wins); rolling resistance
  is a constant torque ``rolling_friction · N · wheel_radius`` on each wheel (joint frictionloss).
- Steering: position servos on the two knuckle hinges with Ackermann angles; the set-point is
  ramped at ``steering_rate`` every physics step. Cruise control: velocity servos on the driven
  wheels hold the per-wheel Ackermann surface speed (electronic differential), torque-limited to
  ``max_drive_torque``.
- World: an infinite ground plane (collision) drawn as grass over the road's ground extent; the
  road's asphalt, white edge lines and dashed centre line are visual-only meshes taken from the
  shared :class:`~.road.Road` helpers, a few millimetres above the grass — exactly what PyBullet draws.
- Cameras: the onboard camera is fixed to the car body at the CarParams mount (+ the episode's
  mount jitter); the chase camera follows from behind and above. Rendering goes through
  :class:`OffscreenRenderer` (one GL context for the backend's life, a new MjrContext per model);
  shadows, reflections and fog are off; the sky is a flat-colour skybox (:mod:`lnn_control.envs.mujoco_render`).
"""

from __future__ import annotations

import importlib.resources
import math

import numpy as np

from lnn_control.envs.common import check_render_size, wrap_angle
from lnn_control.envs.gl import ensure_mujoco_gl
from lnn_control.envs.lane_keeping.backend import (
    CHASE_FOV_DEG,
    Pose2D,
    VehicleState,
    VisualVariation,
    chase_camera,
)
from lnn_control.envs.lane_keeping.car import WHEEL_NAMES, CarParams
from lnn_control.envs.lane_keeping.road import Mesh, Road
from lnn_control.envs.mujoco_render import (
    OFFSCREEN_SIZE,
    OffscreenRenderer,
    look_at_camera,
)
from lnn_control.envs.mujoco_viewer import PassiveViewer

ensure_mujoco_gl()
import mujoco  # noqa: E402  (the GL backend must be chosen before mujoco is imported)

CAR_ASSET = "mujoco/lane_car.xml"
"""Path of the car MJCF inside ``lnn_control.assets``."""

_ASPHALT_Z, _LINE_Z = 0.002, 0.004  # m above the grass: draw order without z-fighting
_TEXTURE_SIZE = 64  # px of the procedural speckle texture
_TEXTURE_CELL = 0.05  # m of road/grass covered by one speckle texel
_CONTACT_TOLERANCE = 0.003  # m between a tyre's lowest point and the ground still counted as contact


def _car_xml() -> str:
    return importlib.resources.files("lnn_control.assets").joinpath(CAR_ASSET).read_text(encoding="utf-8")


def camera_xyaxes(pitch: float, yaw: float) -> tuple[float, ...]:
    """MuJoCo camera ``xyaxes`` (right, up in the car frame) for a camera looking ``yaw`` rad left
    of the car's x axis and ``pitch`` rad below the horizon (MuJoCo cameras look along their −z)."""
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    up = np.cross(right, forward)
    return (*right.tolist(), *up.tolist())


def _size_car(spec: mujoco.MjSpec, car: CarParams, visuals: VisualVariation) -> None:
    """Overwrite the car asset's dimensions, masses, limits and camera mount from ``car``."""
    chassis = spec.geom("chassis")
    chassis.size = [car.chassis_length / 2, car.chassis_width / 2, car.chassis_height / 2]
    chassis.pos = [0.0, 0.0, car.chassis_clearance + car.chassis_height / 2]
    chassis.mass = car.chassis_mass
    chassis.rgba = [*visuals.car_color, 1.0]
    total_mass = car.chassis_mass + 4 * car.wheel_mass + 2 * spec.body("front_left_knuckle").mass
    # the inner front wheel turns further than the bicycle-model angle (Ackermann): allow for it
    inner_limit = car.ackermann_angle("front_left", car.max_steering) + 0.05
    rolling_torque = car.rolling_friction * total_mass * 9.81 / 4 * car.wheel_radius
    for name in WHEEL_NAMES:
        centre = car.wheel_position(name)
        holder = spec.body(f"{name}_knuckle") if name.startswith("front") else spec.body(name)
        holder.pos = centre.tolist()
        tyre, rim = spec.geom(f"{name}_tyre"), spec.geom(f"{name}_rim")
        tyre.size = [car.wheel_radius, 0.0, 0.0]
        tyre.mass = car.wheel_mass
        tyre.friction = [car.tyre_friction, tyre.friction[1], tyre.friction[2]]
        rim.size = [car.wheel_radius, car.wheel_width / 2, 0.0]
        spec.joint(name).frictionloss = rolling_torque
        if name.startswith("front"):
            steer = spec.joint(f"{name}_steer")
            steer.range = [-inner_limit, inner_limit]
            servo = spec.actuator(f"{name}_steer")
            servo.forcerange = [-car.steering_stiffness, car.steering_stiffness]
            servo.ctrlrange = [-inner_limit, inner_limit]
    for name in car.driven_wheels:
        motor = spec.actuator(name)
        if motor is None:  # all-wheel drive: the front wheels get motors like the rear ones
            motor = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            rear = spec.actuator("rear_left")
            motor.gainprm, motor.biasprm = rear.gainprm, rear.biasprm
            motor.gaintype, motor.biastype = rear.gaintype, rear.biastype
        motor.forcerange = [-car.max_drive_torque, car.max_drive_torque]
    camera = spec.camera("onboard")
    camera.pos = [car.camera_forward, 0.0, car.camera_height + visuals.camera_height_offset]
    camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    camera.alt.xyaxes = list(camera_xyaxes(car.camera_pitch + visuals.camera_pitch_offset, visuals.camera_yaw_offset))
    camera.fovy = car.camera_vertical_fov_deg


def _speckle_texture(spec: mujoco.MjSpec, name: str, seed: int, strength: float) -> None:
    """A grey noise texture whose texels are (1 + strength·n)/(1 + strength), n ~ U(-1, 1)."""
    noise = np.random.default_rng(seed).uniform(-1.0, 1.0, (_TEXTURE_SIZE, _TEXTURE_SIZE))
    grey = np.round((1.0 + strength * noise) / (1.0 + strength) * 255).astype(np.uint8)
    texture = spec.add_texture(
        name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=_TEXTURE_SIZE, height=_TEXTURE_SIZE, nchannel=3
    )
    texture.data = np.repeat(grey[:, :, None], 3, axis=2).tobytes()


def _material(spec: mujoco.MjSpec, name: str, color: tuple[float, float, float], texture: str | None,
              strength: float) -> None:
    scale = 1.0 + strength if texture else 1.0
    material = spec.add_material(name=name, rgba=[*np.clip(np.asarray(color) * scale, 0, 1).tolist(), 1.0])
    material.specular, material.shininess, material.reflectance = 0.05, 0.1, 0.0
    if texture:
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = texture


def _add_road_mesh(spec: mujoco.MjSpec, name: str, mesh: Mesh, z: float, material: str) -> None:
    if len(mesh.triangles) == 0:
        return
    vertices = mesh.vertices.copy()
    vertices[:, 2] = z
    asset = spec.add_mesh(name=name, inertia=mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL)
    asset.uservert = vertices.reshape(-1).tolist()
    asset.userface = mesh.triangles.reshape(-1).tolist()
    asset.usertexcoord = (mesh.uv / (_TEXTURE_SIZE * _TEXTURE_CELL)).reshape(-1).tolist()
    spec.worldbody.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_MESH, meshname=name, material=material,
        contype=0, conaffinity=0, group=1,
    )


def _add_world(spec: mujoco.MjSpec, road: Road, car: CarParams, visuals: VisualVariation) -> None:
    """Ground plane, road meshes, light and render settings."""
    textured = visuals.texture_strength > 0
    if textured:
        _speckle_texture(spec, "speckle", visuals.texture_seed, visuals.texture_strength)
    texture = "speckle" if textured else None
    _material(spec, "grass", visuals.grass_color, texture, visuals.texture_strength)
    _material(spec, "asphalt", visuals.asphalt_color, texture, visuals.texture_strength)
    _material(spec, "edge_line", visuals.line_color, None, 0.0)
    _material(spec, "centre_line", visuals.centre_line_color, None, 0.0)
    if textured:
        grass = spec.material("grass")
        grass.texuniform = True
        grass.texrepeat = [1.0 / (_TEXTURE_SIZE * _TEXTURE_CELL)] * 2

    # grass out to the far clip plane beyond the road, so the horizon looks the same everywhere
    xmin, ymin, xmax, ymax = road.ground_extent()
    xmin, ymin, xmax, ymax = xmin - car.camera_far, ymin - car.camera_far, xmax + car.camera_far, ymax + car.camera_far
    spec.worldbody.add_geom(
        name="ground", type=mujoco.mjtGeom.mjGEOM_PLANE, material="grass",
        pos=[(xmin + xmax) / 2, (ymin + ymax) / 2, 0.0], size=[(xmax - xmin) / 2, (ymax - ymin) / 2, 1.0],
        contype=1, conaffinity=1, condim=3, friction=[1.0, 0.005, 0.0001], group=0,
    )
    _add_road_mesh(spec, "asphalt", road.asphalt(), _ASPHALT_Z, "asphalt")
    _add_road_mesh(spec, "edge_lines", road.edge_lines(), _LINE_Z, "edge_line")
    _add_road_mesh(spec, "centre_dashes", road.centre_dashes(), _LINE_Z, "centre_line")

    light_dir = -np.asarray(visuals.light_direction, float)
    light_dir /= max(np.linalg.norm(light_dir), 1e-9)
    light = spec.worldbody.add_light(name="sun", type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False)
    light.dir = light_dir.tolist()
    light.pos = [0.0, 0.0, 10.0]
    light.ambient = [visuals.ambient] * 3
    light.diffuse = [visuals.diffuse] * 3
    light.specular = [0.05] * 3

    visual = spec.visual
    visual.global_.fovy = CHASE_FOV_DEG  # the free (chase) camera's vertical field of view
    visual.headlight.active = 0
    visual.headlight.ambient = [0.0] * 3
    visual.headlight.diffuse = [0.0] * 3
    visual.headlight.specular = [0.0] * 3
    # near/far clip planes are multiples of the model extent: pin the extent so they are in metres
    extent = 10.0
    spec.stat.extent = extent
    visual.map.znear = car.camera_near / extent
    visual.map.zfar = car.camera_far / extent
    visual.global_.offwidth = max(car.image_width, OFFSCREEN_SIZE[0])
    visual.global_.offheight = max(car.image_height, OFFSCREEN_SIZE[1])
    visual.quality.shadowsize = 0
    # no multisampling: with software GL (llvmpipe) 4× MSAA made a 128×64 frame ~3× slower (measured)
    visual.quality.offsamples = 0
    # the sky: a flat-colour skybox (≈ 1 ms per 128×64 frame, far cheaper than the gradient/shadow path)
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
        rgb1=list(visuals.sky_color), rgb2=list(visuals.sky_color), width=8, height=8,
    )


def build_model_spec(road: Road, car: CarParams, visuals: VisualVariation, physics_dt: float) -> mujoco.MjSpec:
    """The complete world (car asset sized from ``car`` + road + ground + light) as an ``MjSpec``."""
    spec = mujoco.MjSpec.from_string(_car_xml())
    spec.option.timestep = physics_dt
    _size_car(spec, car, visuals)
    _add_world(spec, road, car, visuals)
    return spec


class MujocoLaneBackend:
    """:class:`~.backend.LaneBackend` on MuJoCo (headless rendering, passive viewer on request)."""

    def __init__(self) -> None:
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._build_key: tuple | None = None
        self._renderer: OffscreenRenderer | None = None
        self._viewer = PassiveViewer(distance=1.5, elevation=-25.0)
        self._friction_scale = 1.0
        self._time = 0.0
        self._steer_target = 0.0
        self._steer_now = 0.0
        self._speed_target = 0.0

    # --- world ------------------------------------------------------------------------------------
    def build(self, road: Road, car: CarParams, visuals: VisualVariation, physics_dt: float) -> None:
        if not (isinstance(physics_dt, (int, float)) and 0 < physics_dt <= 0.02):
            raise ValueError(f"physics_dt must be in (0, 0.02] s (≥ 50 Hz), got {physics_dt}")
        key = (id(road), road.seed, road.config, car, visuals, float(physics_dt))
        self.road, self.car, self.visuals, self.physics_dt = road, car, visuals, float(physics_dt)
        if key != self._build_key or self.model is None:
            self.model = build_model_spec(road, car, visuals, physics_dt).compile()
            self.data = mujoco.MjData(self.model)
            self._index_model()
            self._build_key = key
            self._viewer.launch(self.model, self.data, self._car_body)
        self._apply_friction()
        self.reset(Pose2D(float(road.centerline[0, 0]), float(road.centerline[0, 1]), float(road.heading[0])), 0.0)

    def _index_model(self) -> None:
        model, _ = self._require()
        obj = mujoco.mjtObj

        def joint_address(name: str) -> tuple[int, int]:
            jid = mujoco.mj_name2id(model, obj.mjOBJ_JOINT, name)
            return int(model.jnt_qposadr[jid]), int(model.jnt_dofadr[jid])

        self._free_qpos, self._free_dof = joint_address("car_free")
        self._wheel_dofs = {name: joint_address(name)[1] for name in WHEEL_NAMES}
        self._wheel_qpos = {name: joint_address(name)[0] for name in WHEEL_NAMES}
        self._steer_qpos = {name: joint_address(f"{name}_steer")[0] for name in WHEEL_NAMES[:2]}
        self._steer_dofs = {name: joint_address(f"{name}_steer")[1] for name in WHEEL_NAMES[:2]}
        self._steer_act = {name: mujoco.mj_name2id(model, obj.mjOBJ_ACTUATOR, f"{name}_steer") for name in WHEEL_NAMES[:2]}
        self._drive_act = {name: mujoco.mj_name2id(model, obj.mjOBJ_ACTUATOR, name) for name in self.car.driven_wheels}
        self._tyres = [mujoco.mj_name2id(model, obj.mjOBJ_GEOM, f"{name}_tyre") for name in WHEEL_NAMES]
        self._ground = mujoco.mj_name2id(model, obj.mjOBJ_GEOM, "ground")
        self._car_body = mujoco.mj_name2id(model, obj.mjOBJ_BODY, "car")
        self._camera = mujoco.mj_name2id(model, obj.mjOBJ_CAMERA, "onboard")

    def _apply_friction(self) -> None:
        if self.model is None:
            return
        for geom in self._tyres:
            self.model.geom_friction[geom, 0] = self.car.tyre_friction * self._friction_scale

    # --- control ----------------------------------------------------------------------------------
    def reset(self, pose: Pose2D, speed: float) -> None:
        model, data = self._require()
        if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.yaw, speed)):
            raise ValueError(f"reset needs a finite pose and speed, got {pose} and {speed}")
        mujoco.mj_resetData(model, data)
        q = self._free_qpos
        data.qpos[q:q + 3] = [pose.x, pose.y, 0.0]
        data.qpos[q + 3:q + 7] = [math.cos(pose.yaw / 2), 0.0, 0.0, math.sin(pose.yaw / 2)]
        v = self._free_dof
        data.qvel[v:v + 3] = [speed * math.cos(pose.yaw), speed * math.sin(pose.yaw), 0.0]
        for name in WHEEL_NAMES:
            data.qvel[self._wheel_dofs[name]] = speed / self.car.wheel_radius
        self._time = 0.0
        self._steer_now = 0.0
        self.set_command(0.0, speed)
        mujoco.mj_forward(model, data)

    def set_command(self, steering: float, target_speed: float) -> None:
        self._require()
        if not (math.isfinite(steering) and math.isfinite(target_speed)):
            raise ValueError(f"steering ({steering}) and target_speed ({target_speed}) must be finite")
        car = self.car
        self._steer_target = float(np.clip(steering, -car.max_steering, car.max_steering))
        self._speed_target = float(np.clip(target_speed, 0.0, car.max_speed))
        self._apply_controls()

    def _apply_controls(self) -> None:
        """Ackermann steering angles for the ramped set-point and per-wheel cruise speeds."""
        car, (_, data) = self.car, self._require()
        for name in WHEEL_NAMES[:2]:
            data.ctrl[self._steer_act[name]] = car.ackermann_angle(name, self._steer_now)
        for name, actuator in self._drive_act.items():
            wheel_speed = car.wheel_ground_speed(name, self._speed_target, self._steer_target)
            data.ctrl[actuator] = wheel_speed / car.wheel_radius

    def advance(self, duration: float) -> None:
        model, data = self._require()
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"advance duration must be > 0 s, got {duration}")
        steps = max(1, int(round(duration / self.physics_dt)))
        max_delta = self.car.steering_rate * self.physics_dt
        for _ in range(steps):
            if self._steer_now != self._steer_target:
                self._steer_now += float(np.clip(self._steer_target - self._steer_now, -max_delta, max_delta))
                self._apply_controls()
            mujoco.mj_step(model, data)
        # mj_step computes poses before integrating qpos: without this the reported pose, the tyre
        # contacts and the camera lag the integrated state by one physics step (1 cm at 2 m/s).
        # Kinematics + cameras only: the dynamics (and so the trajectory) are untouched.
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        self._time += steps * self.physics_dt

    # --- state ------------------------------------------------------------------------------------
    def vehicle_state(self) -> VehicleState:
        model, data = self._require()
        rotation = data.xmat[self._car_body].reshape(3, 3)
        position = data.xpos[self._car_body]
        v = self._free_dof
        velocity = data.qvel[v:v + 3]  # world frame, of the body origin (the reference point)
        angular = rotation @ data.qvel[v + 3:v + 6]  # free-joint angular velocity is in the body frame
        forward, left = rotation[:, 0], rotation[:, 1]
        yaw = math.atan2(rotation[1, 0], rotation[0, 0])
        pitch = -math.asin(float(np.clip(rotation[2, 0], -1.0, 1.0)))
        roll = math.atan2(rotation[2, 1], rotation[2, 2])
        # the ground is the plane z = 0: a tyre touches it when its lowest point is within
        # _CONTACT_TOLERANCE (soft contacts chatter by ~1 mm while a car slides on a wet road)
        lowest = data.geom_xpos[self._tyres, 2] - model.geom_size[self._tyres, 0]
        return VehicleState(
            time=self._time,
            x=float(position[0]),
            y=float(position[1]),
            yaw=wrap_angle(yaw),
            roll=float(roll),
            pitch=float(pitch),
            speed=float(velocity @ forward),
            lateral_speed=float(velocity @ left),
            yaw_rate=float(angular[2]),
            steering_angle=float(np.mean([data.qpos[a] for a in self._steer_qpos.values()])),
            wheel_contacts=tuple(bool(z < _CONTACT_TOLERANCE) for z in lowest),
        )

    # --- rendering --------------------------------------------------------------------------------
    def _render(self, width: int, height: int, camera: mujoco.MjvCamera) -> np.ndarray:
        model, data = self._require()
        if self._renderer is None:
            self._renderer = OffscreenRenderer()
        return self._renderer.render(model, data, camera, width, height)

    def render_camera(self) -> np.ndarray:
        self._require()
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        camera.fixedcamid = self._camera
        return self._render(self.car.image_width, self.car.image_height, camera)

    def render_chase(self, width: int, height: int) -> np.ndarray:
        check_render_size(width, height)
        eye, target = chase_camera(self.vehicle_state())
        return self._render(width, height, look_at_camera(eye, target))

    def set_friction_scale(self, scale: float) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= 1):
            raise ValueError(f"friction scale must be in (0, 1] (1 = dry road), got {scale!r}")
        self._friction_scale = float(scale)
        self._apply_friction()

    # --- viewer / lifetime -------------------------------------------------------------------------
    def open_viewer(self) -> None:
        self._viewer.request()
        if self.model is not None:
            self._viewer.launch(self.model, self.data, self._car_body)

    def sync_viewer(self) -> None:
        self._viewer.sync()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._viewer.close()
        self.model = self.data = None
        self._build_key = None

    def _require(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        if self.model is None or self.data is None:
            raise RuntimeError("MujocoLaneBackend: call build(road, car, visuals, physics_dt) first")
        return self.model, self.data
