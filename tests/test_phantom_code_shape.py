"""The phantom package's code shape (issue 19 item 5): small functions, one builder per family."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import deepstationing.phantom as phantom
from deepstationing.phantom.families import FAMILIES

MAX_LINES = 80


def test_no_function_over_80_lines():
    long = []
    for path in sorted(Path(phantom.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long


def test_every_family_module_is_listed_and_builds():
    import deepstationing.phantom.families as fam

    modules = {m.name for m in pkgutil.iter_modules(fam.__path__, fam.__name__ + ".")}
    assert modules == {f.__name__ for f in FAMILIES}
    for f in FAMILIES:
        mod = importlib.import_module(f.__name__)
        assert callable(mod.build) and isinstance(mod.RANK, int), f.__name__
