"""Exceptions the toolkit raises for bad input and for outputs it cannot write.

Every error caused by a user's file says *which file* and *what is wrong* in one line, so
the command-line interface can print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DeepStationingError", "InputError", "OutputError"]


class DeepStationingError(Exception):
    """Base class of the toolkit's own errors (printed as one line by the CLI)."""


class _PathError(DeepStationingError):
    """An error about one file or folder: ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")

    def __reduce__(self):  # keep (path, problem) through pickling (process pools)
        return type(self), (self.path, self.problem)


class InputError(_PathError, ValueError):
    """A user-supplied file or folder cannot be used.

    >>> str(InputError("/data/ct.nii.gz", "2D image, expected 3D"))
    '/data/ct.nii.gz: 2D image, expected 3D'
    """


class OutputError(_PathError):
    """An output file or folder cannot be written (nothing is left half-written).

    >>> str(OutputError("/proc/x.nii.gz", "cannot create a file in /proc"))
    '/proc/x.nii.gz: cannot create a file in /proc'
    """
