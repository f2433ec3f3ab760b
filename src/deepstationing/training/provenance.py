"""What a trained fold saw: content hashes of its training and held-out cases.

A cross-validated number is only held out if the model never trained on the case, and a
cached result is only reusable if it was made from the same data. Case ids and folder names
say neither: another cohort may be called ``phantom`` too, a cohort may be regenerated in
place, a CT may be replaced. So every fold of a model folder records, per case, the SHA-256
of the files it was trained on (CT, target labels, organ-channel map) and of the CTs it
held out (:func:`fold_provenance`), and every reuse compares those hashes with the data at
hand:

* skipping or extending a trained fold (:func:`check_training_cases`);
* evaluating or predicting a case as a held-out one (:func:`check_held_out`);
* cached out-of-fold organ maps (keyed by the CT's hash, :mod:`.oof`).

A mismatch is one :class:`~deepstationing.errors.InputError` line naming the model and
the first cases that differ.

Hashes of unchanged files are remembered for the process (by path, size and modification
time), so checking a cohort again costs nothing.

Examples
--------
>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
>>> _ = f.write_bytes(b"abc")
>>> file_digest(f)[:12]
'ba7816bf8f01'
>>> compare_cases({"a": {"ct": "1"}, "b": {"ct": "2"}}, {"a": {"ct": "1"}, "c": {"ct": "3"}})
['case b is not in the data at hand', 'case c was not in the recorded data']
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from deepstationing.errors import InputError

__all__ = ["file_digest", "case_digests", "fold_provenance", "compare_cases",
           "check_training_cases", "check_held_out", "PROVENANCE_KEY"]

#: Key of the provenance block in a fold record of ``deepstationing_model.json``.
PROVENANCE_KEY = "data"

_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (remembered while the file's size and time stay the same)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _CACHE[key] = h.hexdigest()
    return _CACHE[key]


def case_digests(files: Mapping[str, str | os.PathLike | None]) -> dict[str, str]:
    """``{role: sha256}`` of a case's files (roles whose file is ``None`` are left out)."""
    return {role: file_digest(p) for role, p in files.items() if p is not None}


def fold_provenance(train: Mapping[str, Mapping[str, str | os.PathLike | None]],
                    held_out: Mapping[str, str | os.PathLike], cohort: str) -> dict:
    """The provenance block of a fold record.

    Args:
        train: per training case, its files by role (``ct``, ``target``, ``organs``).
        held_out: per held-out case, its CT.
        cohort: the cohort's folder (for messages; the hashes are what is compared).
    """
    return {"cohort": str(cohort),
            "train": {c: case_digests(files) for c, files in sorted(train.items())},
            "held_out": {c: {"ct": file_digest(p)} for c, p in sorted(held_out.items())}}


def compare_cases(recorded: Mapping[str, Mapping[str, str]],
                  current: Mapping[str, Mapping[str, str]],
                  roles: Sequence[str] | None = None) -> list[str]:
    """Differences between two ``{case: {role: hash}}`` maps (only ``roles`` if given)."""
    out = []
    for case in sorted(set(recorded) | set(current)):
        if case not in current:
            out.append(f"case {case} is not in the data at hand")
        elif case not in recorded:
            out.append(f"case {case} was not in the recorded data")
        else:
            keys = roles if roles is not None else sorted(set(recorded[case]) |
                                                          set(current[case]))
            changed = [r for r in keys if recorded[case].get(r) != current[case].get(r)]
            if changed:
                out.append(f"case {case}'s {'/'.join(changed)} differ")
    return out


def _summary(problems: list[str], limit: int = 3) -> str:
    more = f" and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


def check_training_cases(record: Mapping | None, current: Mapping[str, Mapping[str, str]],
                         *, where: str | os.PathLike, what: str,
                         roles: Sequence[str] = ("ct", "target")) -> None:
    """Refuse to reuse a trained fold whose training data differ from ``current``.

    ``roles`` are the files compared (CT and target by default: organ-channel maps made by
    the model's own organ stages are checked through those stages' provenance).
    """
    block = (record or {}).get(PROVENANCE_KEY)
    if block is None:
        raise InputError(where, f"{what} records no training data (trained by an older "
                                "version); train into another --model folder or use --retrain")
    problems = compare_cases(block["train"], current, roles)
    if problems:
        raise InputError(where, f"{what} was trained on other data than {block['cohort']} "
                                f"holds now ({_summary(problems)}); train into another "
                                "--model folder or use --retrain")


def check_held_out(record: Mapping | None, cases: Iterable[tuple[str, str | os.PathLike]], *,
                   where: str | os.PathLike, what: str) -> None:
    """Refuse to treat ``(case id, CT file)`` pairs as held out by a fold that trained on
    them or never saw them held out (another cohort, a changed CT)."""
    block = (record or {}).get(PROVENANCE_KEY)
    if block is None:
        raise InputError(where, f"{what} records no training data (trained by an older "
                                "version); retrain it to evaluate held-out cases")
    trained = {h["ct"]: c for c, h in block["train"].items() if "ct" in h}
    problems = []
    for case_id, ct in cases:
        digest = file_digest(ct)
        if case_id in block["train"] or digest in trained:
            name = case_id if case_id in block["train"] else f"{case_id} (= {trained[digest]})"
            problems.append(f"case {name} is one of its training cases")
        elif case_id not in block["held_out"]:
            problems.append(f"case {case_id} was not held out by it")
        elif block["held_out"][case_id]["ct"] != digest:
            problems.append(f"case {case_id}'s CT is not the one it held out")
    if problems:
        raise InputError(where, f"{what} cannot score these cases as held out "
                                f"({_summary(problems)})")
