"""The official code as a reference: run a user's checkout of the authors' TransFG for one run.

`python -m transfg.train RUN_DIR` hands a spec with framework "official" to `run(run_dir)`, which
- refuses, naming the field, what the official code cannot do (it is TransFG on ViT-B_16 with a
  pretrained npz, the contrastive loss with alpha 0.4, the five datasets, fp32 or apex fp16);
- maps the spec onto the official command line (`train.py --learning_rate ... --split ...`), with
  the per-process batch times the accumulation as `--train_batch_size` (the official code divides
  it by `--gradient_accumulation_steps`), and the dataset under the official folder name;
- launches it under `torch.distributed.run` even on one GPU, through `transfg.official_compat`,
  which works around the code's portability breaks from the outside, without editing its files
  (validation calls `dist.barrier()`, which crashes a plain single-GPU run; `scipy.misc.imread`
  and numpy's removed aliases), stands in for missing packages (apex, torchvision,
  ml_collections, tensorboard) and, without CUDA, runs the code on the CPU with gloo; every
  stand-in and the CPU are recorded as deviations in result.json;
- streams its log into `log.txt`, turns the training description lines and "Valid Accuracy" lines
  into metrics.jsonl and status.json, and writes `result.json` in the shape `transfg.train`
  writes (final and best-of-evaluations accuracy, every evaluation) when the code ends cleanly.

What cannot be made the same, recorded in result.json under "deviations": the official code
seeds its initialisation, dropout and augmentation from one seed (ours: `seeds.init`), its
training order is the same for every seed and every epoch (DistributedSampler with its own seed 0
and no set_epoch), it pads the test set to a multiple of the process count
and averages per-process accuracies (the counts in result.json are then derived from the
accuracy), it cannot resume (a restarted run starts again from step 0), and it writes no
per-example predictions. The official code divides its accuracy by the visible GPU count: the
runner must expose exactly `devices` GPUs to the run (CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from transfg.config import ModelConfig
from transfg.data.readers import dataset_spec, read_split
from transfg.git import git
from transfg.official_compat import RECORD_VARIABLE
from transfg.run_files import (
    LOG,
    METRICS,
    OFFICIAL_COMPAT,
    OFFICIAL_DATA,
    OFFICIAL_OUTPUT,
    RESULT,
    MetricsLog,
    read_json,
    read_metrics,
    write_json,
    write_status,
)
from transfg.spec import RunSpec, SpecError, read_spec

DATASET_NAMES = {"cub": "CUB_200_2011", "cars": "car", "dogs": "dog", "nabirds": "nabirds",
                 "inat2017": "INat2017"}
VIT_B16 = {"patch_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12,
           "num_layers": 12, "dropout_rate": 0.1, "attention_dropout_rate": 0.0}

DEVIATIONS = [
    "one seed (seeds.init) drives the official code's initialisation, dropout and augmentation",
    "training order: the same for every seed and every epoch (DistributedSampler's own seed 0, "
    "no set_epoch)",
    "test set padded to a multiple of the process count; accuracy is the mean over processes",
    "no resume: an interrupted run starts again from step 0",
]

STEP_LINE = re.compile(r"Training \((\d+) / (\d+) Steps\) \(loss=([-+0-9.eEnaif]+)\)")
EVAL_STEP = re.compile(r"Global Steps: (\d+)")
EVAL_ACCURACY = re.compile(r"Valid Accuracy: ([0-9.]+)")
BEST_ACCURACY = re.compile(r"Best Accuracy: \s*([0-9.]+)")


def unsupported(spec: RunSpec) -> list[str]:
    """Why the official code cannot run this spec (empty when it can)."""
    m, t, why = spec.model, spec.train, []
    if spec.dataset not in DATASET_NAMES:
        why.append(f"dataset={spec.dataset!r}: the official code knows only "
                   f"{', '.join(DATASET_NAMES)} (it hard-codes their class counts)")
    if m.variant != "transfg":
        why.append(f"model.variant={m.variant!r}: the official code trains TransFG only")
    for name, value in VIT_B16.items():
        if getattr(m, name) != value:
            why.append(f"model.{name}={getattr(m, name)!r}: the official ViT-B_16 has {value}")
    if not m.contrastive or m.alpha != 0.4:
        why.append(f"model.contrastive={m.contrastive}, model.alpha={m.alpha}: the official code "
                   "always adds the contrastive loss with alpha 0.4")
    if m.posemb_resize != ModelConfig.posemb_resize:
        why.append(f"model.posemb_resize={m.posemb_resize!r}: the official code uses scipy zoom")
    if not spec.weights:
        why.append("weights=None: the official code always loads a pretrained ViT-B_16 .npz")
    if spec.part_layer_init != "random":
        why.append("part_layer_init='pretrained': the official code leaves part_layer random")
    if t.precision == "bf16":
        why.append("train.precision='bf16': the official code has fp32 and apex fp16 only")
    if t.steps % t.eval_every:
        why.append(f"train.steps={t.steps} is not a multiple of train.eval_every={t.eval_every}: "
                   "the official code evaluates only every eval_every steps, so its final-step "
                   "accuracy would be missing")
    if spec.subset:
        why.append(f"subset={spec.subset}: the official code reads whole datasets")
    if spec.dataset in DATASET_NAMES:
        data = dataset_spec(spec.dataset)
        if m.image_size != data.crop:
            why.append(f"model.image_size={m.image_size}: the official code's transforms for "
                       f"{spec.dataset} resize to {data.resize} and crop {data.crop}, whatever "
                       "--img_size says")
        if m.num_classes != data.num_classes:
            why.append(f"model.num_classes={m.num_classes}: the official code hard-codes "
                       f"{data.num_classes} classes for {spec.dataset}")
    default_aa = dataset_spec(spec.dataset).autoaugment if spec.dataset in DATASET_NAMES else None
    if t.autoaugment is not None and t.autoaugment != default_aa:
        why.append(f"train.autoaugment={t.autoaugment}: the official code's choice for "
                   f"{spec.dataset} is fixed ({default_aa})")
    return why


# ------------------------------------------------------------------------------ identity
# What identifies the official code a run used, in its run id and provenance: the commit of a
# clean git checkout, else the content of the files it runs. Those files are its Python sources:
# every *.py file under the checkout, folders named .git or __pycache__ left out (the code reads
# no other file of its own: the weights and the data are fingerprinted apart).

CODE_SUFFIX = ".py"
SKIPPED_FOLDERS = (".git", "__pycache__")


@dataclass(frozen=True)
class Identity:
    """The official checkout's identity: `value` goes into run ids (audit/plan.py)."""

    value: str  # the commit (40 hex digits), or "sha256:<64 hex digits>" of the code's content
    kind: str  # "commit" or "content"
    reason: str  # why this kind: clean checkout, not a git checkout, changes listed
    files: int  # the *.py files hashed (0 for a commit)
    commit: str | None = None  # the checkout's commit, also when dirty

    def describe(self) -> str:
        if self.kind == "commit":
            return f"git commit {self.value} ({self.reason})"
        return (f"content {self.value} of its {self.files} {CODE_SUFFIX} files ({self.reason})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def code_files(checkout: str | Path) -> list[str]:
    """The files the official code runs, as sorted relative POSIX paths."""
    root = Path(checkout)
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        relative = Path(folder).relative_to(root)
        found += [(relative / name).as_posix() for name in files if name.endswith(CODE_SUFFIX)]
    return sorted(found)


def content_hash(checkout: str | Path) -> tuple[str, int]:
    """("sha256:<hex>", files): each code file's relative path, length and bytes, in path order;
    the same tree in any folder gives the same hash, a byte changed, a file added, removed or
    renamed another."""
    root, digest = Path(checkout), hashlib.sha256()
    files = code_files(root)
    for name in files:
        data = (root / name).read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return f"sha256:{digest.hexdigest()}", len(files)


def _changed_code(checkout: Path) -> list[str] | None:
    """The code files that differ from the checkout's commit (modified, staged, deleted, renamed,
    untracked or ignored), or None when git cannot tell."""
    status = git(checkout, "status", "--porcelain=v1", "-z", "--untracked-files=all",
                  "--ignored=matching")
    if status is None:
        return None
    entries, changed = status.split("\0"), []
    position = 0
    while position < len(entries):
        entry = entries[position]
        position += 1
        if len(entry) < 4:
            continue
        paths = [entry[3:]]
        if entry[0] in "RC":  # a rename or copy: the original path follows
            paths.append(entries[position])
            position += 1
        changed += [p for p in paths if p.endswith(CODE_SUFFIX)
                    and not set(Path(p).parts) & set(SKIPPED_FOLDERS)]
    return sorted(set(changed))


def identity(checkout: str | Path) -> Identity:
    """The commit when `checkout` is the top of a git checkout whose code files are exactly the
    commit's; otherwise (not a git checkout, a folder inside another repository, or code changed)
    the content hash of its code files."""
    root = Path(checkout).resolve()
    if not root.is_dir():
        raise SpecError(f"official_checkout={str(checkout)!r}: no such folder (clone "
                        "github.com/TACJu/TransFG and give its folder)")
    top = git(root, "rev-parse", "--show-toplevel")
    commit = git(root, "rev-parse", "--verify", "HEAD")
    commit = commit.strip() if commit else None
    changed = None
    if top is None or commit is None:
        reason = "not a git checkout"
    elif Path(top.strip()).resolve() != root:
        reason, commit = f"not a git checkout: a folder inside the repository {top.strip()}", None
    else:
        changed = _changed_code(root)
        if changed == []:
            return Identity(commit, "commit", "clean git checkout", 0, commit)
        changed = changed or []  # None: git could not tell
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5
                                          else "")
        reason = (f"git checkout at {commit[:12]} with changed code: {shown}" if changed else
                  f"git checkout at {commit[:12]} whose changes git cannot list")
    value, files = content_hash(root)
    return Identity(value, "content", reason, files, commit)


def official_args(spec: RunSpec, run_dir: Path) -> list[str]:
    """The official train.py's command line for this spec."""
    m, t = spec.model, spec.train
    args = [
        "--name", "run", "--dataset", DATASET_NAMES[spec.dataset],
        "--data_root", str(run_dir / OFFICIAL_DATA), "--model_type", "ViT-B_16",
        "--pretrained_dir", str(Path(str(spec.weights)).resolve()),  # check() requires it
        "--output_dir", str(run_dir / OFFICIAL_OUTPUT), "--img_size", str(m.image_size),
        "--train_batch_size", str(t.batch_size * t.accumulation),
        "--gradient_accumulation_steps", str(t.accumulation),
        "--eval_batch_size", str(t.eval_batch_size), "--eval_every", str(t.eval_every),
        "--learning_rate", repr(t.learning_rate), "--weight_decay", repr(t.weight_decay),
        "--num_steps", str(t.steps), "--decay_type", t.decay,
        "--warmup_steps", str(t.warmup_steps), "--max_grad_norm", repr(t.max_grad_norm),
        "--seed", str(spec.seeds.init), "--smoothing_value", repr(m.smoothing),
        "--split", m.split, "--slide_step", str(m.slide_step),
    ]
    if t.precision == "fp16":
        args.append("--fp16")
    return args


def command(spec: RunSpec, run_dir: Path) -> list[str]:
    """torch.distributed.run (one process per device, even for one: see the module docstring)
    around the compatibility shim around the official train.py."""
    python = spec.official_python or sys.executable
    return [python, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={spec.devices}", "-m", "transfg.official_compat",
            str(Path(str(spec.official_checkout)).resolve()),  # RunSpec requires it for official
            *official_args(spec, run_dir)]


def check(spec: RunSpec) -> None:
    why = unsupported(spec)
    checkout = Path(spec.official_checkout or "")
    if not (checkout / "train.py").is_file():
        why.append(f"official_checkout={spec.official_checkout!r}: no train.py there (clone "
                   "github.com/TACJu/TransFG and give its folder)")
    if why:
        raise SpecError("the official code cannot run this spec: " + "; ".join(why))


class LogReader:
    """Turns the official output (tqdm descriptions separated by carriage returns, logging lines)
    into metric rows and evaluations as it arrives."""

    def __init__(self, metrics: MetricsLog, run_dir: Path, effective_batch: int):
        self.metrics, self.run_dir, self.batch = metrics, run_dir, effective_batch
        self.step = 0
        self.eval_step: int | None = None
        self.best: float | None = None
        self.evaluations: list[dict] = []
        self.last = (time.monotonic(), 0)
        self.pending = ""  # a line cut by a chunk boundary, completed by the next chunk

    def feed(self, text: str, final: bool = False) -> None:
        *lines, self.pending = re.split(r"[\r\n]", self.pending + text)
        if final:
            lines, self.pending = [*lines, self.pending], ""
        for line in lines:
            if match := STEP_LINE.search(line):
                self.on_step(int(match[1]), float(match[3]))
            elif match := EVAL_STEP.search(line):
                self.eval_step = int(match[1])
            elif (match := EVAL_ACCURACY.search(line)) and self.eval_step is not None:
                self.evaluations.append({"step": self.eval_step, "accuracy": float(match[1])})
                self.metrics.append({"step": self.eval_step, "eval_accuracy": float(match[1])})
            elif match := BEST_ACCURACY.search(line):
                self.best = float(match[1])

    def on_step(self, step: int, loss: float) -> None:
        if step <= self.step:
            return
        now = time.monotonic()
        seconds, before = now - self.last[0], self.last[1]
        rate = self.batch * (step - before) / seconds if seconds > 0 else float("nan")
        self.metrics.append({"step": step, "loss": loss, "images_per_s": rate})
        if step // 100 != self.step // 100:
            write_status(self.run_dir, "running", step)
        self.step, self.last = step, (now, step)


def compat_deviations(path: Path) -> list[str]:
    """The stand-ins and the CPU mode transfg.official_compat installed (it writes them first)."""
    try:
        return list(read_json(path)["deviations"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return ["transfg.official_compat recorded nothing: unknown whether stand-ins ran"]


def link_dataset(spec: RunSpec, run_dir: Path) -> None:
    """The official code reads `{data_root}/{its dataset name}`: a folder with one link."""
    folder = run_dir / OFFICIAL_DATA
    folder.mkdir(exist_ok=True)
    link = folder / DATASET_NAMES[spec.dataset]
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(spec.data_root).resolve(), target_is_directory=True)


def run(run_dir: Path) -> dict:
    """Run the official code for RUN_DIR/spec.json; returns result.json's content."""
    run_dir = Path(run_dir).resolve()  # the official code runs inside it: relative paths break
    spec = read_spec(run_dir)
    check(spec)
    for stale in (RESULT, METRICS):  # no resume: every start is a fresh run
        (run_dir / stale).unlink(missing_ok=True)
    link_dataset(spec, run_dir)
    test_images = len(read_split(spec.dataset, spec.data_root, "test"))
    train_images = len(read_split(spec.dataset, spec.data_root, "train"))
    write_status(run_dir, "running", 0)
    started = time.monotonic()
    reader = LogReader(MetricsLog(run_dir / METRICS, 0), run_dir, spec.effective_batch)
    compat_record = run_dir / OFFICIAL_COMPAT
    compat_record.unlink(missing_ok=True)
    code = run_logged(spec, run_dir, reader, compat_record)
    failure = (f"the official code exited with status {code}; see {LOG}" if code != 0 else
               f"the official code ended without an evaluation in its log; see {LOG}"
               if not reader.evaluations else None)
    if failure is not None:
        write_status(run_dir, "failed", reader.step, failure)
        raise RuntimeError(failure)
    result = official_result(spec, run_dir, reader, test_images, train_images,
                             time.monotonic() - started, compat_record)
    write_json(run_dir / RESULT, result)
    write_status(run_dir, "finished", spec.train.steps)
    return result


def run_logged(spec: RunSpec, run_dir: Path, reader: LogReader, compat_record: Path) -> int:
    """Start the official code (`command`) in the run folder and feed its output, as it comes,
    into log.txt and `reader`; its exit status."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{RECORD_VARIABLE: str(compat_record)})
    with open(run_dir / LOG, "a") as log:
        log.write("$ " + " ".join(command(spec, run_dir)) + "\n")
        log.flush()
        process = subprocess.Popen(command(spec, run_dir), cwd=run_dir, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        stdout = cast(io.BufferedReader, process.stdout)  # stdout=PIPE: a buffered pipe
        try:
            while chunk := stdout.read1(65536):
                text = chunk.decode(errors="replace")
                log.write(text)
                log.flush()
                reader.feed(text)
        finally:
            code = process.wait()
            reader.feed("", final=True)
            reader.metrics.close()
    return code


def official_result(spec: RunSpec, run_dir: Path, reader: LogReader, test_images: int,
                    train_images: int, wall_seconds: float, compat_record: Path) -> dict:
    """result.json's content: the evaluations the log reported (counts derived from the
    accuracies), the throughput in metrics.jsonl, the deviations from the paper's setting."""
    rates = [r["images_per_s"] for r in read_metrics(run_dir / METRICS)
             if "loss" in r and math.isfinite(r["images_per_s"])]
    evals = []
    for row in reader.evaluations:
        correct = round(row["accuracy"] * test_images)
        evals.append({**row, "correct": correct, "total": test_images})
    final = evals[-1]
    best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
    return {"final_accuracy": final["accuracy"], "final_step": final["step"],
            "best_accuracy": best["accuracy"], "best_step": best["step"],
            "official_best_accuracy": reader.best,
            "correct": final["correct"], "test_images": test_images,
            "correct_from_accuracy": True, "train_images": train_images, "evaluations": evals,
            "effective_batch": spec.effective_batch, "steps": spec.train.steps,
            "wall_seconds_this_session": wall_seconds,
            "images_per_s": float(np.median(rates)) if rates else None,
            "deviations": DEVIATIONS + compat_deviations(compat_record)}
