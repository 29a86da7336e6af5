"""The authors' code, github.com/TACJu/TransFG at the commit its COMMIT file names, for tests to
compare against. It is never copied into the project: it is imported from
`../shared/reference/TACJu-TransFG` beside the checkout, or from the folder TRANSFG_OFFICIAL
names; tests that need it skip, naming that variable, where neither exists.

What the official code imports and cannot have here gets a stand-in from
`transfg.official_compat.install()`, the same that real official runs get, each explained there:
ml_collections where it is missing, apex, torchvision (its transforms and the dataset helpers
`utils/dataset.py` imports: torchvision cannot be imported beside this CPU build of torch) and
tensorboard. The CPU mode (torch.device("cuda") redirected) is left out: the tests put the
official model on the CPU themselves.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

VARIABLE = "TRANSFG_OFFICIAL"
BESIDE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "TACJu-TransFG"
# The official code's top-level packages; generic names that must come from the checkout.
PACKAGES = ("models", "utils")


def checkout() -> Path:
    """The official checkout's folder, or a skip that says how to give one."""
    folder = Path(os.environ[VARIABLE]) if os.environ.get(VARIABLE) else BESIDE
    if not (folder / "train.py").is_file() or not (folder / "models" / "modeling.py").is_file():
        pytest.skip(f"the official TransFG code is not at {folder}: set {VARIABLE} to a checkout "
                    "of github.com/TACJu/TransFG (or lay ../shared/reference beside this one)")
    return folder


def commit(folder: Path) -> str:
    return (folder / "COMMIT").read_text().strip() if (folder / "COMMIT").is_file() else "?"


def deviations() -> list[str]:
    """The stand-ins this Python needs (installed once per process)."""
    from transfg import official_compat

    if not hasattr(deviations, "installed"):
        deviations.installed = official_compat.install(cpu=False)
    return deviations.installed


def load(name: str) -> ModuleType:
    """An official module by its name inside the checkout, e.g. "models.modeling"."""
    folder = checkout()
    deviations()
    for package in PACKAGES:
        loaded = sys.modules.get(package)
        where = getattr(loaded, "__path__", [None])[0] if loaded else None
        if loaded is not None and (where is None or Path(where).parent != folder):
            raise RuntimeError(f"a module named {package!r} from {where} is already imported; "
                               f"the official code's {package}/ cannot be imported beside it")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(name)
