"""Headless MuJoCo rendering shared by the MuJoCo backends (lane keeping, drone forest).

:class:`OffscreenRenderer` keeps ONE GL context for its life and a new ``MjrContext`` per model;
shadows, reflections and fog are off, the skybox (a flat sky colour) is on, no multisampling —
the settings measured fastest on software GL (llvmpipe). :func:`look_at_camera` makes a free
camera from an eye point and a target point (both world, m).
"""

from __future__ import annotations

import math
import os

import numpy as np

from lnn_control.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()
import mujoco  # noqa: E402  (the GL backend must be chosen before mujoco is imported)
from mujoco import gl_context  # noqa: E402

OFFSCREEN_SIZE = (320, 240)
"""Initial offscreen buffer (width, height) in pixels; grown on demand up to :data:`~lnn_control.envs.common.MAX_RENDER_SIZE`."""


def look_at_camera(eye: np.ndarray, target: np.ndarray) -> mujoco.MjvCamera:
    """A free ``MjvCamera`` at ``eye`` looking at ``target`` (world coordinates, m; must differ)."""
    offset = np.asarray(target, float) - np.asarray(eye, float)
    distance = float(np.linalg.norm(offset))
    if not distance > 0:
        raise ValueError(f"look_at_camera: eye {eye} and target {target} must differ")
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = target
    camera.distance = distance
    camera.azimuth = math.degrees(math.atan2(offset[1], offset[0]))
    camera.elevation = math.degrees(math.asin(offset[2] / distance))
    return camera


def fixed_camera(camera_id: int) -> mujoco.MjvCamera:
    """An ``MjvCamera`` that renders the model's camera number ``camera_id``."""
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = int(camera_id)
    return camera


class OffscreenRenderer:
    """Headless RGB rendering that outlives models: ONE GL context for the renderer's life, a new
    ``MjrContext`` (meshes/textures upload, ~10 ms) only when the model changes, an offscreen
    buffer grown on demand. Shadows, reflections and fog are off; the skybox (a flat sky colour) is on."""

    def __init__(self) -> None:
        platform = gl_context.GLContext.__module__
        if platform == "mujoco.glfw" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise RuntimeError(
                "MuJoCo chose the GLFW (windowed) OpenGL backend but there is no display: mujoco was "
                "imported before lnn_control.envs.gl.ensure_mujoco_gl() could pick EGL/OSMesa. Set "
                "MUJOCO_GL=egl (or osmesa) in the environment, or import a MuJoCo backend first."
            )
        self._gl = gl_context.GLContext(*OFFSCREEN_SIZE)
        self._model: mujoco.MjModel | None = None
        self._context: mujoco.MjrContext | None = None
        self._scene: mujoco.MjvScene | None = None
        self._option = mujoco.MjvOption()
        self._buffer = (0, 0)

    def _use(self, model: mujoco.MjModel, width: int, height: int) -> None:
        if model is not self._model:
            if self._context is not None:
                self._context.free()
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100.value)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
            self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 100)
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_FOG"):
                self._scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = True
            self._model = model
            self._buffer = (int(model.vis.global_.offwidth), int(model.vis.global_.offheight))
        if width > self._buffer[0] or height > self._buffer[1]:
            self._buffer = (max(width, self._buffer[0]), max(height, self._buffer[1]))
            mujoco.mjr_resizeOffscreen(*self._buffer, self._context)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)

    def render(
        self, model: mujoco.MjModel, data: mujoco.MjData, camera: mujoco.MjvCamera, width: int, height: int,
        hidden_groups: tuple[int, ...] = (),
    ) -> np.ndarray:
        """uint8 [height, width, 3] RGB frame of ``camera``, without the geoms of ``hidden_groups``
        (MuJoCo geom groups 0..5). Callable from any thread (one at a time): the GL context is
        current only during the call."""
        self._option.geomgroup[:] = 1
        for group in hidden_groups:
            self._option.geomgroup[group] = 0
        with self._gl.as_current():
            self._use(model, width, height)
            mujoco.mjv_updateScene(
                model, data, self._option, None, camera, mujoco.mjtCatBit.mjCAT_ALL.value, self._scene
            )
            rect = mujoco.MjrRect(0, 0, width, height)
            mujoco.mjr_render(rect, self._scene, self._context)
            pixels = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_readPixels(pixels, None, rect, self._context)
        return np.ascontiguousarray(pixels[::-1])

    def close(self) -> None:
        if self._context is not None:
            with self._gl.as_current():
                self._context.free()
            self._context = None
        self._model = self._scene = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None
