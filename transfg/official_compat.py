"""`python -m transfg.official_compat CHECKOUT ARGS...`: run the official train.py in this process
with its portability breaks worked around from the outside (transfg/official.py launches it under
torch.distributed.run, one process per device). Nothing in the checkout is edited:

- numpy's removed aliases (`np.int`, `np.float`, `np.bool`, `np.object`, `np.str`, `np.long`) are
  set back to the builtins they stood for;
- `scipy.misc.imread` (removed in scipy 1.2; CUB's reader uses it) reads with PIL into an array,
  as it did (grayscale stays 2-D, the reader expands it);
- without NVIDIA apex, a stand-in `apex` whose DistributedDataParallel is torch's (apex's with
  `gradient_predivide_factor` = world size also averages the gradients) and whose `amp` refuses
  with a clear message (fp16 O2 needs the real apex);
- `--local_rank` from torchrun's LOCAL_RANK, so the code takes its distributed path even on one
  GPU (its validation calls `dist.barrier()` unconditionally and crashes a plain single-GPU run).
"""

from __future__ import annotations

import os
import runpy
import sys
import types
from pathlib import Path

NUMPY_ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "str": str,
                 "long": int}


def restore_numpy_aliases() -> None:
    import numpy as np

    for name, value in NUMPY_ALIASES.items():
        try:
            getattr(np, name)
        except AttributeError:
            setattr(np, name, value)


def imread(path, *args, **kwargs):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def restore_scipy_imread() -> None:
    import scipy

    try:
        import scipy.misc as misc
    except ImportError:
        misc = types.ModuleType("scipy.misc")
        sys.modules["scipy.misc"] = misc
        scipy.misc = misc
    if not hasattr(misc, "imread"):
        misc.imread = imread


class _NoAmp(types.ModuleType):
    def __getattr__(self, name):
        raise RuntimeError("fp16 in the official code needs NVIDIA apex (amp O2), which is not "
                           "installed in this Python; install apex or run with precision fp32")


def apex_stand_in() -> None:
    try:
        import apex

        del apex
        return
    except ImportError:
        pass
    import torch

    def distributed_data_parallel(module, message_size=None, gradient_predivide_factor=None,
                                  **_):
        return torch.nn.parallel.DistributedDataParallel(module)

    apex = types.ModuleType("apex")
    apex.amp = _NoAmp("apex.amp")
    apex.parallel = types.ModuleType("apex.parallel")
    apex.parallel.DistributedDataParallel = distributed_data_parallel
    sys.modules.update({"apex": apex, "apex.amp": apex.amp, "apex.parallel": apex.parallel})


def official_argv(checkout: Path, args: list[str]) -> list[str]:
    argv = [str(checkout / "train.py"), *args]
    if "LOCAL_RANK" in os.environ and not any(a.startswith("--local_rank") for a in args):
        argv += ["--local_rank", os.environ["LOCAL_RANK"]]
    return argv


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.exit("usage: python -m transfg.official_compat CHECKOUT [train.py arguments...]")
    checkout = Path(argv[0]).resolve()
    restore_numpy_aliases()
    restore_scipy_imread()
    apex_stand_in()
    sys.path.insert(0, str(checkout))
    sys.argv = official_argv(checkout, argv[1:])
    runpy.run_path(str(checkout / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
