"""The static checks pass, as `.ci/run` runs them through these tests: mypy over audit/ and
transfg/ ([tool.mypy] in pyproject.toml) and ruff over the whole tree ([tool.ruff]). A failure
names the file and line."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes():
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"mypy found errors:\n{done.stdout}{done.stderr}"


def test_ruff_passes():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff found problems:\n{done.stdout}{done.stderr}"
