"""Model packages: a trained model folder as one zip file, and its safe import.

``deepstationing model export MODEL_DIR -o model.zip`` packs the whole model folder
(:mod:`deepstationing.training.model`: ``deepstationing_model.json`` with the stages and
channel specs, each stage's plans and dataset description, every fold's checkpoint, logs)
under ``model/`` in the archive, with ``deepstationing_package.json``: the label schema
(version, organ and station keys), the stages, and every file's size and SHA-256.

The model folder is walked generically (any sub-folders, e.g. more station stages); only
these file kinds may be in it: ``.json``, ``.pth``, ``.png``, ``.txt``, ``.md``. Symbolic
links, devices and other kinds are refused on export too, and every checkpoint is loaded
with :func:`~deepstationing.backbone.checkpoint.load_checkpoint_safely` first, so a package
that exports is one that imports.

``deepstationing model import model.zip --to DIR`` treats the archive as untrusted. Before
anything is written it refuses: entries whose path is absolute, has ``..``, backslashes or
empty parts, or is not ``model/...`` or the manifest; symbolic links, hard links, devices
(Unix file types other than regular files and folders); encrypted or duplicate entries;
file kinds outside the list above; files not in the manifest, or listed but missing;
archives over the size caps (per file, in total, entry count) or with a suspicious
compression ratio (zip bombs); a label schema other than this installation's. Files are
then extracted into a temporary folder beside the target, streamed with their size capped
and their SHA-256 checked, every checkpoint is loaded without running code from it and the
model description is opened; only then is the folder renamed into place. Any problem: one
line naming the archive and the problem, and nothing written (no file outside the
target, no half-written target).

>>> import json, tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> (tmp / "m").mkdir()
>>> _ = (tmp / "m" / "deepstationing_model.json").write_text(
...     json.dumps({"format": 3, "stages": {}}))
>>> _ = (tmp / "m" / "notes.md").write_text("trained on the phantom")
>>> manifest = export_model_package(tmp / "m", tmp / "m.zip")
>>> [f["path"] for f in manifest["files"]]
['deepstationing_model.json', 'notes.md']
>>> import_model_package(tmp / "m.zip", tmp / "copy").name
'copy'
>>> (tmp / "copy" / "notes.md").read_text()
'trained on the phantom'
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepstationing import __version__, schema
from deepstationing.backbone.checkpoint import load_checkpoint_safely
from deepstationing.data.atomic import atomic_file, publish_folder, staging_folder
from deepstationing.errors import InputError

__all__ = ["PackageLimits", "export_model_package", "import_model_package", "read_manifest",
           "ALLOWED_SUFFIXES", "PACKAGE_MANIFEST", "PACKAGE_KIND"]

PACKAGE_MANIFEST = "deepstationing_package.json"
PACKAGE_KIND = "deepstationing-model"
MODEL_PREFIX = "model/"
MODEL_FILE = "deepstationing_model.json"
#: File kinds a model folder may hold.
ALLOWED_SUFFIXES = (".json", ".pth", ".png", ".txt", ".md")
_STORED = (".pth", ".png")  # already compressed: stored, not deflated
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackageLimits:
    """Size caps of an imported package (zip-bomb and resource guards)."""

    max_entries: int = 10_000
    max_file_bytes: int = 8 << 30       # one checkpoint of nnU-Net's full config: ~0.3 GB
    max_total_bytes: int = 64 << 30
    max_manifest_bytes: int = 4 << 20
    max_ratio: float = 200.0            # uncompressed / compressed, for entries over 1 MiB


def _stage_summary(entry: dict) -> dict:
    """What the manifest says of a stage: role, channels, config, folds."""
    definition = entry.get("definition", {}) if isinstance(entry.get("definition"), dict) else {}
    channels = definition.get("channels", {})
    return {"role": definition.get("role"),
            "channels": channels.get("spec") if isinstance(channels, dict) else None,
            "config": definition.get("config"),
            "folds": sorted(entry.get("folds", {})) if isinstance(entry.get("folds"), dict)
            else []}


def _schema_summary() -> dict:
    return {"version": schema.SCHEMA_VERSION, "organs": schema.ORGANS.keys,
            "stations": schema.STATIONS.keys}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_files(root: Path) -> list[Path]:
    """Every file of the model folder, refusing links, special files and foreign kinds."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            p = here / name
            rel = p.relative_to(root).as_posix()
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise InputError(p, "symbolic link in the model folder; copy the file in "
                                    "instead")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise InputError(p, "not a regular file (device, pipe or socket)")
            if not name.lower().endswith(ALLOWED_SUFFIXES):
                raise InputError(p, f"unexpected file {rel} in the model folder (allowed: "
                                    f"{', '.join(ALLOWED_SUFFIXES)})")
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def export_model_package(model_dir: str | os.PathLike, out: str | os.PathLike, *,
                         progress: Callable[[str], None] | None = None) -> dict:
    """Pack the model folder ``model_dir`` into the zip file ``out``; returns the manifest."""
    root = Path(model_dir)
    if not (root / MODEL_FILE).is_file():
        raise InputError(root, f"not a deepstationing model folder (no {MODEL_FILE})")
    try:
        model = json.loads((root / MODEL_FILE).read_text())
    except ValueError as exc:
        raise InputError(root / MODEL_FILE, f"malformed model description ({exc})") from None
    files = _model_files(root)
    entries = []
    for p in files:
        rel = p.relative_to(root).as_posix()
        if p.suffix.lower() == ".pth":
            if progress:
                progress(f"checking {rel}")
            load_checkpoint_safely(p)
        entries.append({"path": rel, "size": p.stat().st_size, "sha256": _sha256_file(p)})
    stages = model.get("stages", {}) if isinstance(model, dict) else {}
    manifest = {
        "format": 1, "kind": PACKAGE_KIND, "created_by": f"deepstationing {__version__}",
        "schema": _schema_summary(),
        "stages": {name: _stage_summary(st) for name, st in stages.items()
                   if isinstance(st, dict)},
        "files": entries,
    }
    with atomic_file(out) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        _add(zf, PACKAGE_MANIFEST, json.dumps(manifest, indent=2).encode())
        for p, e in zip(files, entries):
            if progress:
                progress(f"adding {e['path']} ({e['size'] / 1e6:.1f} MB)")
            info = _info(MODEL_PREFIX + e["path"])
            with open(p, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    dst.write(chunk)
    return manifest


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED if name.lower().endswith(_STORED) \
        else zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.create_system = 3
    return info


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    zf.writestr(_info(name), data)


# ---------------------------------------------------------------------- import
def _check_name(archive: Path, name: str) -> str:
    """The entry's path if it is a safe relative POSIX path, else :class:`InputError`."""
    if not name or "\x00" in name or "\\" in name:
        raise InputError(archive, f"entry {name!r} has an invalid name (NUL or backslash)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InputError(archive, f"entry {name!r} has an absolute path")
    if any(part in ("..", ".", "") for part in name.rstrip("/").split("/")):
        raise InputError(archive, f"entry {name!r} escapes the package or has empty or '.' "
                                  "parts (path traversal)")
    return name.rstrip("/")


def _check_entry(archive: Path, info: zipfile.ZipInfo, limits: PackageLimits) -> None:
    mode = (info.external_attr >> 16) & 0xFFFF
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "a symbolic link" if kind == stat.S_IFLNK else "a hard link, device or " \
                                                              "other special file"
        raise InputError(archive, f"entry {info.filename!r} is {what}")
    if info.flag_bits & 0x1:
        raise InputError(archive, f"entry {info.filename!r} is encrypted")
    if info.file_size > limits.max_file_bytes:
        raise InputError(archive, f"entry {info.filename!r} is {info.file_size} bytes, over "
                                  f"the {limits.max_file_bytes}-byte cap")
    if info.file_size > _CHUNK and info.file_size > limits.max_ratio * max(info.compress_size,
                                                                           1):
        raise InputError(archive, f"entry {info.filename!r} expands {info.file_size} bytes "
                                  f"from {info.compress_size} (a zip bomb?)")


def read_manifest(archive: str | os.PathLike, *, limits: PackageLimits = PackageLimits()
                  ) -> dict:
    """The manifest of a package, after checking every entry's name, kind and size."""
    a = Path(archive)
    with _open_zip(a) as zf:
        manifest, _ = _checked_listing(a, zf, limits)
    return manifest


def _open_zip(a: Path) -> zipfile.ZipFile:
    if not a.is_file():
        raise InputError(a, "no such model package")
    try:
        return zipfile.ZipFile(a)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(a, f"not a zip archive ({exc})") from None


def _checked_listing(a: Path, zf: zipfile.ZipFile, limits: PackageLimits
                     ) -> tuple[dict, dict[str, zipfile.ZipInfo]]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise InputError(a, f"{len(infos)} entries, over the cap of {limits.max_entries}")
    files: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = _check_name(a, info.filename)
        _check_entry(a, info, limits)
        if name in seen:
            raise InputError(a, f"entry {name!r} appears twice")
        seen.add(name)
        if info.is_dir():
            if name + "/" != MODEL_PREFIX and not name.startswith(MODEL_PREFIX):
                raise InputError(a, f"unexpected folder {name!r} (a package holds "
                                    f"{PACKAGE_MANIFEST} and {MODEL_PREFIX}...)")
            continue
        if name != PACKAGE_MANIFEST:
            if not name.startswith(MODEL_PREFIX):
                raise InputError(a, f"unexpected file {name!r} (a package holds "
                                    f"{PACKAGE_MANIFEST} and {MODEL_PREFIX}...)")
            if not name.lower().endswith(ALLOWED_SUFFIXES):
                raise InputError(a, f"unexpected file kind {name!r} (allowed: "
                                    f"{', '.join(ALLOWED_SUFFIXES)})")
        total += info.file_size
        files[name] = info
    if total > limits.max_total_bytes:
        raise InputError(a, f"{total} bytes uncompressed, over the cap of "
                            f"{limits.max_total_bytes}")
    man_info = files.pop(PACKAGE_MANIFEST, None)
    if man_info is None:
        raise InputError(a, f"not a deepstationing model package (no {PACKAGE_MANIFEST})")
    if man_info.file_size > limits.max_manifest_bytes:
        raise InputError(a, f"{PACKAGE_MANIFEST} is too large ({man_info.file_size} bytes)")
    try:
        manifest = json.loads(zf.read(man_info))
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        raise InputError(a, f"unreadable {PACKAGE_MANIFEST} ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != PACKAGE_KIND or \
            manifest.get("format") != 1 or not isinstance(manifest.get("files"), list):
        raise InputError(a, f"{PACKAGE_MANIFEST} is not a deepstationing model manifest")
    listed: dict[str, dict] = {}
    for e in manifest["files"]:
        if not isinstance(e, dict) or not {"path", "size", "sha256"} <= set(e):
            raise InputError(a, f"{PACKAGE_MANIFEST}: malformed file entry {e!r}")
        listed[MODEL_PREFIX + _check_name(a, str(e["path"]))] = e
    extra = sorted(set(files) - set(listed))
    if extra:
        raise InputError(a, f"unexpected file {extra[0]!r}: not in the package manifest")
    missing = sorted(set(listed) - set(files))
    if missing:
        raise InputError(a, f"file {missing[0]!r} listed in the manifest is missing")
    for name, e in listed.items():
        if int(e["size"]) != files[name].file_size:
            raise InputError(a, f"{name}: size {files[name].file_size} differs from the "
                                f"manifest's {e['size']}")
    if f"{MODEL_PREFIX}{MODEL_FILE}" not in files:
        raise InputError(a, f"no {MODEL_PREFIX}{MODEL_FILE} in the package")
    ours = _schema_summary()
    theirs = manifest.get("schema", {})
    if not isinstance(theirs, dict) or theirs.get("organs") != ours["organs"] or \
            theirs.get("stations") != ours["stations"]:
        raise InputError(a, f"made for another label schema (version "
                            f"{theirs.get('version') if isinstance(theirs, dict) else '?'}, "
                            f"this installation has {ours['version']}); its label ids would "
                            "be wrong here")
    return manifest, {name: files[name] for name in listed}


def import_model_package(archive: str | os.PathLike, target: str | os.PathLike, *,
                         limits: PackageLimits = PackageLimits(),
                         progress: Callable[[str], None] | None = None) -> Path:
    """Unpack a model package into the new folder ``target`` (see the module docstring)."""
    from deepstationing.training.model import ModelFolder

    a = Path(archive)
    dest = Path(target)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(dest, "exists and is not empty; import into a new folder")
    with _open_zip(a) as zf:
        manifest, files = _checked_listing(a, zf, limits)
        sha = {MODEL_PREFIX + e["path"]: e["sha256"] for e in manifest["files"]}
        with staging_folder(dest) as tmp:
            for name, info in sorted(files.items()):
                rel = name[len(MODEL_PREFIX):]
                if progress:
                    progress(f"extracting {rel} ({info.file_size / 1e6:.1f} MB)")
                out = tmp.joinpath(*rel.split("/"))
                out.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                size = 0
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                try:
                    with zf.open(info) as src, \
                            os.fdopen(os.open(out, flags, 0o644), "wb") as dst:
                        for chunk in iter(lambda: src.read(_CHUNK), b""):
                            size += len(chunk)
                            if size > info.file_size or size > limits.max_file_bytes:
                                raise InputError(a, f"{name} expands beyond its declared size")
                            h.update(chunk)
                            dst.write(chunk)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                    raise InputError(a, f"{name}: damaged or unsupported entry ({exc})") \
                        from None
                if h.hexdigest() != sha[name]:
                    raise InputError(a, f"checksum mismatch for {name} (SHA-256 "
                                        f"{h.hexdigest()[:12]}... vs the manifest's "
                                        f"{str(sha[name])[:12]}...); the package is damaged "
                                        "or was altered")
            for p in sorted(tmp.rglob("*.pth")):
                if progress:
                    progress(f"checking {p.relative_to(tmp).as_posix()}")
                try:
                    load_checkpoint_safely(p)
                except InputError as exc:
                    raise InputError(a, f"{p.relative_to(tmp).as_posix()}: {exc.problem}") \
                        from None
            try:
                model = ModelFolder.open(tmp)
            except InputError as exc:
                raise InputError(a, f"{MODEL_FILE}: {exc.problem}") from None
            for stage in model.stage_folders:
                for fold in model.folds(stage):
                    if not model.checkpoint(stage, fold).is_file():
                        raise InputError(a, f"stage {stage} fold {fold} has no checkpoint "
                                            "in the package")
            publish_folder(tmp, dest)
    return dest
