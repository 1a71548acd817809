"""Fake gradient methods that misbehave on purpose, for the harness tests."""

import time

import numpy as np

from gradbench import Method
from gradbench.methods.backprop import Backprop


class _Fake(Method):
    kind = "approximate"
    description = "a fake for the harness tests"

    def cost(self, net):
        return 1.0


class Raises(_Fake):
    name = "fake-raises"

    def prepare(self, problem):
        def grad_fn(theta):
            raise RuntimeError("boom")

        return grad_fn


class ReturnsNaN(_Fake):
    name = "fake-nan"

    def prepare(self, problem):
        return lambda theta: (problem.loss(theta), np.full_like(theta, np.nan))


class WrongShape(_Fake):
    name = "fake-shape"

    def prepare(self, problem):
        return lambda theta: (problem.loss(theta), np.zeros(3))


class Sleeps(_Fake):
    name = "fake-sleeps"

    def prepare(self, problem):
        def grad_fn(theta):
            time.sleep(5)

        return grad_fn


class Huge(_Fake):
    """Declares an enormous cost: the harness must skip it by projection, never call it."""

    name = "fake-huge"

    def cost(self, net):
        return 1e12

    def prepare(self, problem):
        raise AssertionError("a cell projected over budget was prepared")


class Slow(_Fake):
    """Takes a visible while per call, so a run can be interrupted between cells."""

    name = "fake-slow"

    def prepare(self, problem):
        def grad_fn(theta):
            time.sleep(0.05)
            return problem.loss(theta), np.zeros_like(theta)

        return grad_fn


class OffByTenPercent(Method):
    """Claims to be exact but returns backprop's gradient × 1.1: must be caught as wrong."""

    name = "fake-off-by-ten-percent"
    kind = "exact"
    description = "backprop × 1.1, a wrong gradient for the checker's tests"

    def cost(self, net):
        return 3.0

    def prepare(self, problem):
        backprop = Backprop().prepare(problem)

        def grad_fn(theta):
            loss, grad = backprop(theta)
            return loss, grad * np.asarray(1.1, grad.dtype)

        return grad_fn


class WritesTheta(_Fake):
    """Scribbles into the θ it is handed (as a careless in-place update would)."""

    name = "fake-writes-theta"

    def prepare(self, problem):
        def grad_fn(theta):
            theta[0] += 1.0
            return problem.loss(theta), np.zeros_like(theta)

        return grad_fn


class WritesData(_Fake):
    """Scribbles into the shared inputs problem.X."""

    name = "fake-writes-data"

    def prepare(self, problem):
        def grad_fn(theta):
            problem.X[0, 0] = 0.0
            return problem.loss(theta), np.zeros_like(theta)

        return grad_fn
