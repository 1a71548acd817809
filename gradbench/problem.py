"""A Problem: one network, seeded teacher–student data and a starting point θ₀.

Methods that need only loss values call :meth:`Problem.loss` as a black box; methods that
use the structure read ``problem.net``, ``problem.X``, ``problem.target`` and
``problem.layers(θ)``.

Training may also ask for a held-out test set (``n_test`` samples) drawn from the same
teacher and the same input distribution, but from its own random stream: it never changes
the training data, and no method sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradbench.model import Array, Layer, Network

TEACHER_SCALE = 2.0  # a sharper teacher than the student's init, so labels are not all alike


def read_only(a: Array) -> Array:
    """A view of ``a`` that cannot be written (``a`` itself is left as it was)."""
    view = np.asanyarray(a).view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Problem:
    """Network + inputs X ``(B, N)`` + target + θ₀ ``(P,)``.

    The target is the teacher's class labels ``(B,)`` for cross-entropy and the teacher's
    logits ``(B, N)`` for MSE. ``X``, ``target`` and ``theta0`` are read-only views, so a
    method that writes into shared data fails in its own cell instead of spoiling others.
    """

    net: Network
    X: Array
    target: Array
    theta0: Array
    seed: int = 0
    X_test: Array | None = None
    target_test: Array | None = None

    def __post_init__(self) -> None:
        for field in ("X", "target", "theta0"):
            object.__setattr__(self, field, read_only(getattr(self, field)))

    @property
    def B(self) -> int:
        return self.X.shape[0]

    @property
    def P(self) -> int:
        return self.net.P

    def layers(self, theta: Array) -> list[Layer]:
        return self.net.layers(theta)

    def logits(self, theta: Array) -> Array:
        return self.net.run(self.layers(theta), self.X)

    def losses(self, thetas: Array) -> Array:
        """The loss at each of a stack of parameter vectors ``(..., P)`` → ``(...)``."""
        return self.net.loss_fn.value(self.logits(thetas), self.target)

    def loss(self, theta: Array) -> float:
        """The loss at one θ: the black box that value-only methods see."""
        return float(self.losses(theta))

    def accuracy(self, theta: Array) -> float:
        """Fraction of samples whose predicted class is the teacher's class."""
        return _accuracy(self.logits(theta), self.target)

    @property
    def n_test(self) -> int:
        return 0 if self.X_test is None else self.X_test.shape[0]

    def test_loss(self, theta: Array) -> float:
        """The loss at θ on the held-out set (NaN without one)."""
        if self.X_test is None:
            return float("nan")
        logits = self.net.run(self.layers(theta), self.X_test)
        return float(self.net.loss_fn.value(logits, self.target_test))

    def test_accuracy(self, theta: Array) -> float:
        """Held-out accuracy at θ: the teacher's class predicted on unseen inputs."""
        if self.X_test is None:
            return float("nan")
        return _accuracy(self.net.run(self.layers(theta), self.X_test), self.target_test)


def _accuracy(logits: Array, target: Array) -> float:
    labels = target if target.ndim == 1 else target.argmax(axis=-1)
    return float((logits.argmax(axis=-1) == labels).mean())


def _teacher_target(net: Network, teacher: Array, X: Array) -> Array:
    """Class labels (cross-entropy) or logits (MSE) of the teacher on inputs X."""
    logits = net.run(net.layers(teacher), X)
    return logits.argmax(axis=-1) if net.loss == "cross_entropy" else logits


def make_problem(
    N: int,
    L: int,
    B: int = 64,
    *,
    activation: str = "tanh",
    loss: str = "cross_entropy",
    bias: bool = True,
    dtype: str = "float64",
    seed: int = 0,
    n_test: int = 0,
) -> Problem:
    """A seeded teacher–student problem: a random teacher of the same shape labels
    Gaussian inputs, so a student started at θ₀ can reach a low loss. With ``n_test > 0``
    the teacher also labels ``n_test`` held-out inputs from a fourth seeded stream (the
    first three, and so X, target and θ₀, are the same with or without it)."""
    if isinstance(B, bool) or not isinstance(B, int | np.integer) or B < 1:
        raise ValueError(f"B must be a positive integer, got {B!r}")
    if isinstance(n_test, bool) or not isinstance(n_test, int | np.integer) or n_test < 0:
        raise ValueError(f"n_test must be a non-negative integer, got {n_test!r}")
    net = Network(N, L, activation, loss, bias, dtype)
    data_rng, teacher_rng, student_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    X = data_rng.standard_normal((B, N)).astype(dtype)
    teacher = net.init(teacher_rng, scale=TEACHER_SCALE)
    theta0 = net.init(student_rng)
    if not n_test:
        return Problem(net, X, _teacher_target(net, teacher, X), theta0, seed)
    X_test = test_rng.standard_normal((n_test, N)).astype(dtype)
    return Problem(
        net, X, _teacher_target(net, teacher, X), theta0, seed,
        X_test, _teacher_target(net, teacher, X_test),
    )  # fmt: skip
