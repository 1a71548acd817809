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


# Each rule pinned by its exact outcome (mutation testing found them loose,
# docs/mutation.md).


class _FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self._target = name, f"fake.module:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_entry_points_may_name_a_class_or_an_instance_and_a_broken_one_is_listed(monkeypatch):
    from gradbench.methods.backprop import Backprop

    class Renamed(Backprop):
        name = "renamed"

    class DuckTyped:  # not a Method subclass and no `requires`: still a method
        name, kind, description = "duck", "exact", "quacks like a method"
        cost = prepare = staticmethod(lambda *args: None)

    fakes = [
        _FakeEntryPoint("backprop", Backprop),
        _FakeEntryPoint("renamed", Renamed()),
        _FakeEntryPoint("duck", DuckTyped()),
        _FakeEntryPoint("broken", ImportError("no module named x\nmore")),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: fakes)
    entries = registry.discover()
    assert list(entries) == ["backprop", "renamed", "duck", "broken"]
    assert isinstance(entries["backprop"].method, Backprop)
    assert entries["renamed"].available and entries["duck"].available
    assert entries["renamed"].origin == "entry point fake.module:renamed"
    broken = entries["broken"]
    assert not broken.available and broken.method is None
    assert broken.origin == "entry point fake.module:broken"
    assert broken.reason == "broken plugin: ImportError: no module named x"


def test_a_plugin_file_lists_its_own_public_classes_only(tmp_path):
    body = textwrap.dedent(GOOD) + (
        "\nfrom gradbench.methods.backprop import Backprop  # imported: not this file's\n"
        "class _Helper(Method):\n    name = 'helper'\n"
    )
    path = write(tmp_path, "mine.py", body)
    entries = registry.load_file(path)
    assert [e.name for e in entries] == ["zero"]
    assert entries[0].origin == f"{path}:Zero"


def test_a_plugin_file_may_use_dataclasses(tmp_path):
    """dataclasses resolve string annotations through sys.modules[cls.__module__]."""
    body = "from __future__ import annotations\nfrom dataclasses import dataclass\n"
    body += textwrap.dedent(GOOD).replace(
        "class Zero(Method):", "@dataclass\nclass Zero(Method):\n    scale: float = 1.0"
    )
    assert registry.load_file(write(tmp_path, "dc.py", body))[0].available


def test_reasons_and_messages_in_full(tmp_path):
    needs = GOOD.replace(
        'kind = "approximate"', 'kind = "approximate"\n        requires = ("m1", "m2")'
    )
    path = write(tmp_path, "needs.py", needs)
    entry = registry.load_file(path)[0]
    assert (entry.reason, entry.origin) == ("needs m1, m2 (not installed)", f"{path}:Zero")
    nameless = write(tmp_path, "nameless.py", GOOD.replace('name = "zero"', ""))
    with pytest.raises(GradbenchError) as caught:
        registry.load_file(nameless)
    assert str(caught.value) == f"plugin {nameless}:Zero: missing or empty 'name' (a string)"
    broken = registry.load_file(write(tmp_path, "broken.py", "import no_such_module_xyz\n"))[0]
    assert (broken.name, broken.origin) == ("broken", str(tmp_path / "broken.py"))
    assert (
        broken.reason == "import failed: ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    empty = write(tmp_path, "empty.py", "x = 1\n")
    with pytest.raises(GradbenchError) as caught:
        registry.load_file(empty)
    assert str(caught.value) == f"plugin file {empty}: defines no subclass of gradbench.Method"
    bad = write(tmp_path, "bad.py", "x = 1\ndef f(:\n")
    with pytest.raises(GradbenchError) as caught:
        registry.load_file(bad)
    assert str(caught.value).startswith(f"plugin file {bad}: syntax error on line 2: ")
    with pytest.raises(GradbenchError) as caught:
        registry.load_file(tmp_path / "nope.py")
    assert str(caught.value) == f"plugin file not found: {tmp_path / 'nope.py'}"


def test_a_taken_name_names_both_origins(tmp_path):
    path = write(tmp_path, "dup.py", GOOD.replace('name = "zero"', 'name = "backprop"'))
    with pytest.raises(GradbenchError) as caught:
        registry.discover([path])
    assert str(caught.value) == (
        f"method name 'backprop' from {path}:Zero is already taken by "
        "entry point gradbench.methods.backprop:Backprop"
    )


def test_select_keeps_the_order_asked_and_lists_every_unknown_name():
    entries = registry.discover()
    assert registry.select(entries, None) == list(entries.values())
    assert [e.name for e in registry.select(entries, ["spsa", "backprop"])] == ["spsa", "backprop"]
    with pytest.raises(GradbenchError) as caught:
        registry.select(entries, ["a", "backprop", "b"])
    assert str(caught.value) == f"unknown method 'a', 'b'; known: {', '.join(entries)}"
