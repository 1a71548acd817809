"""Finds gradient methods: the ``gradbench.methods`` entry-point group (how the built-in
methods and pip-installed plugins register) plus local plugin files named by path.

The registry never names a method itself. A plugin that fails to import, or needs a
module that is not installed, is listed as unavailable with the reason.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from gradbench.errors import GradbenchError, one_line
from gradbench.methods.base import Method, check_method

GROUP = "gradbench.methods"


@dataclass(frozen=True)
class Entry:
    """One listed method: available (``method`` set) or not (``reason`` set)."""

    name: str
    origin: str
    method: Method | None = None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.method is not None


def _instantiate(obj: object, origin: str) -> Entry:
    method = obj() if inspect.isclass(obj) else obj
    check_method(method, origin)
    missing = [m for m in getattr(method, "requires", ()) if importlib.util.find_spec(m) is None]
    if missing:
        return Entry(method.name, origin, reason=f"needs {', '.join(missing)} (not installed)")
    return Entry(method.name, origin, method)


def _from_entry_points() -> list[Entry]:
    entries = []
    for ep in entry_points(group=GROUP):
        origin = f"entry point {ep.value}"
        try:
            entries.append(_instantiate(ep.load(), origin))
        except Exception as exc:  # one broken installed plugin must not break every command
            entries.append(Entry(ep.name, origin, reason=f"broken plugin: {one_line(exc)}"))
    return entries


def load_file(path: str | Path) -> list[Entry]:
    """The methods defined in a local Python file: every Method subclass it defines."""
    path = Path(path)
    if not path.is_file():
        raise GradbenchError(f"plugin file not found: {path}")
    module_name = f"gradbench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        source = path.read_text()
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise GradbenchError(
            f"plugin file {path}: syntax error on line {exc.lineno}: {exc.msg}"
        ) from None
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        return [Entry(path.stem, str(path), reason=f"import failed: {one_line(exc)}")]
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Method)
        and obj.__module__ == module_name
        and not obj.__name__.startswith("_")
    ]
    if not classes:
        raise GradbenchError(f"plugin file {path}: defines no subclass of gradbench.Method")
    return [_instantiate(cls, f"{path}:{cls.__name__}") for cls in classes]


def discover(plugin_files: tuple[str, ...] | list[str] = ()) -> dict[str, Entry]:
    """Every method, by name: entry points first, then each plugin file in order."""
    found: dict[str, Entry] = {}
    files = dict.fromkeys(Path(f).resolve() for f in plugin_files)  # a file named twice is one
    for entry in _from_entry_points() + [e for f in files for e in load_file(f)]:
        if entry.name in found:
            raise GradbenchError(
                f"method name {entry.name!r} from {entry.origin} is already taken by "
                f"{found[entry.name].origin}"
            )
        found[entry.name] = entry
    return found


def select(entries: dict[str, Entry], names: list[str] | None) -> list[Entry]:
    """The entries named (all when ``names`` is None), refusing unknown names."""
    if names is None:
        return list(entries.values())
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise GradbenchError(
            f"unknown method {', '.join(map(repr, unknown))}; known: {', '.join(entries)}"
        )
    return [entries[n] for n in names]
