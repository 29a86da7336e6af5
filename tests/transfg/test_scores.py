import numpy as np

from transfg.scores import softmax_top


def test_top_classes_are_ranked_by_softmax_with_ties_to_the_lower_class():
    logits = np.array([[0.0, 2.0, 2.0, -1.0, 5.0, 1.0, 0.5], [3.0, 0, 0, 0, 0, 0, 0]])
    classes, scores = softmax_top(logits)
    assert classes.tolist() == [[4, 1, 2, 5, 6], [0, 1, 2, 3, 4]]
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(scores[0], expected[[4, 1, 2, 5, 6]], rtol=1e-12)
    assert classes.dtype == np.int64 and scores.dtype == np.float64


def test_fewer_classes_than_k_and_huge_logits_stay_finite():
    classes, scores = softmax_top(np.array([[1000.0, 999.0, -1000.0]], dtype=np.float32))
    assert classes.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(scores.sum(), 1.0)
    assert np.isfinite(scores).all()
