"""Verify a dataset folder: annotation files, counts, labels, and that every image decodes.

Every problem is collected (nothing stops at the first); the report says what was expected.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .fingerprint import fingerprint
from .readers import SPLITS, Problems, Sample, collect_split, dataset_spec
from .transforms import ImageError, decode


@dataclass
class CheckReport:
    dataset: str
    title: str
    root: str
    counts: dict[str, int]
    expected_counts: dict[str, int]
    num_classes: int
    classes_seen: int
    image_modes: dict[str, int] = field(default_factory=dict)  # before conversion to RGB
    decoded: bool = False
    fingerprint: dict | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _image_mode(sample: Sample) -> tuple[Sample, str | None, str | None]:
    """(sample, mode as stored, error): decoded exactly as training will decode it."""
    try:
        return sample, decode(sample.path)[1], None
    except ImageError as error:
        return sample, None, error.reason


class Progress:
    """One updating line on stderr: done/total, images/s, time left (at most twice a second)."""

    def __init__(self, label: str, stream):
        self.label, self.stream = label, stream
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (total - done) / rate if rate > 0 else 0
        end = "\n" if done == total else ""
        self.stream.write(f"\r{self.label}: {done}/{total} images, {rate:.0f}/s, "
                          f"{left:.0f} s left   {end}")
        self.stream.flush()


def check_dataset(name: str, root: str | Path, decode: bool = True, content_hash: bool = False,
                  workers: int = 8, progress_stream=None) -> CheckReport:
    spec = dataset_spec(name)
    root = Path(root)
    problems = Problems(spec.title)
    splits: dict[str, list[Sample]] = {
        split: collect_split(name, root, split, problems) for split in SPLITS}
    report = CheckReport(spec.name, spec.title, str(root), {s: len(v) for s, v in splits.items()},
                         dict(spec.counts), spec.num_classes,
                         len({x.label for samples in splits.values() for x in samples}))
    structural = bool(problems.items)  # an unreadable annotation makes the counts meaningless
    for split, samples in splits.items():
        if not structural and len(samples) != spec.counts[split]:
            problems.add(root, None, f"{split} split has {len(samples)} images, "
                                     f"expected {spec.counts[split]} for the full {spec.title}")
    if not structural and report.classes_seen != spec.num_classes:
        problems.add(root, None, f"{report.classes_seen} classes have images, expected "
                                 f"{spec.num_classes}")
    everything = [x for samples in splits.values() for x in samples]
    if decode and everything:
        progress = Progress("decoding", progress_stream) if progress_stream else None
        modes: Counter = Counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, (sample, mode, error) in enumerate(pool.map(_image_mode, everything), 1):
                if error:
                    problems.add(sample.path, None, error)
                else:
                    modes[mode] += 1
                if progress:
                    progress(done, len(everything))
        report.image_modes, report.decoded = dict(modes), True
    else:
        missing = [x for x in everything if not x.path.is_file()]
        for sample in missing:
            problems.add(sample.path, None, "missing image file")
    if not problems.items:
        hashing = Progress("hashing", progress_stream) if progress_stream and content_hash \
            else None
        report.fingerprint = fingerprint(root, splits, content=content_hash, progress=hashing)
    # Both splits read the same annotation files: report each problem once.
    report.problems = list(dict.fromkeys(str(p) for p in problems.items))
    return report


def format_report(report: CheckReport) -> str:
    lines = [f"{report.title} at {report.root}"]
    for split in SPLITS:
        lines.append(f"  {split:<5} {report.counts[split]:>7} images "
                     f"(full dataset: {report.expected_counts[split]})")
    lines.append(f"  classes with images: {report.classes_seen} of {report.num_classes}")
    if report.decoded:
        modes = ", ".join(f"{mode} {n}" for mode, n in sorted(report.image_modes.items()))
        lines.append(f"  decoded: {modes or 'none'} (all read as RGB)")
    if report.fingerprint:
        fp = report.fingerprint
        lines.append(f"  fingerprint ({fp['kind']}): sha256:{fp['sha256']}")
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  {p}" for p in report.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)

