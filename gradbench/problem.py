"""A Problem: one network, seeded teacher–student data and a starting point θ₀.

Methods that need only loss values call :meth:`Problem.loss` as a black box; methods that
use the structure read ``problem.net``, ``problem.X``, ``problem.target`` and
``problem.layers(θ)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradbench.model import Array, Layer, Network

TEACHER_SCALE = 2.0  # a sharper teacher than the student's init, so labels are not all alike


def read_only(a: Array) -> Array:
    """A view of ``a`` that cannot be written (``a`` itself is left as it was)."""
    view = np.asarray(a).view()
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
        labels = self.target if self.target.ndim == 1 else self.target.argmax(axis=-1)
        return float((self.logits(theta).argmax(axis=-1) == labels).mean())


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
) -> Problem:
    """A seeded teacher–student problem: a random teacher of the same shape labels
    Gaussian inputs, so a student started at θ₀ can reach a low loss."""
    if isinstance(B, bool) or not isinstance(B, int | np.integer) or B < 1:
        raise ValueError(f"B must be a positive integer, got {B!r}")
    net = Network(N, L, activation, loss, bias, dtype)
    data_rng, teacher_rng, student_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    X = data_rng.standard_normal((B, N)).astype(dtype)
    teacher = net.init(teacher_rng, scale=TEACHER_SCALE)
    teacher_logits = net.run(net.layers(teacher), X)
    target = teacher_logits.argmax(axis=-1) if loss == "cross_entropy" else teacher_logits
    return Problem(net, X, target, net.init(student_rng), seed)
