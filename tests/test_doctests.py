"""The examples in every module's docstrings run and give what they show.

Every module of the package is found by walking it (a new module is included without
being listed here); a module that cannot be imported fails, and so does an example marked
``+SKIP`` (an example that never runs is a claim nobody checks).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import deepstationing

MODULES = ["deepstationing"] + sorted(
    m.name for m in pkgutil.walk_packages(deepstationing.__path__, "deepstationing.")
    if not m.name.endswith("__main__")  # running it is running the command line
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)  # an import error fails the test
    tests = doctest.DocTestFinder().find(module)  # a directive doctest cannot parse fails
    skipped = [f"{t.name}:{e.lineno}" for t in tests for e in t.examples
               if e.options.get(doctest.SKIP)]
    assert not skipped, f"examples marked +SKIP never run: {skipped}"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_walk_finds_the_modules():
    assert {"deepstationing.data.image", "deepstationing.viz", "deepstationing.cli.main",
            "deepstationing.phantom.cohort", "deepstationing.training.fold"} <= set(MODULES)
