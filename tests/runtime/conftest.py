import sys
from pathlib import Path

import pytest

# the runtime test kit (a small image env, simple policies, a camera-backed robot) lives next to
# this file; child processes started by the tests import it the same way
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def autopilot():
    """A PX4-like autopilot emulator on a free loopback port (MAVLink 2, SITL-style), closed after."""
    from lnn_mavlink_testkit import start_autopilot

    emulator = start_autopilot()
    yield emulator
    emulator.close()
