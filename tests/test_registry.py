import textwrap

import pytest

from gradbench import registry
from gradbench.errors import GradbenchError

BUILT_IN = {
    "backprop",
    "fd-forward",
    "fd-central",
    "fd-naive",
    "forward-mode",
    "complex-step",
    "forward-gradient",
    "spsa",
}


def test_built_in_methods_come_from_entry_points():
    entries = registry.discover()
    assert BUILT_IN <= set(entries)
    assert all(entries[n].available and "entry point" in entries[n].origin for n in BUILT_IN)


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


GOOD = """
    from gradbench import Method

    class Zero(Method):
        name = "zero"
        kind = "approximate"
        description = "always zero"
        def cost(self, net):
            return 1.0
        def prepare(self, problem):
            import numpy as np
            return lambda theta: (problem.loss(theta), np.zeros_like(theta))
"""


def test_local_file_methods_are_listed(tmp_path):
    entries = registry.discover([write(tmp_path, "zero.py", GOOD)])
    assert entries["zero"].available
    assert entries["zero"].origin.endswith("zero.py:Zero")


def test_missing_dependency_is_unavailable_with_reason(tmp_path):
    body = GOOD.replace(
        'kind = "approximate"', 'kind = "approximate"\n        requires = ("no_such_module_xyz",)'
    )
    entry = registry.discover([write(tmp_path, "needs.py", body)])["zero"]
    assert not entry.available
    assert "no_such_module_xyz" in entry.reason


def test_import_failure_is_listed_not_fatal(tmp_path):
    entry = registry.discover([write(tmp_path, "broken.py", "import no_such_module_xyz\n")])[
        "broken"
    ]
    assert not entry.available
    assert "ModuleNotFoundError" in entry.reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def f(:\n", "syntax error on line 1"),
        ("x = 1\n", "defines no subclass"),
        (GOOD.replace('name = "zero"', ""), "missing or empty 'name'"),
        (GOOD.replace('kind = "approximate"', 'kind = "magic"'), "kind 'magic' is not one of"),
        (GOOD.replace('name = "zero"', 'name = "backprop"'), "already taken"),
    ],
)
def test_bad_plugin_files_give_one_clear_error(tmp_path, body, message):
    with pytest.raises(GradbenchError, match=message):
        registry.discover([write(tmp_path, "bad.py", body)])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(GradbenchError, match="plugin file not found"):
        registry.discover([str(tmp_path / "nope.py")])


def test_unknown_method_is_refused():
    with pytest.raises(GradbenchError, match="unknown method 'nope'"):
        registry.select(registry.discover(), ["backprop", "nope"])
