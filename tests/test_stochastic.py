"""Unbiasedness: the mean of M estimates approaches ∇L within a bound derived from each
estimator's own per-entry variance (not a loose constant)."""

import numpy as np
import pytest

from gradbench.methods.backprop import Backprop
from gradbench.methods.stochastic import SPSA, ForwardGradient
from gradbench.problem import make_problem

M = 4000


def per_entry_variance(name: str, g: np.ndarray) -> np.ndarray:
    """Var ĝᵢ: Gaussian v gives ‖g‖² + gᵢ²; Rademacher Δ gives ‖g‖² − gᵢ²."""
    total = float(g @ g)
    return total + g**2 if name == "forward-gradient" else total - g**2


@pytest.mark.parametrize("method", [ForwardGradient, SPSA])
def test_mean_of_estimates_approaches_the_gradient(method):
    p = make_problem(3, 2, 16, seed=5)
    _, g = Backprop().prepare(p)(p.theta0)
    grad_fn = method().prepare(p)
    estimates = np.array([grad_fn(p.theta0)[1] for _ in range(M)])
    z = (estimates.mean(axis=0) - g) / np.sqrt(per_entry_variance(method.name, g) / M)
    # 24 entries at 4.5 standard errors: a false alarm has probability < 2e-4
    assert np.abs(z).max() < 4.5
    # and the spread is the theory's, so the test would notice a wrongly scaled estimator;
    # the sample variance's own standard error comes from the sample's fourth moment
    centred = estimates - g
    var, m4 = (centred**2).mean(axis=0), (centred**4).mean(axis=0)
    z_var = (var - per_entry_variance(method.name, g)) / np.sqrt((m4 - var**2) / M)
    assert np.abs(z_var).max() < 4.5


@pytest.mark.parametrize("method", [ForwardGradient, SPSA])
def test_seeded_sequence_is_reproducible_and_varies(method):
    p = make_problem(3, 2, 16, seed=5)
    a, b = method().prepare(p), method().prepare(p)
    first, second = a(p.theta0)[1], a(p.theta0)[1]
    np.testing.assert_array_equal(first, b(p.theta0)[1])
    assert not np.array_equal(first, second)
