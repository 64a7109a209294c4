import sys
from pathlib import Path

# the dataset test kit (run logs written by the real MCAP writer) lives next to this file
sys.path.insert(0, str(Path(__file__).parent))
