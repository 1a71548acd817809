"""Profiles from TOML, in process: each rule of config.load / validate pinned by one
expected value or one expected message."""

import re

import numpy as np
import pytest

from gradbench import config
from gradbench.config import Settings, TrainSettings
from gradbench.errors import GradbenchError


def _load(tmp_path, text, profile="p"):
    path = tmp_path / "grids.toml"
    path.write_text(text)
    return config.load(profile, path)


def test_profile_overrides_default_key_by_key(tmp_path):
    s = _load(
        tmp_path,
        "[default]\nN = [2, 3]\nB = 16\nbudget_s = 4.0\n"
        "[default.train]\nseeds = 5\nbudget_evals = 50\n"
        "[p]\nB = 8\nmethods = ['backprop']\n[p.train]\nsizes = [[4, 1]]\nbudget_evals = 200\n",
    )
    assert (s.N, s.B, s.budget_s, s.methods) == ((2, 3), 8, 4.0, ("backprop",))
    assert (s.L, s.hard_limit_s) == (Settings.L, Settings.hard_limit_s)  # untouched defaults
    assert s.train == TrainSettings(sizes=((4, 1),), seeds=5, budget_evals=200)
    assert isinstance(s.train.sizes[0], tuple)


def test_a_profile_without_default_section(tmp_path):
    assert _load(tmp_path, "[p]\nL = [3]\n") == Settings(L=(3,))


def test_the_packaged_grids_load():
    for profile in ("default", "quick"):
        assert isinstance(config.load(profile), Settings)
    assert config.load("quick").train.budget_evals == 1000


@pytest.mark.parametrize(
    ("text", "profile", "message"),
    [
        ("[a]\n[b]\n", "nope", "unknown profile 'nope' in {path}; profiles: a, b"),
        ("", "p", "unknown profile 'p' in {path}; profiles: none"),
        ("[p\n", "p", "config file {path} is not valid TOML: "),
        ("[p]\nNn = 1\n", "p", "{path} [p]: unknown key 'Nn'; known: N, L, B,"),
        ("[p.train]\nbudget = 1\n", "p", "{path} [p].train: unknown key 'budget'; known: sizes,"),
        ("[p]\nN = 4\n", "p", "{path} [p]: N = 4 has the wrong type"),
        ("[p]\nB = 2.5\n", "p", "{path} [p]: B = 2.5 has the wrong type"),
        ("[p]\nB = true\n", "p", "{path} [p]: B = True has the wrong type"),
        ("[p]\nbias = 1\n", "p", "{path} [p]: bias = 1 has the wrong type"),
        ("[p]\nmethods = 'backprop'\n", "p", "{path} [p]: methods = 'backprop' has the wrong"),
        ("[p]\nactivation = 3\n", "p", "{path} [p]: activation = 3 has the wrong type"),
        ("[p]\nN = [0]\n", "p", "{path} [p]: N must be a positive integer, got 0"),
        ("[p]\nL = [2, -1]\n", "p", "{path} [p]: L must be a positive integer, got -1"),
        ("[p]\nloss = 'hinge'\n", "p", "{path} [p]: unknown loss 'hinge'; choose from"),
        ("[p]\nB = 0\n", "p", "{path} [p]: B must be a positive integer, got 0"),
        ("[p]\nbudget_s = 0\n", "p", "{path} [p]: budget_s must be positive"),
        ("[p]\nhard_limit_s = -1.0\n", "p", "{path} [p]: hard_limit_s must be positive"),
        ("[p]\nmax_time_s = 0.0\n", "p", "{path} [p]: max_time_s must be positive"),
        ("[p]\ncell_time_s = 0\n", "p", "{path} [p]: cell_time_s must be positive"),
        ("[p]\nhard_limit_s = 1.0\n", "p", "{path} [p]: hard_limit_s must be at least budget_s"),
        ("[p.train]\nsizes = [[2, 1, 3]]\n", "p", "{path} [p]: train size [2, 1, 3] is not [N, L]"),
        ("[p.train]\nsizes = [[2, 0]]\n", "p", "{path} [p]: L must be a positive integer, got 0"),
        ("[p]\nmethods = []\n", "p", "{path} [p]: methods is empty (leave it out for every"),
        ("[p.train]\nseeds = 0\n", "p", "{path} [p]: train.seeds must be at least 1"),
        ("[p.train]\nbudget_evals = 0.5\n", "p", "{path} [p]: train.budget_evals must be at"),
        ("[p.train]\nper_class = 0\n", "p", "{path} [p]: train.per_class must be at least 1"),
        ("[p.train]\nmax_train = 0\n", "p", "{path} [p]: train.max_train must be at least 1"),
        ("[p.train]\nn_test = -1\n", "p", "{path} [p]: train.n_test must be ≥ 0 and train.lr_"),
        ("[p.train]\nlr_grid = []\n", "p", "{path} [p]: train.n_test must be ≥ 0 and train.lr_"),
        ("[p.train]\nlr_grid = [0.1, 0.0]\n", "p", "{path} [p]: train.n_test must be ≥ 0 and"),
    ],
)
def test_bad_profiles_are_refused_with_one_message(tmp_path, text, profile, message):
    path = tmp_path / "grids.toml"
    path.write_text(text)
    with pytest.raises(GradbenchError) as caught:
        config.load(profile, path)
    assert str(caught.value).startswith(message.format(path=path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(GradbenchError, match=re.escape(f"config file not found: {tmp_path}/x")):
        config.load("p", tmp_path / "x")


def test_an_integer_is_a_float_setting_but_a_float_is_not_an_integer(tmp_path):
    assert _load(tmp_path, "[p]\nbudget_s = 3\nhard_limit_s = 30\n").budget_s == 3
    with pytest.raises(GradbenchError, match="seed = 1.0 has the wrong type"):
        _load(tmp_path, "[p]\nseed = 1.0\n")


def test_the_smallest_allowed_values():
    s = Settings(B=1, budget_s=2.0, hard_limit_s=2.0)  # hard limit equal to the budget
    assert config.validate(s, "here") is s


def test_the_default_profile_is_the_default():
    assert config.load() == config.load("default", config.DEFAULT_FILE)
    assert config.load().N[-1] == 256


def test_validate_names_where_the_settings_came_from():
    with pytest.raises(GradbenchError, match=r"^command line: B must be a positive integer"):
        config.validate(Settings(B=0), "command line")


def test_settings_build_the_network_and_problem_they_describe():
    s = Settings(B=5, activation="relu", loss="mse", bias=False, dtype="float32", seed=3)
    net = s.network(4, 2)
    assert (net.N, net.L, net.activation, net.loss, net.bias, net.dtype) == (
        4, 2, "relu", "mse", False, "float32",
    )  # fmt: skip
    p = s.problem(4, 2)
    assert p.net == net and p.B == 5 and p.seed == 3 and p.X.dtype == np.float32
    assert s.problem(4, 2, seed=7).seed == 7
    assert not np.array_equal(s.problem(4, 2, seed=7).X, p.X)


@pytest.mark.parametrize(
    ("N", "P", "n"),
    [(4, 20, 40), (4, 100, 100), (4, 4096, 4096), (4, 4097, 4096), (500, 10**6, 5000)],
)
def test_training_samples_are_P_clipped_to_10_per_class_and_4096(N, P, n):
    assert TrainSettings().n_train(N, P) == n


@pytest.mark.parametrize(
    ("optimizer", "gradient_free", "P", "runs"),
    [
        ("cma", True, 100, True),
        ("cma", True, 101, False),  # its own limit, not the gradient-free one
        ("powell", True, 50, True),
        ("powell", True, 51, False),  # the limit of every gradient-free optimizer
        ("gd/backprop", False, 10**9, True),  # with a gradient: no limit
    ],
)
def test_max_P_limits_an_optimizer_or_every_gradient_free_one(optimizer, gradient_free, P, runs):
    t = TrainSettings(max_P=(("cma", 100), ("gradient-free", 50)))
    assert t.runs_at(optimizer, gradient_free, P) is runs


def test_without_max_P_every_optimizer_runs_at_every_size():
    assert TrainSettings().runs_at("powell", True, 10**9) is True


def test_no_held_out_samples_is_allowed(tmp_path):
    assert _load(tmp_path, "[p.train]\nn_test = 0\n").train.n_test == 0


def test_max_P_is_a_table_of_sizes_by_optimizer(tmp_path):
    t = _load(tmp_path, "[p.train]\nmax_P = {powell = 50, cma = 100}\nseeds = 3\n").train
    assert (t.max_P, t.seeds) == ((("cma", 100), ("powell", 50)), 3)


@pytest.mark.parametrize("value", ["3", "{cma = 1.5}", "[100]"])
def test_max_P_of_another_shape_is_refused(value, tmp_path):
    with pytest.raises(GradbenchError) as caught:
        _load(tmp_path, f"[p.train]\nmax_P = {value}\n")
    path = tmp_path / "grids.toml"
    assert str(caught.value) == f"{path} [p].train: max_P must be a table of integers"


def test_a_config_path_that_is_a_folder_is_named_with_the_reason(tmp_path):
    with pytest.raises(GradbenchError) as caught:
        config.load("p", tmp_path)
    assert str(caught.value) == f"cannot read config file {tmp_path}: Is a directory"
