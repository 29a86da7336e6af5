"""One reader per dataset format, in the layouts the datasets ship in (docs/official-code.md,
"Data").

A reader turns a dataset folder into (image path, label) samples for one split, labels 0-based.
It never stops at the first problem: every malformed line, missing file or label out of range is
recorded in a `Problems` list (dataset, file, line, what was expected), so that `audit data check`
can list them all; `read_split` raises `DatasetError` with every problem when there are any.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class Problem:
    dataset: str
    file: Path | str
    line: int | None  # 1-based line (or entry) number, when the problem sits on one
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" line {self.line}" if self.line is not None else "")
        return f"{self.dataset}: {where}: {self.message}"


@dataclass
class Problems:
    dataset: str
    items: list[Problem] = field(default_factory=list)

    def add(self, file: Path | str, line: int | None, message: str) -> None:
        self.items.append(Problem(self.dataset, file, line, message))


class DatasetError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s):\n  {shown}{more}")


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # the name users type: cub, cars, dogs, nabirds, inat2017
    title: str  # as the paper writes it
    num_classes: int
    counts: dict[str, int]  # expected images per split in the full dataset
    read: Callable[[Path, Split, Problems], list[Sample]]
    resize: int  # the official transforms: resize to (resize, resize), crop `crop`
    crop: int
    autoaugment: bool  # the official code adds AutoAugment (ImageNet policy) in training
    class_names: Callable[[Path], list[str] | None] = lambda root: None


# ------------------------------------------------------------------------------ text lists

def _read_lines(path: Path, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of each non-empty line; a missing file is a
    problem."""
    if not path.is_file():
        problems.add(path, None, "missing annotation file")
        return
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line.split()


def _read_table(path: Path, problems: Problems, what: str) -> dict[str, tuple[int, str]]:
    """Lines 'id value' -> {id: (line number, value)}; the value may hold spaces (class names)."""
    table = {}
    for number, fields in _read_lines(path, problems):
        if len(fields) < 2:
            problems.add(path, number, f"expected '<id> <{what}>', got {' '.join(fields)!r}")
            continue
        table[fields[0]] = (number, " ".join(fields[1:]))
    return table


def _int_field(value: str, path: Path, line: int, problems: Problems, what: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        problems.add(path, line, f"expected an integer {what}, got {value!r}")
        return None


def _cub_like(root: Path, image_root: Path, split: Split, problems: Problems,
              label_of: Callable[[str, int, Path], int | None]) -> list[Sample]:
    """CUB-200-2011 and NABirds: images.txt, image_class_labels.txt, train_test_split.txt."""
    images = _read_table(root / "images.txt", problems, "path")
    labels = _read_table(root / "image_class_labels.txt", problems, "class")
    is_train = _read_table(root / "train_test_split.txt", problems, "is_training")
    samples = []
    for image_id, (line, relative) in images.items():
        if image_id not in labels or image_id not in is_train:
            missing = "image_class_labels.txt" if image_id not in labels else \
                "train_test_split.txt"
            problems.add(root / "images.txt", line,
                         f"image id {image_id} has no entry in {missing}")
            continue
        flag_line, flag = is_train[image_id]
        if flag not in ("0", "1"):
            problems.add(root / "train_test_split.txt", flag_line,
                         f"expected is_training 0 or 1, got {flag!r}")
            continue
        if (flag == "1") != (split == "train"):
            continue
        label_line, raw = labels[image_id]
        label = label_of(raw, label_line, root / "image_class_labels.txt")
        if label is not None:
            samples.append(Sample(image_root / relative, label))
    return samples


def cub_reader(num_classes: int) -> Callable[[Path, Split, Problems], list[Sample]]:
    """CUB-200-2011's layout: images.txt (id path), image_class_labels.txt (id class, 1-based),
    train_test_split.txt (id is_training), images/<path>. The bundled data set uses it too."""

    def read(root: Path, split: Split, problems: Problems) -> list[Sample]:
        def label_of(raw: str, line: int, path: Path) -> int | None:
            value = _int_field(raw, path, line, problems, "class")
            if value is not None and not 1 <= value <= num_classes:
                problems.add(path, line, f"class {value} out of range 1..{num_classes}")
                return None
            return None if value is None else value - 1

        return _cub_like(root, root / "images", split, problems, label_of)

    return read


def cub_class_names(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = _read_table(path, Problems("cub"), "name")
    return [name for _, name in sorted(names.values())]


def nabirds_class_ids(root: Path, problems: Problems) -> list[str]:
    """The class ids images use, sorted numerically: label i is the i-th. The official code uses
    a Python set's order: for integer ids, their slots in the set's table, ascending for ids
    below the table's size (2048 for 555 ids; NABirds' are 0..1010), so the same labels on the
    real dataset (tests/transfg/data/test_official_data.py)."""
    labels = _read_table(root / "nabirds" / "image_class_labels.txt", problems, "class")
    ids = {raw for _, raw in labels.values()}
    return sorted(ids, key=lambda raw: (not raw.isdigit(), int(raw) if raw.isdigit() else 0, raw))


def read_nabirds(root: Path, split: Split, problems: Problems) -> list[Sample]:
    folder = root / "nabirds"
    if not folder.is_dir():
        problems.add(folder, None,
                     "missing folder (NABirds' files sit in nabirds/ inside the root)")
        return []
    index = {raw: i for i, raw in enumerate(nabirds_class_ids(root, Problems("nabirds")))}
    return _cub_like(folder, folder / "images", split, problems,
                     lambda raw, line, path: index.get(raw))


def nabirds_class_names(root: Path) -> list[str] | None:
    path = root / "nabirds" / "classes.txt"
    if not path.is_file():
        return None
    names = {raw: name for raw, (_, name) in _read_table(path, Problems("nabirds"), "name").items()}
    return [names.get(raw, raw) for raw in nabirds_class_ids(root, Problems("nabirds"))]


# --------------------------------------------------------------------------------- .mat files

def _load_mat(path: Path, problems: Problems, keys: tuple[str, ...]) -> dict | None:
    from scipy.io import loadmat

    if not path.is_file():
        problems.add(path, None, "missing annotation file")
        return None
    try:
        mat = loadmat(path)
    except (ValueError, OSError, TypeError) as error:
        problems.add(path, None, f"not a readable MATLAB file ({error})")
        return None
    missing = [key for key in keys if key not in mat]
    if missing:
        problems.add(path, None, f"missing variable(s) {', '.join(missing)}")
        return None
    return mat


def _mat_string(value) -> str:
    """A MATLAB char array as loadmat returns it (often wrapped in 1-element arrays)."""
    while hasattr(value, "shape") and value.shape and value.dtype.kind == "O":
        value = value.flat[0]
    return str(value.flat[0]) if hasattr(value, "flat") else str(value)


def read_cars(root: Path, split: Split, problems: Problems) -> list[Sample]:
    """Stanford Cars: devkit/cars_train_annos.mat + cars_train/ and, at the root,
    cars_test_annos_withlabels.mat + cars_test/. Per annotation (bbox x1, y1, x2, y2, class,
    fname): the class is 1-based."""
    if split == "train":
        path, images = root / "devkit" / "cars_train_annos.mat", root / "cars_train"
    else:
        path, images = root / "cars_test_annos_withlabels.mat", root / "cars_test"
    mat = _load_mat(path, problems, ("annotations",))
    if mat is None:
        return []
    annotations = mat["annotations"].reshape(-1)
    fields = annotations.dtype.names or ()
    if "class" not in fields or "fname" not in fields:
        problems.add(path, None, f"annotations have fields {fields}, expected class and fname "
                                 "(the test file must be the one *with labels*)")
        return []
    samples = []
    for number, entry in enumerate(annotations, start=1):
        label = int(entry["class"].reshape(-1)[0])
        if not 1 <= label <= CARS.num_classes:
            problems.add(path, number, f"class {label} out of range 1..{CARS.num_classes}")
            continue
        samples.append(Sample(images / _mat_string(entry["fname"]), label - 1))
    return samples


def cars_class_names(root: Path) -> list[str] | None:
    path = root / "devkit" / "cars_meta.mat"
    mat = _load_mat(path, Problems("cars"), ("class_names",)) if path.is_file() else None
    return None if mat is None else [_mat_string(n) for n in mat["class_names"].reshape(-1)]


def read_dogs(root: Path, split: Split, problems: Problems) -> list[Sample]:
    """Stanford Dogs: train_list.mat / test_list.mat (annotation_list, labels 1..120);
    images at Images/<annotation>.jpg."""
    path = root / f"{split}_list.mat"
    mat = _load_mat(path, problems, ("annotation_list", "labels"))
    if mat is None:
        return []
    names = mat["annotation_list"].reshape(-1)
    labels = mat["labels"].reshape(-1)
    if len(names) != len(labels):
        problems.add(path, None, f"{len(names)} annotations but {len(labels)} labels")
        return []
    samples = []
    for number, (name, label) in enumerate(zip(names, labels, strict=True), start=1):
        label = int(label)
        if not 1 <= label <= DOGS.num_classes:
            problems.add(path, number, f"label {label} out of range 1..{DOGS.num_classes}")
            continue
        samples.append(Sample(root / "Images" / f"{_mat_string(name)}.jpg", label - 1))
    return samples


def dogs_class_names(root: Path) -> list[str] | None:
    folder = root / "Images"
    if not folder.is_dir():
        return None
    # Folders are "<wordnet id>-<breed>", sorted by id, which is label order.
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    return [name.split("-", 1)[-1] for name in names] if len(names) == DOGS.num_classes else None


# ---------------------------------------------------------------------------------- iNat2017

def _read_inat_json(root: Path, split: Split, problems: Problems) -> dict | None:
    path = root / ("train2017.json" if split == "train" else "val2017.json")
    if not path.is_file():
        problems.add(path, None, "missing annotation file")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        problems.add(path, None, f"not valid JSON ({error})")
        return None
    missing = [key for key in ("images", "annotations") if key not in data]
    if missing:
        problems.add(path, None, f"missing key(s) {', '.join(missing)} (COCO-style json expected)")
        return None
    return data


def read_inat2017(root: Path, split: Split, problems: Problems) -> list[Sample]:
    """iNat2017: train2017.json / val2017.json (COCO-style); image paths relative to the root
    (they start with train_val_images/); label = category_id (0..5088)."""
    data = _read_inat_json(root, split, problems)
    if data is None:
        return []
    path = root / ("train2017.json" if split == "train" else "val2017.json")
    files = {image["id"]: image["file_name"] for image in data["images"]}
    samples = []
    for number, annotation in enumerate(data["annotations"], start=1):
        image_id, label = annotation.get("image_id"), annotation.get("category_id")
        if image_id not in files:
            problems.add(path, number, f"annotation for unknown image id {image_id!r}")
            continue
        if not isinstance(label, int) or not 0 <= label < INAT2017.num_classes:
            problems.add(path, number, f"category_id {label!r} out of range "
                                       f"0..{INAT2017.num_classes - 1}")
            continue
        samples.append(Sample(root / files[image_id], label))
    return samples


def inat_class_names(root: Path) -> list[str] | None:
    data = _read_inat_json(root, "train", Problems("inat2017"))
    if data is None or "categories" not in data:
        return None
    names = {c["id"]: c["name"] for c in data["categories"]}
    return [names.get(i, str(i)) for i in range(INAT2017.num_classes)]


# ----------------------------------------------------------------------------------- registry

CUB = DatasetSpec("cub", "CUB-200-2011", 200, {"train": 5994, "test": 5794}, cub_reader(200),
                  600, 448, False, cub_class_names)
CARS = DatasetSpec("cars", "Stanford Cars", 196, {"train": 8144, "test": 8041}, read_cars,
                   600, 448, True, cars_class_names)
DOGS = DatasetSpec("dogs", "Stanford Dogs", 120, {"train": 12000, "test": 8580}, read_dogs,
                   600, 448, False, dogs_class_names)
NABIRDS = DatasetSpec("nabirds", "NABirds", 555, {"train": 23929, "test": 24633}, read_nabirds,
                      600, 448, False, nabirds_class_names)
INAT2017 = DatasetSpec("inat2017", "iNat2017", 5089, {"train": 579184, "test": 95986},
                       read_inat2017, 400, 304, True, inat_class_names)
# The bundled default (transfg/data/bundled.py): CUB's layout, 8 x 8 scans shown at the tiny
# configs' 64 px (resize 86 = 64 * 600 / 448).
DIGITS = DatasetSpec("digits", "UCI handwritten digits (bundled)", 10,
                     {"train": 1198, "test": 599}, cub_reader(10), 86, 64, False, cub_class_names)
DATASETS = {spec.name: spec for spec in (CUB, CARS, DOGS, NABIRDS, INAT2017, DIGITS)}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def collect_split(name: str, root: str | Path, split: Split, problems: Problems) -> list[Sample]:
    """The samples of one split, recording every problem in `problems` (never raising for data)."""
    spec = dataset_spec(name)
    root = Path(root)
    if not root.is_dir():
        problems.add(root, None, f"missing dataset folder (the {spec.title} root)")
        return []
    return spec.read(root, split, problems)


def read_split(name: str, root: str | Path, split: Split) -> list[Sample]:
    """The samples of one split; raises DatasetError listing every problem found."""
    problems = Problems(dataset_spec(name).title)
    samples = collect_split(name, root, split, problems)
    if problems.items:
        raise DatasetError(problems.items)
    return samples
