"""The README's plugin example and the example package, exercised as a user would."""

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import gradbench, rho_max, sweep_rows

from gradbench import registry
from gradbench.methods.backprop import Backprop
from gradbench.problem import make_problem

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gradbench-richardson"


@pytest.fixture(scope="module")
def readme_plugin(tmp_path_factory) -> Path:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"readme-example:start -->\n```python\n(.*?)```", text, re.S).group(1)
    path = tmp_path_factory.mktemp("plugin") / "my_method.py"
    path.write_text(block)
    return path


def test_readme_example_is_listed_checked_swept_and_reported(readme_plugin, tmp_path):
    listed = gradbench("list", "--plugin", str(readme_plugin))
    assert listed.returncode == 0 and "fd-backward" in listed.stdout
    checked = gradbench(
        "check", "--N", "4", "--L", "2", "--plugin", str(readme_plugin), "--methods", "fd-backward"
    )
    row = next(
        line for line in checked.stdout.splitlines() if line.strip().startswith("fd-backward")
    )
    assert float(row.split()[2]) < 1e-6 and row.rstrip().endswith("ok")
    mine = sweep_rows(tmp_path, readme_plugin, "fd-backward", N="2,4", L="1,2")
    assert len(mine) == 4 and (mine.status == "ok").all() and (mine.grad_error < 1e-6).all()
    assert gradbench("report", "--out", str(tmp_path)).returncode == 0
    assert "fd-backward" in (tmp_path / "REPORT.md").read_text()


def test_example_package_registers_its_method_by_entry_point():
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"]["gradbench.methods"]["fd-richardson"]
    module_name, cls_name = target.split(":")
    sys.path.insert(0, str(EXAMPLE))
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    finally:
        sys.path.remove(str(EXAMPLE))
    assert cls.name == "fd-richardson"
    p = make_problem(6, 3, 16, seed=4)
    loss, grad = cls().prepare(p)(p.theta0)
    assert loss == p.loss(p.theta0)
    assert rho_max(grad, Backprop().prepare(p)(p.theta0)[1]) < 1e-10  # O(h⁴): near exact


def test_example_package_loads_as_a_file_and_joins_a_sweep(tmp_path):
    path = EXAMPLE / "gradbench_richardson.py"
    assert registry.discover([str(path)])["fd-richardson"].available
    mine = sweep_rows(tmp_path, path, "fd-richardson", N="2,3", L="1")
    assert len(mine) == 2 and (mine.status == "ok").all()


def test_plugin_breaking_the_contract_is_named_with_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from gradbench import Method\nclass Nameless(Method):\n    kind = 'exact'\n")
    result = gradbench("list", "--plugin", str(bad))
    assert result.returncode == 2
    assert "bad.py:Nameless" in result.stderr and "'name'" in result.stderr


def test_wrong_return_is_an_error_naming_the_method(tmp_path):
    bad = tmp_path / "wrong.py"
    bad.write_text(
        "import numpy as np\nfrom gradbench import Method\n"
        "class Wrong(Method):\n    name = 'wrong'\n    kind = 'exact'\n    description = 'x'\n"
        "    def cost(self, net):\n        return 1.0\n"
        "    def prepare(self, problem):\n        return lambda theta: np.zeros(3)\n"
    )
    checked = gradbench("check", "--N", "2", "--L", "1", "--plugin", str(bad), "--methods", "wrong")
    assert checked.returncode == 0
    line = next(x for x in checked.stdout.splitlines() if x.strip().startswith("wrong"))
    assert "error: grad_fn must return (loss, gradient)" in line
