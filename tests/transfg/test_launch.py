"""A training process started by a launcher never outlives it (transfg/launch.py)."""

import os
import subprocess
import sys
import textwrap

from transfg.launch import launcher_rank, parent_of


def test_the_rank_comes_from_whichever_launcher_set_it(monkeypatch):
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launcher_rank() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert launcher_rank() == 3


def test_a_process_handed_to_another_parent_while_starting_exits():
    """The grandparent check: a process whose parent was not started by the expected runner
    (as after its launcher died during start-up) exits at once, saying why."""
    script = textwrap.dedent("""
        import sys
        from transfg.launch import die_with_parent
        die_with_parent(grandparent=int(sys.argv[1]))
        print("still here")
    """)
    wrong = subprocess.run([sys.executable, "-c", script, "1"], capture_output=True, text=True)
    assert wrong.returncode == 1 and "the process that started it is gone" in wrong.stderr
    right = subprocess.run([sys.executable, "-c", script, str(os.getppid())],
                           capture_output=True, text=True)
    assert right.returncode == 0 and right.stdout == "still here\n"
    assert parent_of(os.getpid()) == os.getppid()
