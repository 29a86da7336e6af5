"""Each reader reads a tiny copy of its dataset's real layout back with the right labels, splits
and counts; bad input gets a message naming the dataset, the file, the line and what was
expected."""

import json
import subprocess
import sys

import numpy as np
import pytest
from dataset_layouts import WRITERS, write_cub
from PIL import Image

from transfg.data.bundled import ROOT as DIGITS_ROOT
from transfg.data.check import check_dataset
from transfg.data.readers import DATASETS, DatasetError, read_split
from transfg.data.transforms import ImageError, load_rgb


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_reads_each_layout_back(tmp_path, name):
    root = tmp_path / name
    expected = WRITERS[name](root)
    for split in ("train", "test"):
        samples = read_split(name, root, split)
        got = [(s.path.relative_to(root).as_posix(), s.label) for s in samples]
        assert got == expected[split]
        assert all(s.path.is_file() for s in samples)
        assert all(load_rgb(s.path).mode == "RGB" for s in samples)


def test_class_names_where_the_dataset_has_them(tmp_path):
    for name, first in (("cub", "001.Albatross"), ("cars", "Make Model 1 2012"),
                        ("nabirds", "Eared Grebe (Breeding)"), ("inat2017", "Apis mellifera")):
        WRITERS[name](tmp_path / name)
        assert DATASETS[name].class_names(tmp_path / name)[0] == first


def test_known_counts_and_classes():
    assert DATASETS["cub"].counts == {"train": 5994, "test": 5794}
    assert DATASETS["cub"].num_classes == 200 and DATASETS["nabirds"].num_classes == 555
    assert DATASETS["inat2017"].crop == 304 and DATASETS["inat2017"].resize == 400
    assert DATASETS["cars"].autoaugment and not DATASETS["cub"].autoaugment


def test_grayscale_and_cmyk_become_rgb(tmp_path):
    write_cub(tmp_path)
    gray, cmyk = tmp_path / "images/002.Auklet/b_1.jpg", tmp_path / "images/003.Cowbird/c_1.jpg"
    assert Image.open(gray).mode == "L" and Image.open(cmyk).mode == "CMYK"
    for path in (gray, cmyk):
        image = load_rgb(path)
        assert image.mode == "RGB" and np.asarray(image).shape == (30, 40, 3)


def test_bundled_digits_read_through_the_cub_reader():
    train, test = read_split("digits", DIGITS_ROOT, "train"), read_split("digits", DIGITS_ROOT,
                                                                         "test")
    assert (len(train), len(test)) == (1198, 599)
    assert {s.label for s in train} == set(range(10))
    report = check_dataset("digits", DIGITS_ROOT)
    assert report.ok and report.image_modes == {"L": 1797}


# ------------------------------------------------------------------------------- bad input

def problems_of(name, root, split="train"):
    with pytest.raises(DatasetError) as error:
        read_split(name, root, split)
    return str(error.value)


def test_missing_folder(tmp_path):
    message = problems_of("cub", tmp_path / "nowhere")
    assert "CUB-200-2011" in message and "nowhere: missing dataset folder" in message


def test_missing_annotation_files(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "train_test_split.txt").unlink()
    assert "train_test_split.txt: missing annotation file" in problems_of("cub", tmp_path)
    WRITERS["cars"](tmp_path / "cars")
    (tmp_path / "cars" / "cars_test_annos_withlabels.mat").unlink()
    message = problems_of("cars", tmp_path / "cars", "test")
    assert "Stanford Cars" in message and "cars_test_annos_withlabels.mat: missing" in message
    WRITERS["nabirds"](tmp_path / "birds")
    assert "missing folder" in problems_of("nabirds", tmp_path / "birds" / "nabirds")


def test_malformed_lines_and_labels_out_of_range_are_named_with_their_line(tmp_path):
    write_cub(tmp_path)
    labels = tmp_path / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("3 2\n", "3 201\n").replace("5 3\n", "5 x\n"))
    (tmp_path / "images.txt").write_text((tmp_path / "images.txt").read_text() + "7\n")
    message = problems_of("cub", tmp_path)
    assert "image_class_labels.txt line 3: class 201 out of range 1..200" in message
    assert "image_class_labels.txt line 5: expected an integer class, got 'x'" in message
    assert "images.txt line 7: expected '<id> <path>', got '7'" in message


def test_mat_and_json_labels_out_of_range(tmp_path):
    WRITERS["dogs"](tmp_path / "dogs")
    from scipy.io import loadmat, savemat

    mat = loadmat(tmp_path / "dogs" / "train_list.mat")
    mat["labels"][1, 0] = 121
    savemat(tmp_path / "dogs" / "train_list.mat", {k: v for k, v in mat.items()
                                                    if not k.startswith("__")})
    assert "train_list.mat line 2: label 121 out of range 1..120" in problems_of("dogs",
                                                                                tmp_path / "dogs")
    WRITERS["inat2017"](tmp_path / "inat")
    data = json.loads((tmp_path / "inat" / "val2017.json").read_text())
    data["annotations"][0]["category_id"] = 5089
    (tmp_path / "inat" / "val2017.json").write_text(json.dumps(data))
    message = problems_of("inat2017", tmp_path / "inat", "test")
    assert "val2017.json line 1: category_id 5089 out of range 0..5088" in message


def test_truncated_and_non_image_files(tmp_path):
    write_cub(tmp_path)
    truncated = tmp_path / "images/001.Albatross/a_1.jpg"
    truncated.write_bytes(truncated.read_bytes()[:200])
    text = tmp_path / "images/002.Auklet/b_1.jpg"
    text.write_text("not an image")
    for path in (truncated, text):
        with pytest.raises(ImageError, match=f"{path.name}: cannot decode image"):
            load_rgb(path)


def test_check_lists_every_problem_and_the_expected_counts(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "images/001.Albatross/a_1.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "images/002.Auklet/b_2.jpg").unlink()
    done = subprocess.run([sys.executable, "-m", "audit.cli", "data", "check", "cub",
                           str(tmp_path), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    problems = "\n".join(report["problems"])
    assert "a_1.jpg: cannot decode image" in problems
    assert "b_2.jpg: missing image file" in problems
    assert "train split has 3 images, expected 5994 for the full CUB-200-2011" in problems
    assert "test split has 3 images, expected 5794" in problems
    assert "3 classes have images, expected 200" in problems
    assert report["counts"] == {"train": 3, "test": 3} and not report["ok"]


def test_check_prints_a_summary_and_exits_0_on_good_data():
    done = subprocess.run([sys.executable, "-m", "audit.cli", "data", "check", "digits",
                           str(DIGITS_ROOT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert "train    1198 images" in done.stdout and "no problems found" in done.stdout
    assert "fingerprint (fast): sha256:" in done.stdout
