import sys
from pathlib import Path

# The fake board trees are shared with the sensor tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sensors"))
