"""git, asked about a folder: this project's own commit (audit/provenance.py) and the identity of
a checkout of the official code (transfg/official.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(folder: str | Path, *args: str) -> str | None:
    """`git -C FOLDER ARGS...`'s output, or None where git is missing or the command fails (not
    a git checkout, no commit yet)."""
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              check=True).stdout.decode(errors="replace")
    except (OSError, subprocess.CalledProcessError):
        return None
