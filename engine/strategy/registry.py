"""Discover strategies by name: every module in `strategies/` (and in extra search paths) defining a Strategy subclass.

A user adds a strategy by dropping `my_idea.py` with a `Strategy` subclass (with a unique `name`) into `strategies/`,
or into a folder listed in the `QUANTDESK_STRATEGY_PATH` environment variable (os.pathsep-separated) or passed as
`search_paths`. A module that fails to import does not break discovery: it is skipped and reported by
`discovery_errors()` (the runtime turns those into alerts).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

from engine.strategy.base import Strategy

DEFAULT_USER_DIR = "user_strategies"  # searched in the working directory when it exists (strategy new writes there)
USER_MODULE_PREFIX = "strategies__user_"  # module names of strategies loaded from folders (not importable by name)
PACKAGE = "strategies"  # the package of shipped strategy modules (users add folders via ENV_PATH)
ENV_PATH = "QUANTDESK_STRATEGY_PATH"
_errors: dict[str, str] = {}
_file_cache: dict[Path, tuple[float, ModuleType]] = {}


class UnknownStrategyError(KeyError, ValueError):
    """No strategy is registered under the requested name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown strategy"


def _strategy_classes(module: ModuleType) -> list[type[Strategy]]:
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__ and obj.name:
            found.append(obj)
    return found


def _package_modules() -> list[str]:
    package = importlib.import_module(PACKAGE)  # plugin discovery: engine never imports strategy modules statically
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                  if not m.ispkg and not m.name.startswith("_"))


def _load_file(path: Path) -> ModuleType:
    path = path.resolve()
    mtime = path.stat().st_mtime
    cached = _file_cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    module_name = f"{USER_MODULE_PREFIX}{path.parent.name}_{path.stem}".replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load strategy module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    _file_cache[path] = (mtime, module)
    return module


def _search_dirs(search_paths: Iterable[str | os.PathLike[str]] | None) -> list[Path]:
    dirs = [Path(p) for p in (search_paths or ())]
    env = os.environ.get(ENV_PATH, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    default = Path.cwd() / DEFAULT_USER_DIR
    if default.is_dir() and all(d.resolve() != default.resolve() for d in dirs):
        dirs.append(default)
    return dirs


def discover(search_paths: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, type[Strategy]]:
    """Map strategy name -> class for every strategy found; import failures go to `discovery_errors()`."""
    _errors.clear()
    found: dict[str, type[Strategy]] = {}
    modules: list[tuple[str, Any]] = [(name, f"{PACKAGE}.{name}") for name in _package_modules()]
    for folder in _search_dirs(search_paths):
        if not folder.is_dir():
            _errors[str(folder)] = f"strategy search path is not a directory: {folder}"
            continue
        modules += [(p.stem, p) for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")]
    for label, target in modules:
        try:
            module = importlib.import_module(target) if isinstance(target, str) else _load_file(target)
        except Exception as exc:  # noqa: BLE001 - a broken user module must not hide the others
            _errors[str(target)] = _describe_import_error(exc, target)
            continue
        for cls in _strategy_classes(module):
            if cls.name in found and found[cls.name] is not cls:
                _errors[str(target)] = (f"duplicate strategy name {cls.name!r} (already defined by "
                                        f"{found[cls.name].__module__}); kept the first")
                continue
            found[cls.name] = cls
    return found


def _describe_import_error(exc: BaseException, target: Any) -> str:
    """'file:line: ErrorType: message' for a module that failed to import (the line inside the module itself)."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {text}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if isinstance(target, Path) and Path(f.filename).resolve() == target.resolve()]
    frame = own[-1] if own else (frames[-1] if frames else None)
    return f"{frame.filename}:{frame.lineno}: {text}" if frame is not None else text


def discovery_errors() -> dict[str, str]:
    """Modules skipped by the last discovery, with the reason (import error or duplicate name)."""
    return dict(_errors)


def available(search_paths: Iterable[str | os.PathLike[str]] | None = None) -> list[str]:
    """Sorted names of every discoverable strategy (e.g. ['macro_trend', 'quantum_momentum'])."""
    return sorted(discover(search_paths))


def display_names(search_paths: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, str]:
    """Strategy name -> human display name ("Quantum Momentum"), derived from the name when not declared."""
    return {name: (cls.display_name or name.replace("_", " ").title())
            for name, cls in sorted(discover(search_paths).items())}


def strategy_class(name: str, search_paths: Iterable[str | os.PathLike[str]] | None = None) -> type[Strategy]:
    """The class registered under `name`; unknown names raise UnknownStrategyError (a KeyError and ValueError) listing the known ones."""
    found = discover(search_paths)
    if name not in found:
        raise UnknownStrategyError(f"unknown strategy {name!r}; known strategies: {', '.join(sorted(found)) or '(none)'}")
    return found[name]


def load_strategy(name: str, params: Mapping[str, Any] | None = None,
                  search_paths: Iterable[str | os.PathLike[str]] | None = None) -> Strategy:
    """Instantiate a strategy by name with parameter overrides (unknown parameter -> ValueError naming it)."""
    cls = strategy_class(name, search_paths)
    return cls(**dict(params or {}))
