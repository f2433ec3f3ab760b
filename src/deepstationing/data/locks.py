"""Advisory file locks: one writer at a time for files that several jobs update.

Jobs of an experiment may run at the same time (Ray workers on a shared file system, or two
``deepstationing train`` commands on one workspace). A few files are read, changed and
written back — the workspace's dataset-id registry, a model's description, an exported
dataset — and two writers at once would lose one's change. :func:`file_lock` serialises
them with ``fcntl.flock`` on a ``<name>.lock`` file beside the protected path (advisory:
only code that takes the lock is held back; every writer in the toolkit does).

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "registry.json"
>>> with file_lock(target):
...     _ = target.write_text("{}")
>>> sorted(p.name for p in target.parent.iterdir())
['.registry.json.lock', 'registry.json']
>>> [is_lock_file(p) for p in sorted(target.parent.iterdir())]
[True, False]
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock", "is_lock_file", "lock_path"]


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file that :func:`file_lock` uses for ``path``."""
    p = Path(path)
    return p.parent / f".{p.name}.lock"


def is_lock_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of :func:`file_lock`'s lock files (hidden, ``.lock``, empty):
    they hold nothing, and copies of a folder (model packages) leave them out."""
    p = Path(path)
    return (p.name.startswith(".") and p.name.endswith(".lock") and p.is_file()
            and p.stat().st_size == 0)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (blocking) inside the ``with`` block."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(p), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
