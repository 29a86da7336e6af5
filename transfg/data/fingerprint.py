"""Dataset fingerprints for provenance: what exactly a run was trained and tested on.

- fast (always): SHA-256 over every sample's (split, path relative to the root, label, file size),
  in reader order. It changes when a file is added, removed, relabelled, moved or resized, and
  costs one stat() per file.
- content (on request): the same, with each file's SHA-256 in place of its size; it also
  catches a file edited in place at the same size. Reads every byte.
Paths are relative to the root, so the same data in another folder has the same fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .readers import Sample


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(root: str | Path, splits: Mapping[str, Sequence[Sample]], content: bool = False,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """{"kind": "fast"|"content", "sha256": hex, "counts": {split: n}, "bytes": total}."""
    root = Path(root)
    digest = hashlib.sha256()
    total_bytes, done = 0, 0
    total = sum(len(samples) for samples in splits.values())
    for split, samples in splits.items():
        for sample in samples:
            size = sample.path.stat().st_size
            total_bytes += size
            identity = file_sha256(sample.path) if content else str(size)
            relative = sample.path.relative_to(root).as_posix()
            digest.update(f"{split}\t{relative}\t{sample.label}\t{identity}\n".encode())
            done += 1
            if progress is not None:
                progress(done, total)
    return {"kind": "content" if content else "fast", "sha256": digest.hexdigest(),
            "counts": {split: len(samples) for split, samples in splits.items()},
            "bytes": total_bytes}
