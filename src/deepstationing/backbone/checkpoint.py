"""Load nnU-Net checkpoints without running code from them.

A ``.pth`` checkpoint is a pickle: loading it with plain ``torch.load(weights_only=False)``
(what nnU-Net does) runs whatever the file asks for. :func:`load_checkpoint_safely` uses
PyTorch's weights-only unpickler, which builds tensors, containers and plain values only,
and allows exactly the few extra types that nnU-Net v2 checkpoints hold, measured on a
checkpoint written by nnU-Net 2.8.1 (``torch.serialization.get_unsafe_globals_in_checkpoint``):

* ``numpy._core.multiarray.scalar`` and ``numpy.dtype``: the numpy float32/float64 scalars of
  the training log (``logging``: losses, pseudo Dice) and ``_best_ema``; also under their
  numpy 1.x name ``numpy.core.multiarray.scalar``;
* the numeric numpy dtype classes (``numpy.dtypes.Float32DType``, ...), which numpy 2
  pickles with each dtype. Object dtypes are not allowed, so no Python object can come
  back through a numpy scalar.

``torch.device`` (in ``init_args``) is allowed by PyTorch already. Anything else, e.g. a
``__reduce__`` that calls ``os.system``, is refused before it is called.

>>> import tempfile, pathlib, numpy as np, torch
>>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint_final.pth"
>>> torch.save({"network_weights": {"w": torch.zeros(2)}, "_best_ema": np.float32(0.5),
...             "init_args": {"device": torch.device("cpu")}, "trainer_name": "T"}, path)
>>> ck = load_checkpoint_safely(path)
>>> sorted(ck), float(ck["_best_ema"])
(['_best_ema', 'init_args', 'network_weights', 'trainer_name'], 0.5)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from deepstationing.errors import InputError

__all__ = ["load_checkpoint_safely", "safe_checkpoint_globals", "REQUIRED_KEYS"]

#: What every nnU-Net v2 checkpoint holds (nnUNetTrainer.save_checkpoint).
REQUIRED_KEYS = ("network_weights", "init_args", "trainer_name")

_NUMERIC_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
                   "UInt64", "Float16", "Float32", "Float64")


def safe_checkpoint_globals() -> list:
    """The extra globals an nnU-Net checkpoint may name (see the module docstring)."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed: list = [np.dtype, scalar, (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    for name in _NUMERIC_DTYPES:
        cls = getattr(dtypes, f"{name}DType", None) if dtypes is not None else None
        if cls is not None:
            allowed.append(cls)
    return allowed


def load_checkpoint_safely(path: str | os.PathLike, *, map_location: Any = "cpu",
                           require_keys: tuple[str, ...] = REQUIRED_KEYS) -> dict:
    """Load an nnU-Net checkpoint with the weights-only unpickler (no code from the file).

    Args:
        path: the ``.pth`` file.
        map_location: where tensors go (``torch.load``'s argument; default CPU).
        require_keys: top-level keys the checkpoint must have (``()`` for none).

    Raises:
        InputError: the file is missing or not a checkpoint, asks for a type outside the
            allow-list (it could run code: refused, nothing executed), or lacks the keys.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such checkpoint file")
    try:
        with torch.serialization.safe_globals(safe_checkpoint_globals()):
            ck = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        what = found.group(1) if found else "a type outside the allow-list"
        raise InputError(p, f"refused to load: the checkpoint asks for {what}, which "
                            "weights-only loading does not allow (it could run code); "
                            "nothing from it was executed") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(p, f"not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(ck, dict):
        raise InputError(p, f"not an nnU-Net checkpoint (a {type(ck).__name__}, not a dict)")
    missing = [k for k in require_keys if k not in ck]
    if missing:
        raise InputError(p, f"not an nnU-Net checkpoint (no {', '.join(missing)})")
    return ck
