import sys
from pathlib import Path

# Helper modules shared by tests (reference_numpy.py, dataset_layouts.py) live in tests/ itself.
sys.path.insert(0, str(Path(__file__).parent))
