"""Functions stay short where the report, the protocol schema and the verdict rules live: at most
60 lines each, from the `def` line to the last line (docstring included). A longer one is split
by phase or by kind, with names that say one thing."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60
FILES = sorted([*(ROOT / "audit" / "report").glob("*.py"), ROOT / "audit" / "protocol.py",
                ROOT / "audit" / "verdict.py"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_longer_than_60_lines(path):
    tree = ast.parse(path.read_text())
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > LIMIT]
    assert not long, f"{path.relative_to(ROOT)}: {', '.join(long)}"
