"""Choose a working OpenGL backend for MuJoCo's offscreen renderer.

MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported, so the
choice must be made before that import. :func:`ensure_mujoco_gl` respects a ``MUJOCO_GL``
the user set; otherwise it probes ``egl`` then ``osmesa`` in a child process (a failed
backend can leave the parent unusable) and sets the first one that renders a frame.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

MUJOCO_GL_CANDIDATES: tuple[str, ...] = ("egl", "osmesa")

_PROBE_SCRIPT = """
import mujoco
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
renderer = mujoco.Renderer(model, 8, 8)
renderer.update_scene(mujoco.MjData(model))
assert renderer.render().shape == (8, 8, 3)
"""

SYSTEM_PACKAGES_HINT = (
    "install the system packages for software OpenGL, e.g. on Debian/Ubuntu "
    "'apt-get install libegl1 libgl1-mesa-dri' (EGL) or 'apt-get install libosmesa6' (OSMesa), "
    "or use backend=\"pybullet\", whose TinyRenderer needs no OpenGL"
)


class MujocoGLUnavailable(RuntimeError):
    """No OpenGL backend can render MuJoCo frames on this machine; the message says what to install."""


@dataclass(frozen=True)
class GLProbe:
    """Result of trying one backend: ``ok`` and, when it failed, the last line of its error."""

    backend: str
    ok: bool
    error: str = ""


def probe_mujoco_gl(backend: str, timeout_s: float = 60.0) -> GLProbe:
    """Render one 8x8 frame with ``MUJOCO_GL=backend`` in a child process."""
    env = dict(os.environ, MUJOCO_GL=backend)
    if backend == "egl":
        env.setdefault("PYOPENGL_PLATFORM", "egl")
    elif backend == "osmesa":
        env["PYOPENGL_PLATFORM"] = "osmesa"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return GLProbe(backend, False, f"timed out after {timeout_s:.0f} s")
    if done.returncode == 0:
        return GLProbe(backend, True)
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return GLProbe(backend, False, lines[-1] if lines else f"exit status {done.returncode}")


def ensure_mujoco_gl() -> str:
    """Make sure ``MUJOCO_GL`` names a working backend and return it.

    Call before the first ``import mujoco`` of a process that renders. Raises
    :class:`MujocoGLUnavailable` naming the system packages to install when none works.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    if "mujoco" in sys.modules:
        # Too late to choose: MuJoCo already picked its default; report it rather than guess.
        return os.environ.get("MUJOCO_GL", "glfw")
    failures = []
    for backend in MUJOCO_GL_CANDIDATES:
        probe = probe_mujoco_gl(backend)
        if probe.ok:
            os.environ["MUJOCO_GL"] = backend
            if backend == "egl":
                os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
            return backend
        failures.append(f"{backend}: {probe.error}")
    raise MujocoGLUnavailable(
        "MuJoCo cannot render offscreen here (" + "; ".join(failures) + "). To fix: "
        + SYSTEM_PACKAGES_HINT
    )
