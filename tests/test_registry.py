"""LazyRegistry: names resolve to "module:attribute" targets imported only on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lnn_control.registry import LazyRegistry


def test_a_name_imports_its_module_only_when_it_is_asked_for():
    code = (
        "import sys\n"
        "from lnn_control.nn.cores import core_types\n"
        "assert 'lnn_control.nn.ltc' not in sys.modules and 'ltc' in core_types()\n"
        "from lnn_control.runtime.session import HARDWARE_ROBOTS\n"
        "assert 'lnn_control.runtime.hardware.mavlink_drone' not in sys.modules\n"
        "assert HARDWARE_ROBOTS.get('mavlink_drone').__name__ == 'MavlinkDrone'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lookup_registration_and_errors():
    registry = LazyRegistry("widget", {"path": "os.path:join", "nested": "collections:OrderedDict.fromkeys"})
    assert registry.get("path")("a", "b") == "a/b" and list(registry) == ["nested", "path"]
    assert registry.get("nested")("xy") == {"x": None, "y": None}
    registry.register("own", len)
    assert "own" in registry and registry.get("own") is len and registry.target("own") is None
    with pytest.raises(ValueError, match=r"unknown widget 'gear'; known: \['nested', 'own', 'path'\]"):
        registry.get("gear")
    with pytest.raises(ValueError, match="must be 'module:attribute'"):
        LazyRegistry("widget", {"bad": "os.path.join"})
    missing = LazyRegistry("widget", {"ghost": "no_such_package_here:thing"})
    with pytest.raises(ModuleNotFoundError):  # the CLI names the extra for known packages
        missing.get("ghost")
