"""The wheel holds every module, asset and launch file, and nothing outside ``lnn_control``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# repo folder -> where it must land inside the wheel
MAPPED = {
    "lnn_control": "lnn_control",
    "envs": "lnn_control/envs",
    "policies": "lnn_control/policies",
    "launch": "lnn_control/launch",
    "assets": "lnn_control/assets",
}
SHIPPED_SUFFIXES = {".py", ".yaml", ".xml", ".urdf", ".obj", ".png", ".json", ".safetensors", ".md", ".ino"}
DOCUMENTATION_ONLY = ("assets/readme", "assets/studies", "assets/benchmarks")  # in the repository, not in the wheel


def _expected_files() -> set[str]:
    expected = set()
    for folder, target in MAPPED.items():
        for path in (REPO / folder).rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith(DOCUMENTATION_ONLY):
                continue
            if path.is_file() and path.suffix in SHIPPED_SUFFIXES and "__pycache__" not in path.parts:
                expected.add(f"{target}/{path.relative_to(REPO / folder).as_posix()}")
    return expected


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools' scratch copy (build/lib) keeps files of earlier builds; start from the sources
    shutil.rmtree(REPO / "build" / "lib", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheels = list(out.glob("lnn_control-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, found {wheels}"
    with zipfile.ZipFile(wheels[0]) as archive:
        return set(archive.namelist())


@pytest.mark.slow
def test_wheel_holds_every_module_asset_and_launch_file(wheel_names: set[str]) -> None:
    missing = sorted(_expected_files() - wheel_names)
    assert not missing, f"files missing from the wheel (add the package to pyproject): {missing}"


@pytest.mark.slow
def test_wheel_leaves_out_the_documentation_assets(wheel_names: set[str]) -> None:
    shipped = [name for name in wheel_names if name.startswith(tuple(f"lnn_control/{folder}" for folder in DOCUMENTATION_ONLY))]
    assert not shipped, f"README figures and study reports are not installed, the wheel has {shipped[:5]}"


@pytest.mark.slow
def test_wheel_has_no_stray_top_level_packages(wheel_names: set[str]) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel_names}
    stray = {name for name in top_level if not name.endswith(".dist-info")} - {"lnn_control"}
    assert not stray, f"only lnn_control may be installed, the wheel also has {sorted(stray)}"


def test_import_lnn_control_is_light() -> None:
    code = (
        "import sys, lnn_control, lnn_control.cli;"
        "heavy = [m for m in ('torch', 'mujoco', 'pybullet', 'cv2', 'gymnasium') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"import lnn_control pulled in {done.stdout.strip()}"


def test_ruff_bans_importing_top_level_envs(tmp_path: Path) -> None:
    bad = tmp_path / "bad_import.py"
    bad.write_text("import envs\nfrom policies import x\n")
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(REPO / "pyproject.toml"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert done.stdout.count("TID251") == 2, done.stdout
