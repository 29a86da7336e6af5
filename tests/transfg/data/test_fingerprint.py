import shutil

import pytest
from dataset_layouts import write_cub

from transfg.config import tiny, vit_b16
from transfg.data.fingerprint import fingerprint
from transfg.data.pipeline import make_transforms
from transfg.data.readers import DATASETS, SPLITS, read_split


def splits(root):
    return {split: read_split("cub", root, split) for split in SPLITS}


def test_fast_fingerprint_tracks_files_labels_and_sizes_not_the_folder(tmp_path):
    write_cub(tmp_path / "a")
    first = fingerprint(tmp_path / "a", splits(tmp_path / "a"))
    assert first["kind"] == "fast" and first["counts"] == {"train": 3, "test": 3}
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert fingerprint(tmp_path / "b", splits(tmp_path / "b"))["sha256"] == first["sha256"]
    labels = tmp_path / "b" / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("6 3", "6 2"))
    assert fingerprint(tmp_path / "b", splits(tmp_path / "b"))["sha256"] != first["sha256"]


def test_content_fingerprint_catches_a_same_size_edit(tmp_path):
    write_cub(tmp_path)
    before_fast = fingerprint(tmp_path, splits(tmp_path))
    before = fingerprint(tmp_path, splits(tmp_path), content=True)
    image = tmp_path / "images/001.Albatross/a_1.jpg"
    data = bytearray(image.read_bytes())
    data[-3] ^= 0xFF
    image.write_bytes(bytes(data))
    assert fingerprint(tmp_path, splits(tmp_path))["sha256"] == before_fast["sha256"]
    assert fingerprint(tmp_path, splits(tmp_path), content=True)["sha256"] != before["sha256"]


@pytest.mark.parametrize(("dataset", "config", "sizes", "autoaugment"), [
    ("cub", vit_b16(), (600, 448), False),
    ("cars", vit_b16(), (600, 448), True),
    ("inat2017", vit_b16(image_size=304), (400, 304), True),
    ("digits", tiny(), (86, 64), False),
    ("cub", tiny(), (86, 64), False),
])
def test_transform_sizes_come_from_the_config(dataset, config, sizes, autoaugment):
    train, test = make_transforms(DATASETS[dataset], config)
    assert (train.resize, train.crop) == sizes == (test.resize, test.crop)
    assert train.autoaugment == autoaugment
    assert make_transforms(DATASETS[dataset], config, autoaugment=True)[0].autoaugment
