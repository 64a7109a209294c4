import sys
from pathlib import Path

# the runtime test kit (a small image env, simple policies, a camera-backed robot) lives next to
# this file; child processes started by the tests import it the same way
sys.path.insert(0, str(Path(__file__).parent))
