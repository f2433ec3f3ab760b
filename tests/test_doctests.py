"""The examples in the public modules' docstrings run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "deepstationing.schema",
    "deepstationing.errors",
    "deepstationing.data.image",
    "deepstationing.data.atomic",
    "deepstationing.data.cohort",
    "deepstationing.data.regrid",
    "deepstationing.data.roimap",
    "deepstationing.data.importer",
    "deepstationing.data.dicom.values",
    "deepstationing.data.dicom.series",
    "deepstationing.data.dicom.contours",
    "deepstationing.data.dicom.rtstruct",
    "deepstationing.data.dicom.seg",
    "deepstationing.data.dicom.export",
    "deepstationing.backbone.checkpoint",
    "deepstationing.backbone.package",
    "deepstationing.evaluation.surface",
    "deepstationing.evaluation.metrics",
    "deepstationing.evaluation.report",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
