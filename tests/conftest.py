import sys
from pathlib import Path

# tests/reference_numpy.py is a helper module, not a test; make it importable everywhere.
sys.path.insert(0, str(Path(__file__).parent))
