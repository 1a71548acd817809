"""Sweep settings from a TOML file of named profiles (see ``grids.toml``).

A profile overrides [default] key by key; unknown keys, wrong types and impossible values
are refused with one line naming the file, the profile and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from gradbench.errors import GradbenchError
from gradbench.model import Network
from gradbench.problem import Problem, make_problem

DEFAULT_FILE = Path(__file__).with_name("grids.toml")


@dataclass(frozen=True)
class TrainSettings:
    """What ``gradbench train`` runs: (N, L) sizes, seeds, the evaluation budget of every
    run (forward-pass equivalents), optimizers, and the data: n_train = P training samples,
    at least ``per_class``·N and at most ``max_train`` (never under ``per_class``·N), and
    ``n_test`` held-out samples. ``lr_grid``: gradient descent's learning rates, tuned per
    size. ``max_P``: (optimizer or "gradient-free", largest P it runs at) pairs, for
    optimizers whose own work (not the loss) would outgrow the time available."""

    sizes: tuple[tuple[int, int], ...] = ((2, 1), (4, 1), (8, 2))
    seeds: int = 10
    budget_evals: float = 2000.0
    optimizers: tuple[str, ...] = ("gd/backprop",)
    per_class: int = 10
    max_train: int = 4096
    n_test: int = 1000
    lr_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    max_P: tuple[tuple[str, int], ...] = ()

    def runs_at(self, optimizer: str, gradient_free: bool, P: int) -> bool:
        """Whether ``optimizer`` runs at size P under ``max_P``."""
        limits = dict(self.max_P)
        limit = limits.get(optimizer, limits.get("gradient-free") if gradient_free else None)
        return limit is None or P <= limit

    def n_train(self, N: int, P: int) -> int:
        """Training samples at width N and P parameters: P, clipped to
        [per_class·N, max(max_train, per_class·N)]."""
        return max(self.per_class * N, min(P, self.max_train))


@dataclass(frozen=True)
class Settings:
    """One profile: the grid of (N, L), the network options and the timing budget."""

    N: tuple[int, ...] = (2, 4, 8)
    L: tuple[int, ...] = (1, 2)
    B: int = 64
    dtype: str = "float64"
    activation: str = "tanh"
    loss: str = "cross_entropy"
    bias: bool = True
    seed: int = 0
    budget_s: float = 2.0
    hard_limit_s: float = 20.0
    max_time_s: float = 0.2
    cell_time_s: float = 1.5
    prepare_budget_s: float = 10.0
    passes: int = 1
    methods: tuple[str, ...] | None = None
    train: TrainSettings = field(default_factory=TrainSettings)

    def network(self, N: int, L: int) -> Network:
        return Network(N, L, self.activation, self.loss, self.bias, self.dtype)

    def problem(self, N: int, L: int, seed: int | None = None) -> Problem:
        """The teacher–student problem at (N, L) with these options (the profile's seed
        unless one is given)."""
        return make_problem(
            N, L, self.B, activation=self.activation, loss=self.loss, bias=self.bias,
            dtype=self.dtype, seed=self.seed if seed is None else seed,
        )  # fmt: skip


def validate(settings: Settings, where: str) -> Settings:
    """The settings unchanged, or a GradbenchError naming ``where`` and what is wrong."""
    try:
        for name in ("N", "L"):
            if not getattr(settings, name):
                raise ValueError(f"{name} needs at least one value")
        if settings.methods is not None and not settings.methods:
            raise ValueError("methods is empty (leave it out for every method)")
        for N in settings.N:
            for L in settings.L:
                settings.network(N, L)
        for size in settings.train.sizes:
            if len(size) != 2:
                raise ValueError(f"train size {list(size)} is not [N, L]")
            settings.network(*size)
        if settings.B < 1:
            raise ValueError(f"B must be a positive integer, got {settings.B}")
        if settings.passes < 1:
            raise ValueError(f"passes must be a positive integer, got {settings.passes}")
        t = settings.train
        for name in ("seeds", "budget_evals", "per_class", "max_train"):
            if not getattr(t, name) >= 1:
                raise ValueError(f"train.{name} must be at least 1")
        if t.n_test < 0 or not t.lr_grid or min(t.lr_grid) <= 0:
            raise ValueError("train.n_test must be ≥ 0 and train.lr_grid positive rates")
        for name in ("budget_s", "hard_limit_s", "max_time_s", "cell_time_s", "prepare_budget_s"):
            if not getattr(settings, name) > 0:
                raise ValueError(f"{name} must be positive")
        if settings.hard_limit_s < settings.budget_s:
            raise ValueError("hard_limit_s must be at least budget_s")
    except ValueError as exc:
        raise GradbenchError(f"{where}: {exc}") from None
    return settings


def _coerce(cls: type, values: dict, where: str) -> dict:
    """Values typed as the dataclass fields say, lists to tuples; unknown keys refused."""
    known = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in known:
            raise GradbenchError(f"{where}: unknown key {key!r}; known: {', '.join(known)}")
        if key == "train":
            continue
        if key == "max_P":  # an inline table {name = P, …}
            if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
                raise GradbenchError(f"{where}: max_P must be a table of integers")
            out[key] = tuple(sorted(value.items()))
            continue
        default = known[key].default
        ok = (
            isinstance(value, list)
            if isinstance(default, tuple) or key == "methods"
            else isinstance(value, type(default))
            or (isinstance(default, float) and isinstance(value, int))
        )
        if not ok or isinstance(value, bool) != isinstance(default, bool):
            raise GradbenchError(f"{where}: {key} = {value!r} has the wrong type")
        if key == "sizes":
            value = [tuple(v) for v in value]
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def load(profile: str = "default", path: str | Path | None = None) -> Settings:
    """The named profile from ``path`` (the packaged grids.toml when None)."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GradbenchError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GradbenchError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise GradbenchError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if profile not in doc:
        raise GradbenchError(
            f"unknown profile {profile!r} in {path}; profiles: {', '.join(doc) or 'none'}"
        )
    merged = {**doc.get("default", {}), **doc[profile]}
    train = {**doc.get("default", {}).get("train", {}), **doc[profile].get("train", {})}
    where = f"{path} [{profile}]"
    settings = Settings(**_coerce(Settings, merged, where))
    settings = replace(
        settings, train=TrainSettings(**_coerce(TrainSettings, train, where + ".train"))
    )
    return validate(settings, where)
