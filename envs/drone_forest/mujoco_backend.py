"""MuJoCo drone-forest backend: the quadrotor MJCF sized from :class:`~.quad.QuadParams`, the forest as static geoms.

- Quadrotor: ``assets/mujoco/quadrotor.xml`` (read with ``importlib.resources``) gives structure,
  names and contact settings; :func:`build_model_spec` overwrites mass, inertia, rotor positions,
  thrust limits, the yaw-torque coefficient, the airframe box and the camera mount from
  ``QuadParams`` (the one source shared with PyBullet). Each rotor is ONE site motor whose control
  is its thrust (N): gear ``(0, 0, 1, 0, 0, −spin·k)`` pushes along the rotor's z axis and adds
  the reaction torque ``−spin·k·T`` about body z.
- Drag: linear, ``−linear_drag ⊙ R^T(v − wind)`` (body frame) applied at the centre of mass
  through ``xfrc_applied`` before every physics step. MuJoCo's own fluid model (``option``
  density / viscosity / wind) stays off: its drag is shape-derived (quadratic plus an isotropic
  viscous term), not the shared per-axis linear model that PyBullet applies too.
- Forest (drawn like the PyBullet backend): every trunk a cylinder (collides), every canopy a
  visual-only six-sided cone mesh from ``canopy_base`` to 1 m above the trunk top (the forest keeps
  canopies above the flight ceiling), a ground plane with a 1 m speckle texture (±15 %), the target
  a visual-only red beacon (``TARGET_HALF_EXTENTS``) on a grey pole. All are static world geoms, one per trunk / canopy (so they
  can be culled). Contacts between an airframe geom and a trunk or the ground latch :meth:`collided`.
- Rendering (:class:`~lnn_control.envs.mujoco_render.OffscreenRenderer`): shadows, reflections and
  fog off, flat-colour sky, coarse primitive tessellation (``quality.numslices/numstacks``), and
  tree geoms outside the camera's view frustum hidden (alpha 0) for the frame — MuJoCo skips
  fully transparent geoms, so only trees the camera can see are drawn (frames are bit-identical to
  drawing everything). The onboard camera does not see the airframe (geom group 2 hidden).
- Divergence: MuJoCo's auto-reset is disabled; after an "unstable simulation" warning the backend
  stops stepping and :meth:`MujocoDroneBackend.drone_state` is all-NaN until the next ``reset``.
"""

from __future__ import annotations

import importlib.resources
import math

import numpy as np

from lnn_control.envs.common import check_render_size
from lnn_control.envs.drone_forest.backend import (
    CHASE_FOV_DEG,
    TARGET_HALF_EXTENTS,
    DroneState,
    VisualVariation,
    chase_camera,
    yaw_quaternion,
)
from lnn_control.envs.drone_forest.forest import Forest
from lnn_control.envs.drone_forest.quad import ROTOR_NAMES, ROTOR_SPIN, QuadParams
from lnn_control.envs.gl import ensure_mujoco_gl
from lnn_control.envs.mujoco_render import (
    OFFSCREEN_SIZE,
    OffscreenRenderer,
    fixed_camera,
    look_at_camera,
)
from lnn_control.envs.mujoco_viewer import PassiveViewer

ensure_mujoco_gl()
import mujoco  # noqa: E402  (the GL backend must be chosen before mujoco is imported)

QUAD_ASSET = "mujoco/quadrotor.xml"
"""Path of the quadrotor MJCF inside ``lnn_control.assets``."""

_TEXTURE_SIZE = 64  # px of the procedural ground speckle texture (repeats every 64 m)
_TEXTURE_CELL = 1.0  # m of ground covered by one texel
_SPECKLE = 0.15  # relative brightness spread of the ground texels
_CONE_SIDES = 6  # canopy cone sides
# primitive tessellation (trunk cylinders: 8 sides, one stack; flat-lit, so more stacks add nothing):
# MuJoCo's default 28×16 made a 200-tree frame ~6× slower to draw (84 → 12 ms measured on 2 loaded cores)
_SLICES, _STACKS = 8, 1
_CHASE_DISTANCE, _CHASE_HEIGHT = 3.0, 1.2  # m behind / above the drone
_FRUSTUM_MARGIN = 0.5  # m of slack when culling geoms against the view frustum
_DIVERGENCE_WARNINGS = [
    mujoco.mjtWarning.mjWARN_BADQPOS.value, mujoco.mjtWarning.mjWARN_BADQVEL.value, mujoco.mjtWarning.mjWARN_BADQACC.value,
]  # MuJoCo's "simulation is unstable" warnings
_WORLD_GROUP, _QUAD_GROUP = 1, 2  # geom groups: forest/ground/target; airframe (hidden from the onboard camera)
CANOPY_APEX_ABOVE_TRUNK = 1.0
"""Canopy cones run from ``Forest.canopy_base`` up to an apex this far (m) above the trunk top."""


def _quad_xml() -> str:
    return importlib.resources.files("lnn_control.assets").joinpath(QUAD_ASSET).read_text(encoding="utf-8")


def camera_xyaxes(pitch: float) -> tuple[float, ...]:
    """MuJoCo camera ``xyaxes`` (right, up in the body frame) for a camera looking along body +x,
    pitched ``pitch`` rad below it (MuJoCo cameras look along their −z)."""
    forward = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
    right = np.array([0.0, -1.0, 0.0])
    up = np.cross(right, forward)
    return (*right.tolist(), *up.tolist())


def canopy_cone(radius: float, height: float) -> np.ndarray:
    """Vertices [_CONE_SIDES + 1, 3] (m) of a canopy cone: a ``_CONE_SIDES``-gon of ``radius`` at z = 0
    and the apex ``height`` above its centre (MuJoCo draws a mesh's convex hull)."""
    angles = np.linspace(0.0, 2 * np.pi, _CONE_SIDES, endpoint=False)
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(_CONE_SIDES)], axis=1)
    return np.concatenate([ring, [[0.0, 0.0, height]]])


def _tinted(color: tuple[float, float, float], tint: tuple[float, float, float], gain: float = 1.0) -> list[float]:
    return [*np.clip(np.asarray(color, float) * np.asarray(tint, float) * gain, 0.0, 1.0).tolist(), 1.0]


def _size_quad(spec: mujoco.MjSpec, quad: QuadParams, visuals: VisualVariation) -> None:
    """Overwrite the quadrotor asset's mass properties, rotors, airframe and camera from ``quad``."""
    body = spec.body("quad")
    body.mass = quad.mass
    body.inertia = list(quad.inertia)
    body.ipos = [0.0, 0.0, 0.0]
    body.explicitinertial = True
    hull = spec.geom("hull")
    hull.size = list(quad.body_half_extents)
    hull.rgba = [*visuals.drone_color, 1.0]
    positions = quad.rotor_positions()
    index = {name: i for i, name in enumerate(ROTOR_NAMES)}
    for name in ROTOR_NAMES:
        hub = positions[index[name]]
        spec.site(f"rotor_{name}").pos = hub.tolist()
        disc = spec.geom(f"disc_{name}")
        disc.pos = [hub[0], hub[1], quad.body_half_extents[2]]
        disc.size = [0.45 * quad.arm_length, 0.004, 0.0]
        motor = spec.actuator(f"rotor_{name}")
        motor.gear = [0.0, 0.0, 1.0, 0.0, 0.0, -ROTOR_SPIN[index[name]] * quad.yaw_torque_coefficient]
        motor.ctrlrange = [0.0, quad.max_rotor_thrust]
    a = quad.arm_length / math.sqrt(2.0)
    spec.geom("arm_front_left_rear_right").fromto = [a, a, 0.0, -a, -a, 0.0]
    spec.geom("arm_front_right_rear_left").fromto = [a, -a, 0.0, -a, a, 0.0]
    camera = spec.camera("onboard")
    camera.pos = [quad.camera_forward, 0.0, quad.camera_up]
    camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    camera.alt.xyaxes = list(camera_xyaxes(quad.camera_pitch + visuals.camera_pitch_offset))
    camera.fovy = quad.camera_vertical_fov_deg


def _ground_texture(spec: mujoco.MjSpec, seed: int) -> None:
    """A grey speckle texture: texels (1 + _SPECKLE·n)/(1 + _SPECKLE), n ~ U(−1, 1); the ground material's
    colour is scaled by (1 + _SPECKLE), so the ground is its colour × (1 ± _SPECKLE) per 1 m cell."""
    noise = np.random.default_rng(seed).uniform(-1.0, 1.0, (_TEXTURE_SIZE, _TEXTURE_SIZE))
    grey = np.round((1.0 + _SPECKLE * noise) / (1.0 + _SPECKLE) * 255).astype(np.uint8)
    texture = spec.add_texture(
        name="ground_speckle", type=mujoco.mjtTexture.mjTEXTURE_2D, width=_TEXTURE_SIZE, height=_TEXTURE_SIZE,
        nchannel=3,
    )
    texture.data = np.repeat(grey[:, :, None], 3, axis=2).tobytes()


def _add_forest(spec: mujoco.MjSpec, forest: Forest, quad: QuadParams, visuals: VisualVariation) -> None:
    """Ground, trunks, canopies, target marker, light and render settings."""
    trunk_rgba = _tinted(forest.trunk_color, visuals.trunk_tint)
    foliage_rgba = _tinted(forest.foliage_color, visuals.foliage_tint)
    for i, (x, y) in enumerate(forest.trunk_xy):
        radius, height = float(forest.trunk_radius[i]), float(forest.trunk_height[i])
        spec.worldbody.add_geom(
            name=f"trunk_{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[radius, height / 2, 0.0],
            pos=[x, y, height / 2], rgba=trunk_rgba, group=_WORLD_GROUP,
        )
        base = float(forest.canopy_base[i])
        mesh = spec.add_mesh(name=f"canopy_{i}", inertia=mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL)
        mesh.uservert = canopy_cone(float(forest.canopy_radius[i]), height + CANOPY_APEX_ABOVE_TRUNK - base).ravel().tolist()
        spec.worldbody.add_geom(
            name=f"canopy_{i}", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"canopy_{i}", pos=[x, y, base],
            rgba=foliage_rgba, contype=0, conaffinity=0, group=_WORLD_GROUP,
        )

    _ground_texture(spec, forest.seed)
    ground = spec.add_material(name="ground", rgba=_tinted(forest.ground_color, visuals.ground_tint, 1.0 + _SPECKLE))
    ground.specular, ground.shininess, ground.reflectance = 0.0, 0.0, 0.0
    ground.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "ground_speckle"
    ground.texuniform = True
    ground.texrepeat = [1.0 / (_TEXTURE_SIZE * _TEXTURE_CELL)] * 2
    half = forest.half_size + quad.camera_far  # ground out to the far clip plane beyond the flight area
    spec.worldbody.add_geom(
        name="ground", type=mujoco.mjtGeom.mjGEOM_PLANE, material="ground", pos=[0.0, 0.0, 0.0],
        size=[half, half, 1.0], group=_WORLD_GROUP,
    )
    tx, ty, tz = forest.target_position
    pole = max(tz - TARGET_HALF_EXTENTS[2], 0.01)  # from the ground to the beacon's bottom
    spec.worldbody.add_geom(
        name="target", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(TARGET_HALF_EXTENTS), pos=[tx, ty, tz],
        rgba=[*visuals.target_color, 1.0], contype=0, conaffinity=0, group=_WORLD_GROUP,
    )
    spec.worldbody.add_geom(
        name="target_pole", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.04, 0.04, pole / 2], pos=[tx, ty, pole / 2],
        rgba=[0.9, 0.9, 0.9, 1.0], contype=0, conaffinity=0, group=_WORLD_GROUP,
    )

    light_dir = -np.asarray(visuals.light_direction, float)
    light_dir /= max(float(np.linalg.norm(light_dir)), 1e-9)
    light = spec.worldbody.add_light(name="sun", type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False)
    light.dir = light_dir.tolist()
    light.pos = [0.0, 0.0, 30.0]
    light.ambient = [visuals.ambient] * 3
    light.diffuse = [visuals.diffuse] * 3
    light.specular = [0.0] * 3

    visual = spec.visual
    visual.global_.fovy = CHASE_FOV_DEG
    visual.headlight.active = 0
    visual.headlight.ambient = visual.headlight.diffuse = visual.headlight.specular = [0.0] * 3
    # near/far clip planes are multiples of the model extent: pin the extent so they are in metres
    extent = 10.0
    spec.stat.extent = extent
    visual.map.znear = quad.camera_near / extent
    visual.map.zfar = quad.camera_far / extent
    visual.global_.offwidth = max(quad.image_width, OFFSCREEN_SIZE[0])
    visual.global_.offheight = max(quad.image_height, OFFSCREEN_SIZE[1])
    visual.quality.shadowsize = 0
    visual.quality.offsamples = 0
    visual.quality.numslices, visual.quality.numstacks = _SLICES, _STACKS
    spec.add_texture(
        name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
        rgb1=list(visuals.sky_color), rgb2=list(visuals.sky_color), width=8, height=8,
    )


def build_model_spec(forest: Forest, quad: QuadParams, visuals: VisualVariation, physics_dt: float) -> mujoco.MjSpec:
    """The complete world (quadrotor sized from ``quad`` + forest + ground + target + light) as an ``MjSpec``."""
    spec = mujoco.MjSpec.from_string(_quad_xml())
    spec.option.timestep = physics_dt
    # a diverging simulation must show up as a non-finite state, not silently restart from qpos0
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET.value
    _size_quad(spec, quad, visuals)
    _add_forest(spec, forest, quad, visuals)
    return spec


def frustum_visible(
    centres: np.ndarray, radii: np.ndarray, eye: np.ndarray, forward: np.ndarray, up: np.ndarray,
    fovy_deg: float, aspect: float, far: float,
) -> np.ndarray:
    """bool [N]: which bounding spheres (``centres`` [N, 3], ``radii`` [N], m) may intersect the view
    frustum of a camera at ``eye`` looking along unit ``forward`` with unit ``up`` (world frame),
    vertical FOV ``fovy_deg``, ``aspect`` = width / height, far plane ``far`` m. Conservative."""
    right = np.cross(forward, up)
    half_v = math.radians(fovy_deg) / 2
    half_h = math.atan(math.tan(half_v) * aspect)
    rel = centres - eye
    depth = rel @ forward
    slack = radii + _FRUSTUM_MARGIN
    inside = (depth > -slack) & (depth < far + slack)
    for half, axis in ((half_h, right), (half_v, up)):
        for sign in (1.0, -1.0):
            normal = math.sin(half) * forward - sign * math.cos(half) * axis
            inside &= rel @ normal > -slack
    return inside


class MujocoDroneBackend:
    """:class:`~.backend.DroneBackend` on MuJoCo (headless rendering, passive viewer on request)."""

    def __init__(self) -> None:
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self._build_key: tuple | None = None
        self._renderer: OffscreenRenderer | None = None
        self._viewer = PassiveViewer(distance=3.0, elevation=-20.0)
        self._wind = np.zeros(3)
        self._time = 0.0
        self._collided = False
        self._diverged = False

    # --- world ------------------------------------------------------------------------------------
    def build(self, forest: Forest, quad: QuadParams, visuals: VisualVariation, physics_dt: float) -> None:
        if not (isinstance(physics_dt, (int, float)) and 0 < physics_dt <= 0.01):
            raise ValueError(f"physics_dt must be in (0, 0.01] s (≥ 100 Hz), got {physics_dt}")
        key = (id(forest), forest.seed, forest.density_scale, forest.config, quad, visuals, float(physics_dt))
        self.forest, self.quad, self.visuals, self.physics_dt = forest, quad, visuals, float(physics_dt)
        if key != self._build_key or self.model is None:
            self.model = build_model_spec(forest, quad, visuals, physics_dt).compile()
            self.data = mujoco.MjData(self.model)
            self._index_model()
            self._build_key = key
            self._viewer.launch(self.model, self.data, self._body)
        self.reset(DroneState(0.0, forest.start_position, yaw_quaternion(forest.start_yaw), np.zeros(3), np.zeros(3)))

    def _index_model(self) -> None:
        (model, data), obj = self._require(), mujoco.mjtObj
        joint = mujoco.mj_name2id(model, obj.mjOBJ_JOINT, "quad_free")
        self._qpos, self._dof = int(model.jnt_qposadr[joint]), int(model.jnt_dofadr[joint])
        self._body = mujoco.mj_name2id(model, obj.mjOBJ_BODY, "quad")
        self._actuators = np.array([mujoco.mj_name2id(model, obj.mjOBJ_ACTUATOR, f"rotor_{n}") for n in ROTOR_NAMES])
        self._camera = mujoco.mj_name2id(model, obj.mjOBJ_CAMERA, "onboard")
        self._quad_geoms = np.flatnonzero(model.geom_bodyid == self._body)
        trees = [i for i in range(model.ngeom) if (mujoco.mj_id2name(model, obj.mjOBJ_GEOM, i) or "").startswith(("trunk_", "canopy_"))]
        self._tree_geoms = np.asarray(trees, dtype=int)
        self._tree_alpha = model.geom_rgba[self._tree_geoms, 3].copy()
        # views into MjData used every physics step (valid for this MjData's life)
        self._rotation_view = data.xmat[self._body].reshape(3, 3)
        self._velocity_view = data.qvel[self._dof:self._dof + 3]
        self._force_view = data.xfrc_applied[self._body, :3]
        self._drag = np.asarray(self.quad.linear_drag, float)

    # --- control ----------------------------------------------------------------------------------
    def reset(self, state: DroneState) -> None:
        model, data = self._require()
        if not state.finite:
            raise ValueError(f"reset needs a finite drone state, got {state}")
        mujoco.mj_resetData(model, data)
        q, v = self._qpos, self._dof
        data.qpos[q:q + 3] = state.position
        data.qpos[q + 3:q + 7] = state.quaternion / np.linalg.norm(state.quaternion)
        data.qvel[v:v + 3] = state.velocity
        data.qvel[v + 3:v + 6] = state.angular_velocity  # free-joint angular velocity is body-frame
        self._time = float(state.time)
        self._collided = False
        self._diverged = False
        mujoco.mj_forward(model, data)

    def set_rotor_thrusts(self, thrusts: np.ndarray) -> None:
        _, data = self._require()
        values = np.asarray(thrusts, float)
        if values.shape != (4,):
            raise ValueError(f"set_rotor_thrusts needs 4 thrusts (N) in {ROTOR_NAMES} order, got shape {values.shape}")
        data.ctrl[self._actuators] = self.quad.clip_thrusts(values)

    def set_wind(self, velocity: np.ndarray) -> None:
        wind = np.asarray(velocity, float)
        if wind.shape != (3,) or not np.all(np.isfinite(wind)):
            raise ValueError(f"set_wind needs a finite world-frame air velocity [3] (m/s), got {velocity!r}")
        self._wind = wind.copy()

    def advance(self, duration: float) -> None:
        model, data = self._require()
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"advance duration must be > 0 s, got {duration}")
        steps = max(1, int(round(duration / self.physics_dt)))
        drag, wind = self._drag, self._wind
        rotation, velocity, force = self._rotation_view, self._velocity_view, self._force_view
        for _ in range(steps):
            if self._diverged:
                break
            # linear drag on the airspeed in the body frame, applied at the centre of mass (world frame)
            force[:] = rotation @ (drag * (rotation.T @ (wind - velocity)))
            mujoco.mj_step(model, data)
            if data.ncon and not self._collided:
                self._collided = self._touching()
            self._diverged = bool(data.warning.number[_DIVERGENCE_WARNINGS].any())
        self._time += steps * self.physics_dt

    def _touching(self) -> bool:
        _, data = self._require()
        geoms = data.contact.geom[: data.ncon]
        return bool(np.any(np.isin(geoms, self._quad_geoms)))

    # --- state ------------------------------------------------------------------------------------
    def drone_state(self) -> DroneState:
        """The drone's state; every field NaN once the simulation diverged (until the next reset)."""
        _, data = self._require()
        if self._diverged:
            nan = np.full(4, np.nan)
            return DroneState(time=self._time, position=nan[:3], quaternion=nan, velocity=nan[:3], angular_velocity=nan[:3])
        q, v = self._qpos, self._dof
        return DroneState(
            time=self._time,
            position=data.qpos[q:q + 3],
            quaternion=data.qpos[q + 3:q + 7],
            velocity=data.qvel[v:v + 3],
            angular_velocity=data.qvel[v + 3:v + 6],
        )

    def collided(self) -> bool:
        self._require()
        return self._collided

    # --- rendering --------------------------------------------------------------------------------
    def _render(self, width: int, height: int, camera: mujoco.MjvCamera, eye: np.ndarray, forward: np.ndarray,
                up: np.ndarray, fovy: float, far: float, hidden_groups: tuple[int, ...] = ()) -> np.ndarray:
        model, data = self._require()
        if self._renderer is None:
            self._renderer = OffscreenRenderer()
        trees = self._tree_geoms
        visible = frustum_visible(
            data.geom_xpos[trees], model.geom_rbound[trees], eye, forward, up, fovy, width / height, far
        )
        model.geom_rgba[trees, 3] = np.where(visible, self._tree_alpha, 0.0)
        try:
            return self._renderer.render(model, data, camera, width, height, hidden_groups)
        finally:
            model.geom_rgba[trees, 3] = self._tree_alpha

    def render_camera(self) -> np.ndarray:
        _, data = self._require()
        frame = data.cam_xmat[self._camera].reshape(3, 3)  # columns: right, up, backward
        quad = self.quad
        return self._render(
            quad.image_width, quad.image_height, fixed_camera(self._camera), data.cam_xpos[self._camera],
            -frame[:, 2], frame[:, 1], quad.camera_vertical_fov_deg, quad.camera_far, (_QUAD_GROUP,),
        )

    def render_chase(self, width: int, height: int) -> np.ndarray:
        check_render_size(width, height)
        eye, target, _ = chase_camera(self.drone_state(), _CHASE_DISTANCE, _CHASE_HEIGHT)
        forward = (target - eye) / np.linalg.norm(target - eye)
        up = np.cross(np.cross(forward, [0.0, 0.0, 1.0]), forward)
        up /= max(float(np.linalg.norm(up)), 1e-9)
        return self._render(
            width, height, look_at_camera(eye, target), eye, forward, up, CHASE_FOV_DEG, self.quad.camera_far
        )

    # --- viewer / lifetime -------------------------------------------------------------------------
    def open_viewer(self) -> None:
        self._viewer.request()
        if self.model is not None:
            self._viewer.launch(self.model, self.data, self._body)

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
            raise RuntimeError("MujocoDroneBackend: call build(forest, quad, visuals, physics_dt) first")
        return self.model, self.data

