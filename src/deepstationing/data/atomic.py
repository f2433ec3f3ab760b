"""Atomic file writes: write to a temporary file in the target folder, then rename.

A reader never sees a half-written file under the final name, and an interrupted write leaves
any previous version in place. Every failure to write (missing or unwritable folder, a path
under a regular file, a full disk) becomes one :class:`~deepstationing.errors.OutputError`
naming the output and the problem, with the temporary files removed: all of the toolkit's
writers go through :func:`atomic_output`.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json_atomic({"a": 1}, d / "x.json").read_text()
'{\\n  "a": 1\\n}\\n'
>>> with atomic_output(d / "y.txt") as out:
...     _ = pathlib.Path(out.path).write_text("hello")
>>> sorted(p.name for p in d.iterdir())  # no temporary file left behind
['x.json', 'y.txt']
>>> write_text_atomic("x", d / "x.json" / "z.txt")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
deepstationing.errors.OutputError: ...z.txt: cannot write: ...x.json is a file, not a folder
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

from deepstationing.errors import OutputError

__all__ = ["write_text_atomic", "write_json_atomic", "publish", "atomic_output", "StagedOutput",
           "ensure_folder", "current_umask", "describe_os_error", "remove_temporary_files",
           "atomic_file", "new_staging_folder", "staging_folder", "publish_folder"]

#: Name prefix of the temporary files (hidden, next to their target).
TEMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process's file-mode creation mask, read without changing it.

    ``os.umask`` can only be read by setting it, which changes process-wide state and races
    with other threads; Linux reports it in ``/proc/self/status``. Elsewhere a probe file is
    created with mode 0666, to which the kernel applies the mask.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    import tempfile

    probe = os.path.join(tempfile.gettempdir(), f"{TEMP_PREFIX}umask-{secrets.token_hex(8)}")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return 0o666 & ~os.fstat(fd).st_mode
    finally:
        os.close(fd)
        os.unlink(probe)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file onto ``path`` with ordinary permissions.

    The published file gets the permissions a plain ``open(path, "w")`` would give (0666
    less the umask), also when ``tmp`` was made by :func:`tempfile.mkstemp` (owner-only).
    """
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (or ``path``) that is not a folder."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def describe_os_error(exc: OSError, target: str | os.PathLike | None = None, *,
                      verb: str = "cannot write") -> str:
    """One line saying what went wrong with ``target`` (default: the error's file name).

    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/ro/x.csv"))
    'cannot write: permission denied'
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device"), "/data/x.nii.gz")
    'cannot write: no space left on device'
    >>> describe_os_error(FileNotFoundError(errno.ENOENT, "No such file or directory",
    ...                                     "/data/ct.nii.gz"), verb="")
    'no such file or directory'
    """
    prefix = f"{verb}: " if verb else ""
    reason = (exc.strerror or str(exc) or type(exc).__name__).strip().lower()
    name = os.fsdecode(exc.filename) if exc.filename else None
    where = Path(target if target is not None else (name or "."))
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        block = _blocking_file(where)
        if block is not None:
            return f"{prefix}{block} is a file, not a folder"
    if name and Path(name) != where:
        if Path(name).name.startswith(TEMP_PREFIX):  # our temporary file: name its folder
            return f"cannot create a file in {Path(name).parent}: {reason}"
        return f"{prefix}{name}: {reason}"
    return f"{prefix}{reason}"


def ensure_folder(folder: str | os.PathLike, *, output: str | os.PathLike | None = None
                  ) -> Path:
    """Create ``folder`` (and its parents) if needed; :class:`OutputError` if impossible.

    ``output`` is the file the folder is for, named in the error (default: the folder).
    """
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        target = Path(output) if output is not None else d
        if exc.errno in (errno.EEXIST, errno.ENOTDIR) and _blocking_file(d) is not None:
            raise OutputError(target, describe_os_error(exc, d)) from None
        raise OutputError(target, describe_os_error(exc, d, verb=f"cannot create folder {d}")
                          ) from None
    return d


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of writes that were killed (not interrupted) in ``folder``.

    An interrupted write removes its own temporary files; a killed process (a pool's
    worker terminated after another one failed) cannot. Returns the files removed.
    """
    d = Path(folder)
    removed = [p for p in d.glob(f"{TEMP_PREFIX}*") if p.is_file() or p.is_symlink()] \
        if d.is_dir() else []
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


class StagedOutput:
    """The temporary files of one write under way; see :func:`atomic_output`.

    Attributes:
        target: the final file.
        path: the temporary file that is renamed onto ``target`` when the write succeeds.
    """

    def __init__(self, target: Path, suffix: str):
        self.target = target
        self._temps: list[str] = []
        self.path = self.scratch(suffix)

    def scratch(self, suffix: str = "") -> str:
        """Another temporary file next to the target (removed when the write ends).

        Created with mode 0666, to which the kernel applies the umask, so the published
        file has ordinary permissions without reading or changing the umask.
        """
        folder = self.target.parent
        for _ in range(100):
            name = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}{suffix}")
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            self._temps.append(name)
            return name
        raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))

    def adopt(self, name: str | os.PathLike) -> None:
        """Also remove ``name`` when the write ends (a file a writer made by itself)."""
        self._temps.append(os.fspath(name))

    def _cleanup(self) -> None:
        for tmp in self._temps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError:  # pragma: no cover - best effort; the original error matters
                pass


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str | None = None
                  ) -> Iterator[StagedOutput]:
    """Write ``path`` atomically: yield temporary files, publish ``.path`` on success.

    The folder is created if needed. On success the temporary file ``.path`` is renamed
    onto ``path`` (ordinary permissions); whatever happens, every temporary file is removed.
    An :class:`OSError` anywhere (folder, temporary file, writing, renaming) becomes one
    :class:`~deepstationing.errors.OutputError` naming ``path`` and the problem; other
    exceptions pass through unchanged (a previous version of ``path`` is kept either way).

    Args:
        path: the file to write.
        suffix: ending of the temporary file (default: ``path``'s last suffix); writers that
            choose the format from the name need it, e.g. ``".nii"``.
    """
    p = Path(path)
    ensure_folder(p.parent, output=p)
    staged = None
    try:
        staged = StagedOutput(p, p.suffix if suffix is None else suffix)
        yield staged
        os.replace(staged.path, p)
    except OSError as exc:
        raise OutputError(p, describe_os_error(exc, p)) from None
    finally:
        if staged is not None:
            staged._cleanup()


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends kept as given) to ``path`` atomically."""
    with atomic_output(path) as out, open(out.path, "w", newline="", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def write_json_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(json.dumps(obj, indent=2) + "\n", path)


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """:func:`atomic_output` for writers that want a file name (pydicom, zipfile, highdicom)."""
    with atomic_output(path, suffix=suffix) as out:
        yield Path(out.path)


def new_staging_folder(target: str | os.PathLike) -> Path:
    """A new empty folder beside ``target`` (hidden, ``.NAME.partial-XXXX``) to build it in.

    Made with mode 0777, to which the kernel applies the umask, so the published folder has
    ordinary permissions without reading or changing the umask.
    """
    t = Path(target)
    ensure_folder(t.parent, output=t)
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
