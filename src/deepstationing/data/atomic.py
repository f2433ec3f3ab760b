"""Atomic file writes: write to a temporary file in the target folder, then rename.

A reader never sees a half-written file under the final name, and an interrupted write leaves
any previous version in place.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json_atomic({"a": 1}, d / "x.json").read_text()
'{\\n  "a": 1\\n}\\n'
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["write_text_atomic", "write_json_atomic", "publish", "atomic_file",
           "new_staging_folder", "staging_folder", "publish_folder"]


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file onto ``path`` with ordinary permissions.

    :func:`tempfile.mkstemp` creates files readable by their owner only; a published file
    gets the permissions a plain ``open(path, "w")`` would give (0666 less the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` if no error.

    For writers that want a file name (pydicom, zipfile, highdicom)::

        with atomic_file("out/rtstruct.dcm") as tmp:
            dataset.save_as(tmp)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=p.suffix if suffix is None else suffix,
                               dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends kept as given) to ``path`` atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=p.suffix, dir=p.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        publish(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(json.dumps(obj, indent=2) + "\n", path)


def new_staging_folder(target: str | os.PathLike) -> Path:
    """A new empty folder beside ``target`` (hidden, ``.NAME.partial-XXXX``) to build it in.

    Made with mode 0777, to which the kernel applies the umask, so the published folder has
    ordinary permissions without reading or changing the umask.
    """
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        d = t.parent / f".{t.name}.partial-{secrets.token_hex(6)}"
        try:
            os.mkdir(d, 0o777)
        except FileExistsError:
            continue
        return d
    raise FileExistsError(errno.EEXIST, "no free staging folder name", str(t.parent))


@contextmanager
def staging_folder(target: str | os.PathLike) -> Iterator[Path]:
    """A staging folder beside ``target`` (:func:`new_staging_folder`); removed unless published.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "series"
    >>> with staging_folder(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    ...     _ = publish_folder(tmp, out)
    >>> sorted(p.name for p in out.iterdir()), tmp.exists()
    (['a.txt'], False)
    """
    tmp = new_staging_folder(target)
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_folder(staging: str | os.PathLike, target: str | os.PathLike, *,
                   replace: bool = False) -> Path:
    """Rename a finished folder onto ``target`` (absent, empty, or replaced if ``replace``).

    With ``replace`` an existing ``target`` is first renamed aside and removed after the new
    folder is in place, so ``target`` is never half old and half new.
    """
    s, t = Path(staging), Path(target)
    old = None
    if t.exists() and (replace or (t.is_dir() and not any(t.iterdir()))):
        old = Path(tempfile.mkdtemp(prefix=f".{t.name}.old-", dir=t.parent))
        os.replace(t, old / "x")
    os.replace(s, t)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return t
