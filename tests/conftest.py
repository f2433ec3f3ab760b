"""Shared fixtures: locating the real CT fixtures in ../shared/data/real (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("DEEPSTATIONING_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real CT fixtures; the test is skipped when it is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real CT fixtures not found at {REAL}")
    return REAL


@pytest.fixture(scope="session")
def real_path():
    """``real_path("pyradiomics_thorax/lung2_image.nrrd")``: a real fixture path, or skip."""

    def find(relative: str) -> Path:
        path = REAL / relative
        if not path.exists():
            pytest.skip(f"real fixture {relative} not found under {REAL}")
        return path

    return find


@pytest.fixture()
def stand_in_model(monkeypatch):
    """A trained model's stand-in for ``deepstationing predict``: any ``--model`` opens and
    the station map it predicts is all ones (no organ stage), so the command gets to its
    reading and writing in a second."""
    import numpy as np

    from deepstationing.stations import network
    from deepstationing.training import model as model_module

    class Parser:
        organs = None

        def __init__(self, *args, **kwargs):
            pass

        def predict(self, ct, organs=None, progress=None, timings=None):
            return None, ct.with_array(np.ones(ct.shape, np.uint8))

    monkeypatch.setattr(model_module.ModelFolder, "open",
                        classmethod(lambda cls, root: SimpleNamespace(root=Path(root))))
    monkeypatch.setattr(network, "StationParser", Parser)


@pytest.fixture(scope="session")
def dciodvfy() -> str:
    """``dciodvfy`` (Debian dicom3tools); skip if absent, fail if ..._REQUIRE_TOOLS=1."""
    from dicom_tools import require_tool

    return require_tool("dciodvfy")


@pytest.fixture(scope="session")
def plastimatch() -> str:
    """``plastimatch`` (Debian plastimatch); skip if absent, fail if ..._REQUIRE_TOOLS=1."""
    from dicom_tools import require_tool

    return require_tool("plastimatch")
