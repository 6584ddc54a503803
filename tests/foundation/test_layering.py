"""engine/ and strategies/ never import the UI: import-linter's contract, an AST scan, and a fresh interpreter."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).parents[2]
FORBIDDEN = ("textual", "console", "rich.live")


def test_import_linter_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_engine_or_strategy_source_imports_the_ui() -> None:
    offenders = []
    for folder in ("engine", "strategies"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in _imports(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_importing_every_engine_module_loads_no_textual() -> None:
    # Third-party libraries may pull in rich on their own (scikit-learn's progress callbacks do); what matters is that
    # no Textual or console code is ever loaded into the engine process.
    names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n    importlib.import_module(n)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'console'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
