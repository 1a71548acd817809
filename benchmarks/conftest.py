"""Lets `pytest benchmarks/` run on its own: without `gradbench run` it sweeps the
`quick` profile into results/ (choose with --gradbench-profile)."""

from pathlib import Path

from gradbench import config as gradbench_config
from gradbench import registry
from gradbench.harness import SweepPlugin
from gradbench.sweep import Sweep


def pytest_addoption(parser):
    parser.addoption("--gradbench-profile", default="quick", help="grid profile to sweep")


def pytest_configure(config):
    if config.pluginmanager.has_plugin(SweepPlugin.name):
        return
    settings = gradbench_config.load(config.getoption("--gradbench-profile"))
    entries = list(registry.discover().values())
    sweep = Sweep(settings, entries, Path("results"))
    config.pluginmanager.register(SweepPlugin(sweep), SweepPlugin.name)
