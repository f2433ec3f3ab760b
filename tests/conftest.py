"""Shared fixtures: locating the real CT fixtures in ../shared/data/real (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

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
