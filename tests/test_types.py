"""The static type checker passes: mypy over audit/ and transfg/ with the project's configuration
(pyproject.toml, [tool.mypy]), as `.ci/run` runs it through this test.

Known to fail until audit/plan.py, audit/protocol.py, transfg/official.py and
transfg/jittor_cuda13.py get their type fixes (they were being changed elsewhere when the checker
came in); every other file passes. Neither skipped nor marked xfail on purpose: a failure here is
a real one and names the file and line.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"
