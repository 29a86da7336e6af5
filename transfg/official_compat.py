"""`python -m transfg.official_compat CHECKOUT ARGS...`: run the official train.py in this process
with its portability breaks worked around from the outside (transfg/official.py launches it under
torch.distributed.run, one process per device). Nothing in the checkout is edited, and the same
`install()` lets the tests import the official modules (tests/official_code.py).

Always, because the code predates today's libraries:
- numpy's removed aliases (`np.int`, `np.float`, `np.bool`, `np.object`, `np.str`, `np.long`) are
  set back to the builtins they stood for;
- `scipy.misc.imread` (removed in scipy 1.2; CUB's reader uses it) reads with PIL into an array,
  as it did (grayscale stays 2-D, the reader expands it);
- `--local_rank` from torchrun's LOCAL_RANK, so the code takes its distributed path even on one
  GPU (its validation calls `dist.barrier()` unconditionally and crashes a plain single-GPU run).

Only where a package is missing, a stand-in (`STANDINS`), each recorded as a deviation:
- `ml_collections`: its ConfigDict is a dict with attribute access, all the configs use;
- `apex`: DistributedDataParallel is torch's (apex's with `gradient_predivide_factor` = world size
  also averages the gradients); `amp` refuses with a clear message (fp16 O2 needs the real apex);
- `torchvision` (which cannot be imported beside a CPU build of torch from another index): the
  seven transforms the official loaders use, written after torchvision's semantics for PIL images
  (the same PIL resampling and the same torch random draws, in the same order), and the few
  dataset helpers `utils/dataset.py` imports;
- `torch.utils.tensorboard` (needs the tensorboard package): a writer that writes nothing.

Only where CUDA is unavailable: the code runs on the CPU with the gloo backend:
`torch.cuda.set_device` does nothing, `torch.device("cuda", i)` means the CPU, and
`torch.cuda.device_count()` is the process count (the official code divides its summed accuracy
by it).

What is installed is written, as deviations, to the file TRANSFG_OFFICIAL_RECORD names.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import types
import warnings
from pathlib import Path
from typing import Any

NUMPY_ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "str": str,
                 "long": int}
RECORD_VARIABLE = "TRANSFG_OFFICIAL_RECORD"


def restore_numpy_aliases() -> None:
    import numpy as np

    for name, value in NUMPY_ALIASES.items():
        with warnings.catch_warnings():  # numpy warns while it says the alias is gone
            warnings.simplefilter("ignore")
            present = hasattr(np, name)
        if not present:
            setattr(np, name, value)


def imread(path, *args, **kwargs):
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def restore_scipy_imread() -> None:
    import scipy

    try:
        with warnings.catch_warnings():  # "scipy.misc is deprecated": we are here to restore it
            warnings.simplefilter("ignore", DeprecationWarning)
            import scipy.misc as misc
    except ImportError:
        misc = types.ModuleType("scipy.misc")
        sys.modules["scipy.misc"] = misc
        scipy.misc = misc
    if not hasattr(misc, "imread"):
        misc.imread = imread


def importable(name: str) -> str | None:
    """None when `name` imports; otherwise why not (one line)."""
    try:
        __import__(name)
        return None
    except Exception as error:  # a broken install (torchvision's missing operators) counts too
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def module(name: str, **attributes) -> types.ModuleType:
    """A stand-in module registered under `name` (and as an attribute of its parent)."""
    stand_in = types.ModuleType(name)
    stand_in.__dict__.update(attributes)
    sys.modules[name] = stand_in
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, stand_in)
    return stand_in


# --- ml_collections ---

class ConfigDict(dict):
    """ml_collections.ConfigDict as the official configs use it: items and attributes alike."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def ml_collections_stand_in() -> None:
    module("ml_collections", ConfigDict=ConfigDict)


# --- apex ---

class _NoAmp(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):  # introspection (inspect walks sys.modules) is not a use
            raise AttributeError(name)
        raise RuntimeError("fp16 in the official code needs NVIDIA apex (amp O2), which is not "
                           "installed in this Python; install apex or run with precision fp32")


def apex_stand_in() -> None:
    import torch

    def distributed_data_parallel(module, message_size=None, gradient_predivide_factor=None,
                                  **_):
        return torch.nn.parallel.DistributedDataParallel(module)

    amp = _NoAmp("apex.amp")
    module("apex", amp=amp)
    sys.modules["apex.amp"] = amp
    module("apex.parallel", DistributedDataParallel=distributed_data_parallel)


# --- torchvision: what utils/data_utils.py and utils/dataset.py import ---

class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image


def _size(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


class Resize:
    """To (height, width) exactly; torchvision passes a PIL image to PIL's resize."""

    def __init__(self, size, interpolation=2):  # 2: PIL's BILINEAR, torchvision's default
        self.size, self.interpolation = _size(size), interpolation

    def __call__(self, image):
        if isinstance(self.size, tuple) and len(self.size) == 1:
            raise ValueError("the stand-in Resize takes (height, width) only")
        height, width = self.size
        return image.resize((width, height), self.interpolation)


class RandomCrop:
    """torchvision's get_params: top, then left, each from torch.randint (none when the image is
    exactly the crop)."""

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, image):
        import torch

        width, height = image.size
        th, tw = self.size
        if (height, width) == (th, tw):
            return image
        top = torch.randint(0, height - th + 1, size=(1,)).item()
        left = torch.randint(0, width - tw + 1, size=(1,)).item()
        return image.crop((left, top, left + tw, top + th))


class CenterCrop:
    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, image):
        width, height = image.size
        th, tw = self.size
        top, left = round((height - th) / 2.0), round((width - tw) / 2.0)
        return image.crop((left, top, left + tw, top + th))


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, image):
        import torch
        from PIL import Image

        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if torch.rand(1) < self.p else image


class ToTensor:
    """A PIL image (H, W, C) of bytes -> a float tensor (C, H, W) in [0, 1]."""

    def __call__(self, image):
        import numpy as np
        import torch

        array = np.array(image, dtype=np.uint8, copy=True)
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        import torch

        mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return (tensor - mean) / std


class VisionDataset:
    """torchvision.datasets.VisionDataset: the attributes INat2017 sets through it."""

    def __init__(self, root, transforms=None, transform=None, target_transform=None):
        self.root = os.path.expanduser(root) if isinstance(root, str) else root
        self.transform, self.target_transform = transform, target_transform
        self.transforms = transforms


def default_loader(path):
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def verify_str_arg(value, arg=None, valid_values=None, custom_msg=None):
    if valid_values is not None and value not in valid_values:
        raise ValueError(custom_msg or f"Unknown value '{value}' for argument {arg}. "
                                       f"Valid values are {{{', '.join(valid_values)}}}.")
    return value


def list_dir(root, prefix=False):
    root = os.path.expanduser(root)
    names = sorted(p for p in os.listdir(root) if os.path.isdir(os.path.join(root, p)))
    return [os.path.join(root, n) for n in names] if prefix else names


def check_integrity(fpath, md5=None):
    return os.path.isfile(fpath) and md5 is None


def no_download(*args, **kwargs):
    raise RuntimeError("the torchvision stand-in downloads nothing: give the dataset's folder")


def torchvision_stand_in() -> None:
    module("torchvision")
    module("torchvision.transforms", Compose=Compose, Resize=Resize, RandomCrop=RandomCrop,
           CenterCrop=CenterCrop, RandomHorizontalFlip=RandomHorizontalFlip, ToTensor=ToTensor,
           Normalize=Normalize)
    module("torchvision.datasets", VisionDataset=VisionDataset)
    module("torchvision.datasets.folder", default_loader=default_loader)
    module("torchvision.datasets.utils", download_url=no_download, extract_archive=no_download,
           list_dir=list_dir, check_integrity=check_integrity, verify_str_arg=verify_str_arg)


# --- torch.utils.tensorboard ---

class SummaryWriter:
    def __init__(self, *args, **kwargs):
        pass

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


def tensorboard_stand_in() -> None:
    import torch.utils  # noqa: F401  (the parent the stand-in hangs from)

    module("torch.utils.tensorboard", SummaryWriter=SummaryWriter)


# Package -> (stand-in, what the run loses with it).
STANDINS = {
    "ml_collections": (ml_collections_stand_in, "its ConfigDict as a dict with attributes"),
    "apex": (apex_stand_in, "torch's DistributedDataParallel; no fp16 (apex amp)"),
    "torchvision": (torchvision_stand_in, "its seven transforms rewritten after torchvision's "
                                          "semantics for PIL images, and its dataset helpers"),
    "torch.utils.tensorboard": (tensorboard_stand_in, "no tensorboard log"),
}


# --- the CPU ---

class _CPUDeviceType(type):
    """torch.device for code that asks for CUDA where there is none: "cuda" means the CPU, and
    isinstance() still answers for real devices."""

    real: Any = None

    def __instancecheck__(cls, instance):
        return isinstance(instance, cls.real)

    def __call__(cls, *args, **kwargs):
        device = cls.real(*args, **kwargs)
        return cls.real("cpu") if device.type == "cuda" else device


def cuda_on_cpu(world_size: int) -> None:
    import torch
    import torch.distributed as dist

    init_process_group = dist.init_process_group

    def gloo_process_group(*args, backend=None, **kwargs):
        return init_process_group("gloo", *args[1:], **kwargs)

    _CPUDeviceType.real = torch.device
    setattr(torch, "device", _CPUDeviceType("device", (), {}))  # noqa: B010 (a stand-in type)
    torch.cuda.set_device = lambda device: None
    torch.cuda.device_count = lambda: world_size
    dist.init_process_group = gloo_process_group
    torch.distributed.init_process_group = gloo_process_group


def install(cpu: bool = False, world_size: int = 1) -> list[str]:
    """Every workaround this Python needs to run or import the official code; returns the
    deviations (one line each, empty when the code runs as its authors ran it, apart from the
    unconditional fixes of the module docstring)."""
    restore_numpy_aliases()
    restore_scipy_imread()
    deviations = []
    for name, (stand_in, loses) in STANDINS.items():
        why = importable(name)
        if why is not None:
            stand_in()
            deviations.append(f"stand-in for {name} ({why}): {loses}")
    if cpu:
        cuda_on_cpu(world_size)
        deviations.append("no CUDA: the official code ran on the CPU with the gloo backend "
                          "(torch.device('cuda') and torch.cuda.set_device redirected)")
    return deviations


def record(deviations: list[str]) -> None:
    """Write the deviations where transfg/official.py reads them (the first process only)."""
    path = os.environ.get(RECORD_VARIABLE)
    if path and os.environ.get("RANK", "0") == "0":
        temporary = Path(f"{path}.tmp{os.getpid()}")
        temporary.write_text(json.dumps({"deviations": deviations}))
        temporary.replace(path)


def official_argv(checkout: Path, args: list[str]) -> list[str]:
    argv = [str(checkout / "train.py"), *args]
    if "LOCAL_RANK" in os.environ and not any(a.startswith("--local_rank") for a in args):
        argv += ["--local_rank", os.environ["LOCAL_RANK"]]
    return argv


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.exit("usage: python -m transfg.official_compat CHECKOUT [train.py arguments...]")
    checkout = Path(argv[0]).resolve()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    record(install(cpu=not cuda_available(), world_size=world_size))
    sys.path.insert(0, str(checkout))
    sys.argv = official_argv(checkout, argv[1:])
    runpy.run_path(str(checkout / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
