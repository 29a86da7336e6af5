"""The house rules of the code (docs/design.md, "House rules"), checked over the source tree:
short functions, the run folder's file names in one module, docstrings that point only inside
the repository."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from transfg import run_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audit", "transfg")
LONGEST = 60  # lines, from the def line to the function's last line, docstring included


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def run_file_names() -> set[str]:
    """Every file or folder name transfg/run_files.py defines for a run folder, and the parts of
    those that are paths ("checkpoints/last.npz": also "checkpoints" and "last.npz")."""
    names = {value for name, value in vars(run_files).items()
             if name.isupper() and isinstance(value, str)}
    return names | {part for name in names if "/" in name for part in name.split("/")}


def length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return (node.end_lineno or node.lineno) - node.lineno + 1


def test_sources_found():
    assert len(sources()) > 30 and ROOT / "transfg" / "run_files.py" in sources()


def test_no_function_longer_than_the_limit():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length(node)} lines"
            for path in sources() for node in ast.walk(parsed(path))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and length(node) > LONGEST]
    assert not long, f"functions over {LONGEST} lines:\n" + "\n".join(long)


def test_the_length_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST))
    node = ast.parse(f"def f():\n{body}\n").body[0]
    assert isinstance(node, ast.FunctionDef) and length(node) == LONGEST + 1


@pytest.mark.parametrize("name", sorted(run_file_names()))
def test_run_folder_names_live_in_run_files_alone(name):
    """No string literal outside transfg/run_files.py is a run folder's file name or a path that
    holds one (a sentence that mentions one is fine)."""
    found = [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
             for path in sources() if path != ROOT / "transfg" / "run_files.py"
             for node in ast.walk(parsed(path))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and _names(node.value, name)]
    assert not found, f"{name!r} written outside transfg/run_files.py:\n" + "\n".join(found)


def test_eval_file_names_are_made_in_run_files_alone():
    found = [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
             for path in sources() if path != ROOT / "transfg" / "run_files.py"
             for node in ast.walk(parsed(path))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and re.match(r"eval-(\d|\*|$)", node.value)]
    assert not found, "eval file names made outside transfg/run_files.py:\n" + "\n".join(found)


def _names(literal: str, name: str) -> bool:
    """Whether a literal is or contains the name as a path part (not a word in a sentence)."""
    if " " in literal.strip():
        return False
    return re.search(rf"(^|[/\\]){re.escape(name)}($|[/\\])", literal) is not None


def test_the_outside_pattern():
    assert OUTSIDE.search("see ../shared/spec/transfg.md")
    assert OUTSIDE.search("(spec/statistics.md)")
    assert not OUTSIDE.search("beside nvcc (`<nvcc>/../include`)")
    assert not OUTSIDE.search("docs/statistics.md")


def test_the_name_check_tells_paths_from_sentences():
    assert _names("checkpoints/last.npz", "checkpoints/last.npz")
    assert _names("result.json", "result.json")
    assert _names("runs/abc/result.json", "result.json")
    assert not _names("the result.json of a run", "result.json")
    assert not _names("results.json", "result.json")


# ../shared, ../reference, shared/spec/..., the design notes kept beside the repository
OUTSIDE = re.compile(r"\.\./(shared|reference)|\bshared/|\bspec/(transfg|claims|statistics)\.md|"
                     r"\b(DESIGN|ENVIRONMENT|STYLE)\.md")


def test_docstrings_point_inside_the_repository():
    """Docstrings send a reader to docs/, README.md or the code, never to a folder beside the
    repository (a maintainer has only the repository)."""
    outside = []
    for path in sources():
        tree = parsed(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                text = ast.get_docstring(node) or ""
                for line in text.splitlines():
                    if OUTSIDE.search(line):
                        outside.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not outside, "docstrings pointing outside the repository:\n" + "\n".join(outside)


def test_docs_named_in_docstrings_exist():
    missing = set()
    for path in sources():
        for match in re.finditer(r"docs/[\w./-]+\.md", path.read_text()):
            if not (ROOT / match[0]).is_file():
                missing.add(f"{path.relative_to(ROOT)}: {match[0]}")
    assert not missing, "\n".join(sorted(missing))
