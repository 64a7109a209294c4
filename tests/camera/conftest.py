import sys
from pathlib import Path

# the camera test kit (synthetic chessboard views and analytic worlds seen through a known lens)
# lives next to this file
sys.path.insert(0, str(Path(__file__).parent))
