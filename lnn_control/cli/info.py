"""``lnn-control info``: versions and which renderers work on this machine."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

PACKAGES = (
    "lnn-control",
    "torch",
    "numpy",
    "numba",
    "gymnasium",
    "mujoco",
    "pybullet",
    "opencv-python-headless",
    "safetensors",
    "onnxruntime",
    "ncps",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="versions, and which MuJoCo GL backends and PyBullet renderers work here"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run)


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _pybullet_renderers() -> dict[str, str]:
    """Try TinyRenderer (CPU, always available) and the EGL plugin in a DIRECT client."""
    import numpy as np
    import pybullet

    results: dict[str, str] = {}
    client = pybullet.connect(pybullet.DIRECT)
    try:
        view = pybullet.computeViewMatrix([2, 0, 1], [0, 0, 0], [0, 0, 1], physicsClientId=client)
        proj = pybullet.computeProjectionMatrixFOV(60, 1.0, 0.1, 10, physicsClientId=client)
        for name, renderer in (
            ("tiny", pybullet.ER_TINY_RENDERER),
        ):
            try:
                _, _, rgb, _, _ = pybullet.getCameraImage(
                    16, 16, view, proj, renderer=renderer, physicsClientId=client
                )
                ok = np.asarray(rgb).size == 16 * 16 * 4
                results[name] = "ok" if ok else "returned an empty image"
            except pybullet.error as exc:  # pragma: no cover - depends on the machine
                results[name] = f"failed: {exc}"
    finally:
        pybullet.disconnect(client)
    return results


def run(args: argparse.Namespace) -> int:
    from lnn_control.atomic import atomic_write_json
    from lnn_control.envs.gl import MUJOCO_GL_CANDIDATES, probe_mujoco_gl

    packages = _package_versions()
    mujoco_gl = {
        probe.backend: ("ok" if probe.ok else f"failed: {probe.error}")
        for probe in map(probe_mujoco_gl, MUJOCO_GL_CANDIDATES)
    }
    pybullet_renderers = _pybullet_renderers()
    torch_threads: int | None = None
    torch_cuda = False
    try:
        import torch

        torch_threads = torch.get_num_threads()
        torch_cuda = torch.cuda.is_available()
    except ImportError:  # the runtime can run without torch (ONNX engine)
        pass
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "mujoco_gl": mujoco_gl,
        "pybullet_renderers": pybullet_renderers,
        "torch_threads": torch_threads,
        "torch_cuda": torch_cuda,
    }

    print(f"lnn-control {packages['lnn-control']}  (Python {report['python']})")
    print("packages:")
    for name, version in packages.items():
        print(f"  {name:<24} {version or 'not installed'}")
    print("MuJoCo offscreen GL backends:")
    for name, state in mujoco_gl.items():
        print(f"  {name:<24} {state}")
    print("PyBullet renderers:")
    for name, state in pybullet_renderers.items():
        print(f"  {name:<24} {state}")
    if args.json:
        atomic_write_json(args.json, report)
    return 0
