"""`audit explain`: boxes land on the expected pixels for both splits through resize and crop;
the prediction equals the one the evaluation recorded for the same image and checkpoint; bad
images and checkpoints get clear errors."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from audit.cli import main
from audit.explain import (
    Bundle,
    ExplainError,
    draw_boxes,
    explain,
    input_box_to_original,
    load,
    open_image,
    rollout,
)
from transfg.config import ModelConfig, tiny
from transfg.data.bundled import ROOT as DIGITS
from transfg.data.readers import read_split
from transfg.data.transforms import EvalTransform
from transfg.spec import RunSpec, Seeds, TrainConfig


@pytest.mark.parametrize("split,index,expected", [
    # 448 px overlap: stride 12, 37 x 37 patches; patch 37*2+3 sits at x 36, y 24 of the input.
    ("overlap", 37 * 2 + 3, (36, 24, 52, 40)),
    # non-overlap: stride 16, 28 x 28 patches; patch 28+2 sits at x 32, y 16.
    ("non-overlap", 28 + 2, (32, 16, 48, 32)),
])
def test_boxes_map_through_crop_and_resize(split, index, expected):
    config = ModelConfig(split=split)
    assert config.patch_box(index) == expected
    # A 1200 x 600 original: resized to 600 x 600 (x / 2), center crop 448 at offset 76.
    x0, y0, x1, y1 = expected
    box = input_box_to_original(expected, EvalTransform(600, 448), 1200, 600)
    assert box == ((x0 + 76) * 2, y0 + 76, (x1 + 76) * 2, y1 + 76)


class KnownSelection(torch.nn.Module):
    """A stand-in model whose heads select known patches and whose rollout peaks there."""

    def __init__(self, config, patches):
        super().__init__()
        self.config, self.patches = config, patches

    def forward(self, x):
        tokens, heads = self.config.num_tokens, len(self.patches)
        attn = torch.full((1, heads, tokens, tokens), 0.1 / tokens)
        for h, p in enumerate(self.patches):
            attn[0, h, :, p + 1] = 1.0  # every token attends to the selected patch
        logits = torch.arange(self.config.num_classes, dtype=torch.float32)[None]
        return logits, {"attn_weights": [attn, attn],
                        "part_inx": torch.tensor([self.patches])}


@pytest.mark.parametrize("split", ["overlap", "non-overlap"])
def test_explain_boxes_the_selected_patches_on_the_original_image(split):
    config = ModelConfig(split=split, num_classes=7)
    rows, cols = config.grid
    patches = [0, cols - 1, rows * cols - 1, cols * 3 + 5]
    bundle = Bundle(KnownSelection(config, patches), config, EvalTransform(600, 448), None,
                    "test", "cub", None)
    image = Image.new("RGB", (900, 300), (0, 0, 0))
    result = explain(bundle, image)
    assert result.patches == patches
    assert [t["class"] for t in result.top5] == [6, 5, 4, 3, 2]
    sx, sy = 900 / 600, 300 / 600
    for patch, box in zip(patches, result.boxes, strict=True):
        x0, y0, x1, y1 = config.patch_box(patch)
        assert box == pytest.approx(((x0 + 76) * sx, (y0 + 76) * sy, (x1 + 76) * sx,
                                     (y1 + 76) * sy))
    # The rollout peaks on the selected patches and the drawing is red on the box's edge.
    assert np.argmax(rollout([w.numpy() for w in bundle.model(None)[1]["attn_weights"]])[0, 1])\
        == patches[1]
    drawn = np.asarray(draw_boxes(image, result))
    x, y = (round(v) for v in result.boxes[3][:2])
    assert tuple(drawn[y, x]) == (230, 0, 0)


def train_tiny(run, framework="torch"):
    """A tiny run on the digits, trained 4 updates, evaluated and checkpointed at the end."""
    from transfg.train import main as train_main

    spec = RunSpec(framework, tiny(), TrainConfig(steps=4, warmup_steps=1, eval_every=4,
                                                checkpoint_every=4, workers=0, batch_size=8,
                                                eval_batch_size=32),
                   "digits", str(DIGITS), Seeds.from_seed(3), subset={"train": 64, "test": 24})
    (run / "spec.json").write_text(json.dumps(spec.to_dict()))
    assert train_main([str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("run"))


def assert_same_as_evaluation(run, atol):
    bundle = load(run / "checkpoints" / "last.npz")
    assert bundle.dataset == "digits" and bundle.class_names[:2] == ["digit 0", "digit 1"]
    samples = read_split("digits", DIGITS, "test")[:24]
    with np.load(run / "eval-4.npz") as recorded:
        for sample, classes, scores in zip(samples, recorded["top5_classes"],
                                           recorded["top5_scores"], strict=True):
            result = explain(bundle, open_image(sample.path))
            assert result.top5[0]["class"] == classes[0]
            np.testing.assert_allclose([t["score"] for t in result.top5], scores, atol=atol)


def test_the_prediction_equals_the_evaluations(trained_run):
    assert_same_as_evaluation(trained_run, atol=1e-5)


def test_a_jittor_checkpoint_explains_like_its_evaluation(tmp_path):
    """Checkpoints are framework-neutral: a Jittor run's, explained through PyTorch, predicts
    what the Jittor evaluation recorded (float32 across frameworks: scores to 1e-4)."""
    (tmp_path / "jittor").mkdir()
    assert_same_as_evaluation(train_tiny(tmp_path / "jittor", "jittor"), atol=1e-4)


def test_cli_writes_the_boxed_image_and_json(trained_run, tmp_path, capsys):
    image = read_split("digits", DIGITS, "test")[0].path
    assert main(["explain", str(trained_run / "checkpoints" / "last.npz"), str(image), "-o",
                 str(tmp_path), "--json", "--heatmap"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert len(result["top5"]) == 5 and len(result["boxes"]) == 4  # tiny: 4 heads
    assert Image.open(result["files"]["parts"]).size == Image.open(image).size
    assert Image.open(result["files"]["heatmap"]).size == Image.open(image).size


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_images_are_refused_clearly(tmp_path):
    with pytest.raises(ExplainError, match="not an image"):
        open_image(b"%PDF-1.4 definitely not an image")
    bomb = png(Image.new("1", (8000, 8000)))  # 64 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(ExplainError, match="8000 x 8000 pixels, above the"):
        open_image(bomb)
    with pytest.raises(ExplainError, match="above the 1000-byte limit"):
        open_image(png(Image.new("RGB", (64, 64))) + b"\0" * 1000, max_bytes=1000)
    with pytest.raises(ExplainError, match="cannot be read"):
        open_image(tmp_path / "missing.png")


def test_bad_checkpoints_are_refused_clearly(tmp_path, trained_run, capsys):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ExplainError, match="not a TransFG checkpoint"):
        load(junk, dataset="digits")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __header__=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ExplainError, match="not a TransFG checkpoint"):
        load(pickled, dataset="digits")
    # A 10-class checkpoint against a dataset with another class count.
    cub_like = tmp_path / "cub"
    (cub_like / "images").mkdir(parents=True)
    (cub_like / "classes.txt").write_text("1 a\n2 b\n3 c\n")
    with pytest.raises(ExplainError, match="10 classes"):
        load(trained_run / "checkpoints" / "last.npz", "cub", str(cub_like))
    assert main(["explain", str(junk), "x.png", "--dataset", "digits"]) == 2
    assert "not a TransFG checkpoint" in capsys.readouterr().err
