"""Tiny copies of the five datasets, written in each one's exact on-disk format: real JPEGs (some
grayscale, one CMYK, as users' copies contain), the real .mat structures (MATLAB structs and cell
arrays via scipy.io.savemat) and the real COCO-style json. Each writer returns what a correct
reader must yield: {split: [(path relative to root, label 0-based), ...]}."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat


def write_jpeg(path: Path, seed: int, mode: str = "RGB", size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, "JPEG", quality=90)


def write_cub(root: Path) -> dict:
    """3 classes, 6 images: ids 1..6, classes 1-based, ids 2, 4, 6 in test. Image 3 grayscale,
    image 5 CMYK."""
    rows = [(1, "001.Albatross/a_1.jpg", 1, 1), (2, "001.Albatross/a_2.jpg", 1, 0),
            (3, "002.Auklet/b_1.jpg", 2, 1), (4, "002.Auklet/b_2.jpg", 2, 0),
            (5, "003.Cowbird/c_1.jpg", 3, 1), (6, "003.Cowbird/c_2.jpg", 3, 0)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, _, _ in rows))
    (root / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, _ in rows))
    (root / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in rows))
    (root / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n3 003.Cowbird\n")
    for i, path, _, _ in rows:
        mode = {3: "L", 5: "CMYK"}.get(i, "RGB")
        write_jpeg(root / "images" / path, i, mode)
    return {"train": [(f"images/{p}", c - 1) for _, p, c, t in rows if t == 1],
            "test": [(f"images/{p}", c - 1) for _, p, c, t in rows if t == 0]}


def _cars_annotations(rows) -> np.ndarray:
    """A 1 x N MATLAB struct array with the devkit's fields, in the devkit's order."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    annotations = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for k, (fname, label) in enumerate(rows):
        annotations[0, k] = (np.array([[1]]), np.array([[2]]), np.array([[30]]),
                             np.array([[20]]), np.array([[label]], dtype=np.uint8),
                             np.array([fname]))
    return annotations


def write_cars(root: Path) -> dict:
    train = [("00001.jpg", 1), ("00002.jpg", 196), ("00003.jpg", 5)]
    test = [("00001.jpg", 196), ("00002.jpg", 1)]
    (root / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": _cars_annotations(train)})
    savemat(root / "cars_test_annos_withlabels.mat", {"annotations": _cars_annotations(test)})
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [f"Make Model {i} 2012" for i in range(1, 197)]
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    for k, (fname, _) in enumerate(train):
        write_jpeg(root / "cars_train" / fname, 10 + k)
    for k, (fname, _) in enumerate(test):
        write_jpeg(root / "cars_test" / fname, 20 + k, "L" if k == 0 else "RGB")
    return {"train": [(f"cars_train/{f}", c - 1) for f, c in train],
            "test": [(f"cars_test/{f}", c - 1) for f, c in test]}


def _cell(strings) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for k, s in enumerate(strings):
        cell[k, 0] = np.array([s])
    return cell


def write_dogs(root: Path) -> dict:
    splits = {"train": [("n02085620-Chihuahua/n02085620_5927", 1),
                        ("n02116738-African_hunting_dog/n02116738_124", 120)],
              "test": [("n02085620-Chihuahua/n02085620_10074", 1),
                       ("n02085782-Japanese_spaniel/n02085782_82", 2)]}
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        savemat(root / f"{split}_list.mat", {
            "file_list": _cell([f"{a}.jpg" for a, _ in rows]),
            "annotation_list": _cell([a for a, _ in rows]),
            "labels": np.array([[float(c)] for _, c in rows])})
        for k, (annotation, _) in enumerate(rows):
            write_jpeg(root / "Images" / f"{annotation}.jpg", 30 + k + len(split))
    return {split: [(f"Images/{a}.jpg", c - 1) for a, c in rows] for split, rows in splits.items()}


def write_nabirds(root: Path) -> dict:
    """Class ids are sparse numbers; labels are their numeric rank (22 -> 0, 295 -> 1, ...)."""
    rows = [("0000139e-21dc-4d0c-bfe1-4cae3c85c829", "0817/0000139e21dc.jpg", 295, 1),
            ("0000d9fc-4e02-4c06-a0af-a55cfb16b12b", "0860/0000d9fc4e02.jpg", 1000, 0),
            ("00019306-9d83-4334-b255-a447742edce3", "0900/000193069d83.jpg", 22, 1),
            ("0001afd4-99a1-4a67-b940-d419413e23b3", "0645/0001afd499a1.jpg", 313, 0),
            ("000332b8-997c-4540-9647-2f0a8495aecf", "0929/000332b8997c.jpg", 22, 0)]
    folder = root / "nabirds"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, _, _ in rows))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, _ in rows))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in rows))
    (folder / "classes.txt").write_text(
        "22 Eared Grebe (Breeding)\n295 Brant\n313 Bufflehead\n1000 Mallard\n")
    (folder / "hierarchy.txt").write_text("22 1\n295 2\n313 2\n1000 2\n")
    for k, (_, path, _, _) in enumerate(rows):
        write_jpeg(folder / "images" / path, 40 + k)
    rank = {22: 0, 295: 1, 313: 2, 1000: 3}
    return {"train": [(f"nabirds/images/{p}", rank[c]) for _, p, c, t in rows if t == 1],
            "test": [(f"nabirds/images/{p}", rank[c]) for _, p, c, t in rows if t == 0]}


def write_inat2017(root: Path) -> dict:
    splits = {"train": [(11, "train_val_images/Aves/Anas platyrhynchos/a1.jpg", 3),
                        (12, "train_val_images/Plantae/Quercus alba/q1.jpg", 5088)],
              "test": [(21, "train_val_images/Aves/Anas platyrhynchos/a2.jpg", 3),
                       (22, "train_val_images/Insecta/Apis mellifera/m1.jpg", 0)]}
    categories = [{"id": 0, "name": "Apis mellifera", "supercategory": "Insecta"},
                  {"id": 3, "name": "Anas platyrhynchos", "supercategory": "Aves"},
                  {"id": 5088, "name": "Quercus alba", "supercategory": "Plantae"}]
    root.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        data = {"info": {"year": 2017}, "categories": categories,
                "images": [{"id": i, "file_name": p, "width": 40, "height": 30}
                           for i, p, _ in rows],
                "annotations": [{"id": 100 + i, "image_id": i, "category_id": c}
                                for i, _, c in rows]}
        name = "train2017.json" if split == "train" else "val2017.json"
        (root / name).write_text(json.dumps(data))
        for i, path, _ in rows:
            write_jpeg(root / path, i)
    return {split: [(p, c) for _, p, c in rows] for split, rows in splits.items()}


WRITERS = {"cub": write_cub, "cars": write_cars, "dogs": write_dogs, "nabirds": write_nabirds,
           "inat2017": write_inat2017}
