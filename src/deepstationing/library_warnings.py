"""Warnings of the libraries the toolkit calls, logged instead of printed.

highdicom and pydicom report through :mod:`warnings` what they find odd in a DICOM file
(highdicom: a one-component Patient's Name such as a de-identified ``PAT1``; pydicom: a
value that does not fit its VR). Python prints such warnings on stderr, where they reach the
user of ``deepstationing predict`` as unexplained lines. :func:`warnings_to_log` catches the
warnings raised in its block and logs each once, as ``"<library>: <message>"``, on the
given logger (``INFO`` by default: remarks about a source file that change nothing we write).
The warning filters in force stay in force: a warning turned into an error
(``python -W error``, a test suite) still raises, an ignored one stays ignored.

>>> import logging, warnings
>>> log = logging.getLogger("deepstationing.example")
>>> with warnings_to_log(log) as caught:
...     warnings.warn("odd value", UserWarning)
>>> [str(w.message) for w in caught]
['odd value']
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import PurePath

__all__ = ["warnings_to_log"]


def _origin(filename: str) -> str:
    """The package a warning came from: ``.../site-packages/highdicom/base.py`` -> highdicom."""
    parts = PurePath(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return PurePath(filename).stem


@contextlib.contextmanager
def warnings_to_log(logger: logging.Logger, level: int = logging.INFO
                    ) -> Iterator[list[warnings.WarningMessage]]:
    """Log the warnings raised in the block on ``logger`` instead of printing them.

    Yields the list the caught warnings are collected in. Each distinct warning is logged
    once, with the library it came from.
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield caught
        finally:
            seen = set()
            for w in caught:
                key = (w.category, str(w.message))
                if key in seen:
                    continue
                seen.add(key)
                logger.log(level, "%s: %s", _origin(w.filename), w.message)
