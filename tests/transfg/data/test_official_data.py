"""The authors' data code (github.com/TACJu/TransFG: utils/dataset.py, utils/autoaugment.py,
utils/data_utils.py, imported through tests/official_code.py) against ours: the readers give the
same images with the same labels in the same order, AutoAugment the same pixels for the same
random draws, and the official transform chains the same tensors. Where the official code
differs on purpose or fails, the test names the difference and asserts it exactly."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import official_code
import pytest
from dataset_layouts import WRITERS, write_cub, write_inat2017, write_nabirds

from transfg import official_compat
from transfg.data import transforms as T
from transfg.data.readers import read_split
from transfg.data.transforms import load_rgb
from transfg.official import DATASET_NAMES

BENCH = Path(__file__).resolve().parents[3] / "bench"
SPLITS = ("train", "test")
TORCHVISION_MISSING = ("torchvision is not importable here; the official chains with the real "
                       "torchvision are compared in bench/gpu_check.sh "
                       "(bench/official_transforms.py)")


@pytest.fixture(scope="module")
def dataset_module():
    return official_code.load("utils.dataset")


@pytest.fixture(scope="module")
def data_utils():
    return official_code.load("utils.data_utils")


@pytest.fixture(scope="module")
def autoaugment():
    return official_code.load("utils.autoaugment")


@pytest.fixture(scope="module")
def bench():
    """bench/official_transforms.py: the comparison of the chains, and the record and replay of
    random draws that this file's AutoAugment test shares with it."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("official_transforms")
    finally:
        sys.path.remove(str(BENCH))


def torchvision_is_a_stand_in() -> bool:
    return any(line.startswith("stand-in for torchvision") for line in official_code.deviations())


# ----------------------------------------------------------------------------------- readers

def official_datasets(bench, data_utils, name, root):
    """{"train": dataset, "test": dataset} as the official get_loader builds them, without their
    transforms, so that an item is the image the reader gives."""
    loaders = bench.official_loaders(data_utils, name, root)
    for loader in loaders:
        loader.dataset.transform = None
    return dict(zip(SPLITS, (loader.dataset for loader in loaders), strict=True))


class OpenGivesThePath:
    """Stands for PIL.Image in utils/dataset.py: `Image.open(path).convert("RGB")` is the path."""

    @staticmethod
    def open(path):
        return SimpleNamespace(convert=lambda mode: path)


def official_paths(dataset_module, dataset, monkeypatch):
    """(path, label) of every item, made by the official __getitem__ with the image's opening
    replaced by its path (Cars and Dogs open it with PIL, NABirds and iNat2017 with a loader)."""
    with monkeypatch.context() as patch:
        patch.setattr(dataset_module, "Image", OpenGivesThePath)
        patch.setattr(dataset, "loader", lambda path: path, raising=False)
        return [(Path(path), label) for path, label in (dataset[i] for i in range(len(dataset)))]


@pytest.mark.parametrize("name", ["cars", "dogs", "inat2017"])
def test_official_readers_give_our_images_and_labels_in_our_order(
        bench, data_utils, dataset_module, tmp_path, monkeypatch, name):
    """Paths, labels and order equal ours, and each item's pixels are our RGB image. Labels come
    as the official code makes them (Cars: a torch int64 tensor; Dogs: the .mat's number minus
    1, a float64 where the file stores doubles), so they are compared by value."""
    WRITERS[name](tmp_path)
    for split, dataset in official_datasets(bench, data_utils, name, tmp_path).items():
        ours = read_split(name, tmp_path, split)
        got = official_paths(dataset_module, dataset, monkeypatch)
        assert [(path, float(label)) for path, label in got] == \
            [(s.path, float(s.label)) for s in ours]
        for k, sample in enumerate(ours):
            image, _ = dataset[k]
            assert np.array_equal(np.asarray(image), np.asarray(load_rgb(sample.path)))


def test_official_cub_holds_our_images_decoded_with_our_labels(
        bench, data_utils, dataset_module, tmp_path):
    """The official CUB reader decodes every image of its split into memory with
    scipy.misc.imread (the compat stand-in here: PIL's array as stored, grayscale 2-D, CMYK with
    4 channels); decoding our paths the same way gives the same arrays with the same labels in
    the same order, and its items (grayscale stacked to 3 channels) are our RGB images. The CMYK
    image is the next test's."""
    write_cub(tmp_path)
    datasets = official_datasets(bench, data_utils, "cub", tmp_path)
    for split, dataset in datasets.items():
        ours = read_split("cub", tmp_path, split)
        arrays, labels, names = ((dataset.train_img, dataset.train_label, dataset.train_imgname)
                                 if split == "train" else
                                 (dataset.test_img, dataset.test_label, dataset.test_imgname))
        assert [tmp_path / "images" / name for name in names] == [s.path for s in ours]
        assert labels == [s.label for s in ours]
        for k, (array, sample) in enumerate(zip(arrays, ours, strict=True)):
            assert np.array_equal(array, dataset_module.scipy.misc.imread(str(sample.path)))
            if array.ndim == 2 or array.shape[2] == 3:
                image, label = dataset[k]
                assert label == sample.label
                assert np.array_equal(np.asarray(image), np.asarray(load_rgb(sample.path)))
    assert [a.shape for a in datasets["train"].train_img] == [(30, 40, 3), (30, 40), (30, 40, 4)]


def test_official_cub_cannot_make_an_rgb_image_of_a_cmyk_jpeg(bench, data_utils, tmp_path):
    """A bug in the official CUB reader: __getitem__ makes its image with
    `Image.fromarray(array, mode='RGB')` from imread's array, which for a CMYK JPEG has 4
    channels (scipy.misc.imread converted only palette and 1-bit images). This Pillow refuses
    ("Invalid mode for data type"); a Pillow without that check reads the 4-channel buffer as RGB,
    a garbled image. Ours converts CMYK to RGB (load_rgb). The layout's image 5 is CMYK."""
    write_cub(tmp_path)
    dataset = official_datasets(bench, data_utils, "cub", tmp_path)["train"]
    cmyk = tmp_path / "images" / dataset.train_imgname[2]
    assert dataset.train_img[2].shape == (30, 40, 4)
    try:
        image, _ = dataset[2]
    except ValueError as error:
        assert "Invalid mode for data type" in str(error)
    else:
        assert not np.array_equal(np.asarray(image), np.asarray(load_rgb(cmyk)))
    assert load_rgb(cmyk).mode == "RGB"


def test_official_cub_cuts_a_character_from_a_last_line_without_newline(
        bench, data_utils, tmp_path):
    """A bug in the official CUB reader: it drops every line's last character (`line[:-1]`) to
    remove the newline, so a list whose last line has none (a subset written by a script) loses
    a real character: here image_class_labels.txt's "6 3" becomes "6 " and int('') fails. Ours
    reads the file."""
    write_cub(tmp_path)
    labels = tmp_path / "image_class_labels.txt"
    labels.write_text(labels.read_text().rstrip("\n"))
    assert [s.label for s in read_split("cub", tmp_path, "test")] == [0, 1, 2]
    with pytest.raises(ValueError, match="invalid literal for int"):
        official_datasets(bench, data_utils, "cub", tmp_path)


# NABirds' class ids in the layout, in the official label order and in ours (ascending).
NABIRDS_OFFICIAL_ORDER = [1000, 313, 22, 295]
NABIRDS_OUR_ORDER = [22, 295, 313, 1000]


def test_official_nabirds_labels_are_ours_relabelled_by_set_order(
        bench, data_utils, dataset_module, tmp_path, monkeypatch):
    """A difference on purpose (docs/official-code.md, "Data"): the official NABirds reader numbers
    the class ids in the iteration order of a Python set of them (get_continuous_class_map), ours in
    ascending order. Same images in the same order, same partition into classes; each official
    label is our label's class id's place in the set. Integer ids hash to themselves (Python
    salts only str and bytes hashes), so that order is the same in every run: the ids' slots in
    the set's table, id mod 8 for this layout's 4 ids."""
    write_nabirds(tmp_path)
    relabel = {ours: NABIRDS_OFFICIAL_ORDER.index(raw) for ours, raw in
               enumerate(NABIRDS_OUR_ORDER)}
    for split, dataset in official_datasets(bench, data_utils, "nabirds", tmp_path).items():
        assert dataset.label_map == {raw: k for k, raw in enumerate(NABIRDS_OFFICIAL_ORDER)}
        ours = read_split("nabirds", tmp_path, split)
        assert official_paths(dataset_module, dataset, monkeypatch) == \
            [(s.path, relabel[s.label]) for s in ours]
        for k, sample in enumerate(ours):
            assert np.array_equal(np.asarray(dataset[k][0]), np.asarray(load_rgb(sample.path)))


def test_official_nabirds_labels_are_ours_when_the_ids_are_below_2048(
        bench, data_utils, dataset_module, tmp_path, monkeypatch):
    """Where the set order and ours meet: a set of 555 ints has 2048 slots, so ids below 2048
    (NABirds numbers its classes from 0 to 1010 in classes.txt) sit in ascending order and the
    official labels of the real dataset are ours. Shown on a 555-class layout (ids drawn below
    2048, lines shuffled, no image files: labels need none)."""
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.append(rng.choice(2047, 554, replace=False), 2047))
    folder = tmp_path / "nabirds"
    folder.mkdir()
    lines = {"images.txt": [f"i{k} {raw:04d}/i{k}.jpg" for k, raw in enumerate(ids)],
             "image_class_labels.txt": [f"i{k} {raw}" for k, raw in enumerate(ids)],
             "train_test_split.txt": [f"i{k} {k % 2}" for k in range(len(ids))],
             "classes.txt": [f"{raw} class {raw}" for raw in sorted(ids)],
             "hierarchy.txt": [f"{raw} 0" for raw in sorted(ids)]}
    for name, rows in lines.items():
        (folder / name).write_text("".join(f"{row}\n" for row in rows))
    for split, dataset in official_datasets(bench, data_utils, "nabirds", tmp_path).items():
        assert list(dataset.label_map) == sorted(int(raw) for raw in ids)
        assert official_paths(dataset_module, dataset, monkeypatch) == \
            [(s.path, s.label) for s in read_split("nabirds", tmp_path, split)]


def test_official_inat2017_pairs_images_and_annotations_by_position(
        bench, data_utils, dataset_module, tmp_path, monkeypatch):
    """A difference: the official INat2017 reader gives the i-th image the i-th annotation's
    category (by position), ours joins annotations to images by image_id and follows the
    annotations' order. Where annotations are listed in image order (the layout's json) the two
    agree (test_official_readers_give_our_images_and_labels_in_our_order); listed otherwise,
    the official labels go to the wrong images and ours stay right."""
    write_inat2017(tmp_path)
    path = tmp_path / "train2017.json"
    data = json.loads(path.read_text())
    data["annotations"].reverse()
    path.write_text(json.dumps(data))
    dataset = official_datasets(bench, data_utils, "inat2017", tmp_path)["train"]
    images, annotations = data["images"], data["annotations"]
    assert official_paths(dataset_module, dataset, monkeypatch) == [
        (tmp_path / image["file_name"], annotation["category_id"])
        for image, annotation in zip(images, annotations, strict=True)]
    files = {image["id"]: image["file_name"] for image in images}
    ours = [(s.path, s.label) for s in read_split("inat2017", tmp_path, "train")]
    assert ours == [(tmp_path / files[a["image_id"]], a["category_id"]) for a in annotations]
    assert ours == [(tmp_path / "train_val_images/Plantae/Quercus alba/q1.jpg", 5088),
                    (tmp_path / "train_val_images/Aves/Anas platyrhynchos/a1.jpg", 3)]


# ------------------------------------------------------------------------------- AutoAugment

def official_policy_table(autoaugment):
    """(p1, operation1, magnitude index1, p2, operation2, magnitude index2) of each SubPolicy in
    AutoAugImageNetPolicy's list, read from its source (a SubPolicy keeps its operations as
    anonymous lambdas)."""
    tree = ast.parse(Path(autoaugment.__file__).read_text())
    policy = next(node for node in tree.body
                  if isinstance(node, ast.ClassDef) and node.name == "AutoAugImageNetPolicy")
    assign = next(node for node in ast.walk(policy) if isinstance(node, ast.Assign)
                  and ast.unparse(node.targets[0]) == "self.policies")
    return [tuple(ast.literal_eval(arg) for arg in call.args[:6]) for call in assign.value.elts]


def test_official_imagenet_policy_is_ours(autoaugment):
    """The same sub-policies in the same order with the same probabilities and magnitudes. The
    official list has 24: DeepVoltaire's AutoAugment, which it copies, has a 25th repeating the
    third (equalize 0.8/8, equalize 0.6/3), which TransFG's copy drops."""
    table = official_policy_table(autoaugment)
    assert len(table) == 24
    assert table == [(p1, n1, m1, p2, n2, m2) for (p1, n1, m1), (p2, n2, m2) in T.IMAGENET_POLICY]
    policies = autoaugment.AutoAugImageNetPolicy().policies
    for sub, ((p1, n1, m1), (p2, n2, m2)) in zip(policies, T.IMAGENET_POLICY, strict=True):
        assert (sub.p1, sub.p2) == (p1, p2)
        assert sub.magnitude1 == T.OPERATIONS[n1][1][m1]
        assert sub.magnitude2 == T.OPERATIONS[n2][1][m2]


class FixedSign:
    """Stands for `random` in utils/autoaugment.py: choice([-1, 1]) gives `sign`, and is
    counted."""

    def __init__(self, sign):
        self.sign, self.asked = sign, []

    def choice(self, options):
        self.asked.append(list(options))
        return self.sign


def test_official_autoaugment_operations_give_our_pixels(bench, autoaugment, monkeypatch):
    """Every operation of every sub-policy at its magnitude, with both signs where it draws one
    (shearX, color, contrast, sharpness; rotate draws none: always counter-clockwise), gives the
    same pixels in the official code and ours, on an RGB image; the official operation draws a
    sign exactly where ours does."""
    image = bench.photo((96, 72), 3)
    differ = []
    for k, (sub, pair) in enumerate(zip(autoaugment.AutoAugImageNetPolicy().policies,
                                        T.IMAGENET_POLICY, strict=True)):
        operations = ((sub.operation1, sub.magnitude1), (sub.operation2, sub.magnitude2))
        for (operation, magnitude), (_, name, index) in zip(operations, pair, strict=True):
            function, magnitudes, signed = T.OPERATIONS[name]
            for sign in (1, -1) if signed else (1,):
                fixed = FixedSign(sign)
                monkeypatch.setattr(autoaugment, "random", fixed)
                official = np.asarray(operation(image, magnitude))
                ours = np.asarray(function(image, magnitudes[index], sign))
                if fixed.asked != ([[-1, 1]] if signed else []) or \
                        not np.array_equal(official, ours):
                    differ.append(f"sub-policy {k} {name} {index} sign {sign}: official drew "
                                  f"{len(fixed.asked)} signs, pixels differ at "
                                  f"{int((official != ours).any(axis=2).sum())} places")
    assert not differ, "\n".join(differ)


def test_official_autoaugment_policy_replayed_from_our_generator(bench, autoaugment):
    """The whole policy: our Generator's draws (sub-policy, then per operation whether it
    applies and its sign) fed to the official random.randint, random.random and random.choice
    in the order it calls them give the same pixels, every draw used; 200 seeds reach every
    sub-policy."""
    image = bench.photo((96, 72), 4)
    policy = autoaugment.AutoAugImageNetPolicy()
    chosen = set()
    for seed in range(200):
        rng = bench.RecordingGenerator(seed)
        ours = T.autoaugment(image, rng)
        with bench.replaying(rng.draws, autoaugment):
            official = policy(image)
        assert np.array_equal(np.asarray(official), np.asarray(ours)), f"seed {seed}"
        chosen.add(rng.draws[0].value)
    assert chosen == set(range(len(policy.policies)))


# -------------------------------------------------------------------- the transform chains

STAND_IN_TRANSFORMS = ("Compose", "Resize", "RandomCrop", "CenterCrop", "RandomHorizontalFlip",
                       "ToTensor", "Normalize")


@pytest.fixture(scope="module")
def stand_in_chains(bench, data_utils, tmp_path_factory):
    """The official chains built by get_loader with our torchvision stand-in (the one official
    runs on machines without torchvision get), whether or not the real torchvision is here."""
    stand_in = SimpleNamespace(**{name: getattr(official_compat, name)
                                  for name in STAND_IN_TRANSFORMS})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_utils, "transforms", stand_in)
        return bench.official_chains(data_utils, tmp_path_factory.mktemp("layouts"))


def test_official_chains_with_our_torchvision_stand_in_give_our_tensors(
        bench, autoaugment, stand_in_chains):
    """Each dataset's official eval chain gives EvalTransform's tensor, and its train chain,
    with our draws replayed (crop, flip, AutoAugment for Cars and iNat2017), TrainTransform's,
    to float32 rounding: the stand-in is faithful to our pipeline."""
    checks = bench.compare(stand_in_chains, autoaugment, [bench.photo((500, 375), 0)], range(3))
    assert all(check.ok for check in checks), "\n".join(check.line() for check in checks)
    assert [(c.dataset, c.chain) for c in checks] == \
        [(name, chain) for name in DATASET_NAMES for chain in ("eval", "train")]


def test_official_chain_comparison_catches_a_chain_that_draws_otherwise(
        bench, autoaugment, stand_in_chains):
    """The replay is no formality: CUB's official chain (no AutoAugment) against our Cars
    transform (AutoAugment) leaves our draws unused, Cars' against CUB's runs out of them."""
    swapped = {"cars": {"train": stand_in_chains["cub"]["train"],
                        "test": stand_in_chains["cars"]["test"]},
               "cub": {"train": stand_in_chains["cars"]["train"],
                       "test": stand_in_chains["cub"]["test"]}}
    cars, cub = (check for check in bench.compare(swapped, autoaugment,
                                                  [bench.photo((64, 48), 0)], range(1))
                 if check.chain == "train")
    assert not cars.ok and "the official code used 3 of our" in cars.problems[0]
    assert not cub.ok and "random.randint(0, 23) after all 3 of our draws" in cub.problems[0]


def test_official_chains_with_the_real_torchvision_give_our_tensors(
        bench, data_utils, autoaugment, tmp_path):
    if torchvision_is_a_stand_in():
        pytest.skip(TORCHVISION_MISSING)
    chains = bench.official_chains(data_utils, tmp_path)
    checks = bench.compare(chains, autoaugment, bench.photos(), range(5))
    assert all(check.ok for check in checks), "\n".join(check.line() for check in checks)


def test_official_transforms_bench_skips_where_torchvision_is_missing(tmp_path):
    """bench/gpu_check.sh runs the script everywhere; without torchvision it says so and passes."""
    if not torchvision_is_a_stand_in():
        pytest.skip("torchvision is importable here: the script compares instead of skipping")
    done = subprocess.run([sys.executable, str(BENCH / "official_transforms.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(BENCH.parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("skipped: torchvision not importable")
    result = json.loads((tmp_path / "official-transforms.json").read_text())
    assert result["status"] == "skipped" and "torchvision" in result["reason"]
