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
    """What ``gradbench train`` runs: (N, L) sizes, seeds, seconds per run, optimizers."""

    sizes: tuple[tuple[int, int], ...] = ((2, 1), (4, 1), (8, 2))
    seeds: int = 3
    budget_s: float = 1.0
    optimizers: tuple[str, ...] = ("gd/backprop",)


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
    prepare_budget_s: float = 60.0
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
