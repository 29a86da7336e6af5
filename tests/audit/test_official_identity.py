"""The official checkout's identity in run ids and provenance: the commit of a clean git
checkout; otherwise (not a git checkout, a folder inside another repository, changed code) the
SHA-256 of its code files, so two different trees never share a run id and the same tree in
another folder keeps its ids. `audit plan` says which identity it used."""

import shutil
import subprocess
from pathlib import Path

import pytest
from protocol_text import protocol_text

from audit.cli import main
from audit.plan import Fingerprints, Inputs, plan
from audit.protocol import load
from audit.records import matrix
from audit.runner import work_items
from audit.store import RecordedFingerprints, Store
from transfg.official import identity

STANDIN = Path(__file__).parents[1] / "transfg" / "official_standin"

PROTOCOL = protocol_text("official-identity", "Run ids of the official code", train={},
                         frameworks=["official"], seeds=[0], arms={"transfg": {}})


@pytest.fixture
def protocol(tmp_path):
    path = tmp_path / "official-identity.toml"
    path.write_text(PROTOCOL)
    return load(path)


def checkout(folder: Path) -> Path:
    """A copy of the stand-in official code, with a models/ package as the real one has."""
    shutil.copytree(STANDIN, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "models").mkdir()
    (folder / "models" / "modeling.py").write_text("HIDDEN = 768\n")
    (folder / "README.md").write_text("not code\n")
    return folder


def run_id(protocol, folder: Path) -> str:
    (run,) = plan(protocol, Inputs(official=str(folder)), fingerprints=Fingerprints())
    return run.run_id


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c",
                           "user.email=t@example.org", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def git_checkout(folder: Path) -> Path:
    checkout(folder)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "the official code")
    return folder


def test_two_trees_differing_by_one_byte_get_different_run_ids(protocol, tmp_path):
    a, b = checkout(tmp_path / "a" / "TransFG"), checkout(tmp_path / "b" / "TransFG")
    code = (b / "models" / "modeling.py").read_bytes()
    (b / "models" / "modeling.py").write_bytes(code.replace(b"768", b"769"))
    assert identity(a).kind == identity(b).kind == "content"
    assert identity(a).reason == "not a git checkout" and identity(a).files == 2
    assert run_id(protocol, a) != run_id(protocol, b)


def test_the_same_tree_in_another_folder_keeps_its_run_id(protocol, tmp_path):
    a = checkout(tmp_path / "a" / "TransFG")
    copy = tmp_path / "elsewhere" / "official"
    shutil.copytree(a, copy)
    (copy / "models" / "__pycache__").mkdir()  # compiled files and notes are not code
    (copy / "models" / "__pycache__" / "modeling.cpython-311.pyc").write_bytes(b"\0")
    (copy / "README.md").write_text("my notes\n")
    assert identity(copy).value == identity(a).value
    assert run_id(protocol, copy) == run_id(protocol, a)
    # a file added, removed or renamed is another tree
    (copy / "models" / "configs.py").write_text("")
    assert run_id(protocol, copy) != run_id(protocol, a)
    (copy / "models" / "configs.py").rename(copy / "models" / "config.py")
    assert identity(copy).value != identity(a).value
    (copy / "models" / "config.py").unlink()
    assert run_id(protocol, copy) == run_id(protocol, a)


def test_a_clean_git_checkout_is_its_commit_and_changed_code_its_content(protocol, tmp_path):
    folder = git_checkout(tmp_path / "TransFG")
    commit = git(folder, "rev-parse", "HEAD")
    clean = identity(folder)
    assert (clean.kind, clean.value, clean.reason) == ("commit", commit, "clean git checkout")
    clean_id = run_id(protocol, folder)

    (folder / "README.md").write_text("edited, but not code\n")  # changes nothing that runs
    assert identity(folder).value == commit
    (folder / "models" / "modeling.py").write_text("HIDDEN = 769\n")
    dirty = identity(folder)
    assert dirty.kind == "content" and dirty.commit == commit
    assert dirty.reason == f"git checkout at {commit[:12]} with changed code: models/modeling.py"
    assert run_id(protocol, folder) != clean_id
    git(folder, "checkout", "--", "models/modeling.py")
    assert run_id(protocol, folder) == clean_id

    (folder / "models" / "extra.py").write_text("")  # untracked code runs too
    assert identity(folder).kind == "content" and run_id(protocol, folder) != clean_id
    (folder / ".gitignore").write_text("*.py\n")  # and so does ignored code
    assert "models/extra.py" in identity(folder).reason
    (folder / "models" / "extra.py").unlink()
    git(folder, "mv", "models/modeling.py", "models/model.py")  # a staged rename
    assert identity(folder).reason.endswith("models/model.py, models/modeling.py")


def test_a_folder_inside_another_repository_is_not_taken_for_that_commit(protocol, tmp_path):
    outer = tmp_path / "project"
    outer.mkdir()
    git(outer, "init", "-q")
    inner = checkout(outer / "TransFG")
    git(outer, "add", "-A")
    git(outer, "commit", "-q", "-m", "a project that carries a copy")
    found = identity(inner)
    assert found.kind == "content" and found.commit is None
    assert found.reason == f"not a git checkout: a folder inside the repository {outer.resolve()}"
    loose = checkout(tmp_path / "loose" / "TransFG")
    assert found.value == identity(loose).value
    assert run_id(protocol, inner) == run_id(protocol, loose)


def test_provenance_records_the_identity_the_run_id_was_made_from(protocol, tmp_path):
    folder = checkout(tmp_path / "TransFG")
    inputs = Inputs(official=str(folder))
    (row,) = matrix(Store(tmp_path / "runs"), [protocol], inputs)
    (item,) = work_items([row], retry_failed=False)
    recorded = item["fingerprints"]
    assert recorded["official_identity"] == identity(folder).to_dict()
    assert recorded["official_commit"] == identity(folder).value  # the value in the run id
    assert recorded["official_commit"].startswith("sha256:")
    from audit.plan import run_id as run_id_of

    again = run_id_of(row.run.spec, RecordedFingerprints(recorded, tmp_path / "p.json"))
    assert again == row.run.run_id  # what store.check_identity recomputes


def test_audit_plan_says_which_identity_it_used(protocol, tmp_path, capsys):
    loose = checkout(tmp_path / "loose")
    clean = git_checkout(tmp_path / "clean")
    for folder, expected in (
            (loose, f"official code: {loose}: content {identity(loose).value} of its 2 .py "
                    "files (not a git checkout)"),
            (clean, f"official code: {clean}: git commit {git(clean, 'rev-parse', 'HEAD')} "
                    "(clean git checkout)")):
        assert main(["plan", str(protocol.path), "--official", str(folder), "--store",
                     str(tmp_path / "runs")]) == 0
        assert expected in capsys.readouterr().out


def test_an_official_folder_without_the_code_is_refused_before_anything_runs(protocol, tmp_path,
                                                                             capsys):
    for command in ("plan", "run", "report"):
        assert main([command, str(protocol.path), "--official", str(tmp_path), "--store",
                     str(tmp_path / "runs")]) == 2
        assert f"--official {tmp_path}: no train.py there" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
