"""For a fixed seed, PyTorch's and Jittor's loaders yield bit-identical batches (images, labels,
indices), with 0 and 2 workers, for several epochs, and after a resume mid-epoch."""

import numpy as np
import pytest

import transfg.jittor  # noqa: F401  (prepares jittor before it is imported)
from transfg.data.bundled import ROOT as DIGITS_ROOT
from transfg.data.pipeline import EvalView, RunView, TrainStream, TrainView, epoch_order
from transfg.data.readers import read_split
from transfg.data.transforms import EvalTransform, TrainTransform
from transfg.jittor.data import make_loader as jittor_loader
from transfg.torch.data import make_loader as torch_loader

SAMPLES = read_split("digits", DIGITS_ROOT, "train")[:36]
BATCH = 8
TRANSFORM = TrainTransform(43, 32, autoaugment=True)  # AutoAugment: the most random decisions


def view(epoch, order="reshuffle"):
    return TrainView(SAMPLES, TRANSFORM, epoch=epoch, order_seed=11, augment_seed=12,
                     batch=BATCH, order=order)


def run_view(first, last):
    return RunView(SAMPLES, TRANSFORM, first=first, last=last, order_seed=11, augment_seed=12,
                   batch=BATCH)


def torch_batches(v, workers, drop_last=True):
    loader = torch_loader(v, BATCH, workers, drop_last=drop_last)
    return [tuple(t.numpy() for t in batch) for batch in loader]


def jittor_batches(v, workers, drop_last=True):
    loader = jittor_loader(v, BATCH, workers, drop_last=drop_last)
    return [tuple(x.numpy() for x in batch) for batch in loader]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])  # images, bit for bit
        np.testing.assert_array_equal(x[1].astype(np.int64), y[1].astype(np.int64))  # labels
        np.testing.assert_array_equal(x[2].astype(np.int64), y[2].astype(np.int64))  # indices


@pytest.fixture(scope="module")
def reference():
    """Two epochs assembled by hand from the views, no loader involved."""
    epochs = []
    for epoch in range(2):
        v = view(epoch)
        items = [v[i] for i in range(len(v))]
        epochs.append([tuple(np.stack([np.asarray(item[k]) for item in items[i:i + BATCH]])
                             for k in range(3)) for i in range(0, len(items), BATCH)])
    return epochs


@pytest.mark.parametrize("workers", [0, 2])
def test_both_frameworks_yield_identical_batches(reference, workers):
    for epoch in range(2):
        assert len(reference[epoch]) == 36 // BATCH  # the incomplete last batch is dropped
        assert_same(torch_batches(view(epoch), workers), reference[epoch])
        assert_same(jittor_batches(view(epoch), workers), reference[epoch])


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_the_same_sequence(reference, workers):
    assert TrainStream(len(SAMPLES), BATCH).steps_per_epoch == 4
    resumed = run_view(6, 8)  # update 6 of 4-update epochs: epoch 1, third batch, to its end
    assert_same(torch_batches(resumed, workers), reference[1][2:])
    assert_same(jittor_batches(resumed, workers), reference[1][2:])


@pytest.mark.parametrize("workers", [0, 2])
def test_one_loader_over_a_whole_run_yields_the_epochs_end_to_end(reference, workers):
    """RunView (one loader, workers started once) = the epochs' TrainViews one after the other,
    also when it starts mid-epoch (a resume) and ends mid-epoch (the run's last update)."""
    run = run_view(2, 7)
    expected = reference[0][2:] + reference[1][:3]
    assert len(run) == 5 * BATCH
    assert_same(torch_batches(run, workers), expected)
    assert_same(jittor_batches(run, workers), expected)
    with pytest.raises(IndexError, match=r"position 40 outside 0\.\.39"):
        run[40]


def test_epochs_reshuffle_unless_the_official_fixed_order_is_asked_for():
    assert not np.array_equal(epoch_order(36, 11, 0), epoch_order(36, 11, 1))
    np.testing.assert_array_equal(epoch_order(36, 11, 0, "fixed"), epoch_order(36, 11, 5, "fixed"))
    fixed = [view(e, order="fixed").indices for e in range(3)]
    assert all(np.array_equal(fixed[0], f) for f in fixed[1:])
    # The same sample in another epoch is augmented differently.
    first = view(0, order="fixed")[0][0]
    assert not np.array_equal(first, view(1, order="fixed")[0][0])


def test_a_sample_does_not_depend_on_who_asks_or_in_what_order():
    v = view(3)
    forward = [v[i][0] for i in range(5)]
    backward = [view(3)[i][0] for i in reversed(range(5))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward, strict=True))


def test_evaluation_sees_every_test_image_exactly_once_in_order():
    test = read_split("digits", DIGITS_ROOT, "test")[:21]
    for batches in (torch_batches(EvalView(test, EvalTransform(43, 32)), 0, drop_last=False),
                    jittor_batches(EvalView(test, EvalTransform(43, 32)), 0, drop_last=False)):
        indices = np.concatenate([b[2] for b in batches])
        np.testing.assert_array_equal(indices, np.arange(21))


def test_order_option_is_validated():
    with pytest.raises(ValueError, match="order='random'; allowed: reshuffle, fixed"):
        epoch_order(10, 0, 0, "random")
    with pytest.raises(ValueError, match="3 training images cannot fill one batch of 8"):
        TrainStream(3, 8)
