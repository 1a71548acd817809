"""Fake gradient methods that misbehave on purpose, for the harness tests."""

import time

import numpy as np

from gradbench import Method


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


class WrongGradient(_Fake):
    """Claims to be exact but returns backprop's gradient × 1.1: must be recorded wrong."""

    name = "fake-wrong"
    kind = "exact"

    def tolerance(self, dtype):
        return 1e-8

    def prepare(self, problem):
        from gradbench.methods.backprop import Backprop

        exact = Backprop().prepare(problem)

        def grad_fn(theta):
            loss, grad = exact(theta)
            return loss, 1.1 * grad

        return grad_fn


class WritesTheta(_Fake):
    """Writes into the θ it is handed: must fail in its own cells only."""

    name = "fake-writes-theta"

    def prepare(self, problem):
        def grad_fn(theta):
            theta[0] += 1.0
            return problem.loss(theta), np.zeros_like(theta)

        return grad_fn
