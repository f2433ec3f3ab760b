"""Plan and preprocess an exported dataset: nnU-Net's default plans, or the CPU configuration.

Two configurations:

``full``
    nnU-Net's own ``ExperimentPlanner`` and its ``3d_fullres`` configuration, unchanged
    (patch, network depth and batch size chosen by nnU-Net for a GPU), trained for 1000
    epochs by the default trainer, as in the paper.

``cpu``
    nnU-Net's planner output with the ``3d_fullres`` configuration shrunk for a laptop
    or a 2-core CI machine: a small patch (default 32 x 64 x 64 voxels), a 4-level
    ``PlainConvUNet`` with few features (8-16-32-64) and batch size 2, saved as its own
    plans (``DeepStationingCPUPlans``). Target spacing, intensity normalisation and
    resampling stay nnU-Net's. See :class:`CpuConfig`.

nnU-Net runs fingerprinting and preprocessing in a pool of ``spawn`` worker processes.
On the 1-2 core machines the CPU configuration is meant for, starting those workers costs
more than the work itself (tens of seconds for a handful of small cases), so
:func:`plan_and_preprocess` runs nnU-Net's own per-case functions in this process instead
(``_InProcessPool``, a small stand-in for ``multiprocessing.Pool`` that nnU-Net's loops
accept). The results are the same files nnU-Net writes.

nnU-Net's fingerprint samples 10^8 foreground voxels *per input channel* for its intensity
statistics, held in memory as float64: 0.8 GB per channel, 18 GB for CT + 22 organ
channels, which kills the process on a 24 GB machine. Only the CT channel's statistics are
used (organ channels are ``noNorm``), and its percentiles and mean are estimated just as
well from :data:`FINGERPRINT_SAMPLES` voxels, so the fingerprint extractor used here
(``_LeanFingerprintExtractor``) samples that many instead.

Examples
--------
>>> CpuConfig().arch_kwargs_update([32, 64, 64])["strides"]
[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
>>> CpuConfig(patch_size=(16, 32, 32), features=(4, 8, 16)).arch_kwargs_update([16, 32, 32])[
...     "n_stages"]
3
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepstationing.backbone.datasets import DatasetRef
from deepstationing.backbone.env import Workspace, nnunet_environment
from deepstationing.data.cohort import write_json_atomic

__all__ = ["CpuConfig", "PlansRef", "plan_and_preprocess", "CONFIGS", "CPU_PLANS", "FULL_PLANS",
           "CONFIGURATION", "Augmentation", "ct_window_properties"]

CONFIGS = ("cpu", "full")
#: Foreground voxels sampled (over the whole dataset) for the intensity fingerprint.
FINGERPRINT_SAMPLES = 2_000_000
CPU_PLANS = "DeepStationingCPUPlans"
FULL_PLANS = "nnUNetPlans"
#: The nnU-Net configuration every stage uses (the paper: 3D nnU-Net).
CONFIGURATION = "3d_fullres"


@dataclass(frozen=True)
class CpuConfig:
    """The CPU-sized network: patch (in nnU-Net's axis order), features per level, batch.

    The number of levels is ``len(features)``; each level after the first halves every
    patch axis still at least 8 voxels long. ``learning_rate`` overrides the CPU trainer's
    AdamW learning rate (3e-3) for this network: tiny networks learn faster with more;
    ``optimizer`` its optimiser (``"adamw"``, or nnU-Net's ``"sgd"``, kept for
    comparisons: see ``docs/defaults.md``).

    >>> CpuConfig((16, 32, 32), (8, 16, 32), learning_rate=1e-2).to_json()["learning_rate"]
    0.01
    >>> "learning_rate" in CpuConfig().to_json()
    False
    """

    patch_size: tuple[int, int, int] = (32, 64, 64)
    features: tuple[int, ...] = (8, 16, 32, 64)
    batch_size: int = 2
    convs_per_stage: int = 2
    learning_rate: float | None = None
    optimizer: str | None = None

    def arch_kwargs_update(self, patch: Sequence[int]) -> dict:
        """The ``arch_kwargs`` entries this config overrides, for a given patch."""
        n = len(self.features)
        size = list(patch)
        strides = [[1, 1, 1]]
        for _ in range(n - 1):
            s = [2 if v >= 8 else 1 for v in size]
            size = [v // k for v, k in zip(size, s)]
            strides.append(s)
        return {
            "n_stages": n,
            "features_per_stage": list(self.features),
            "kernel_sizes": [[3, 3, 3]] * n,
            "strides": strides,
            "n_conv_per_stage": [self.convs_per_stage] * n,
            "n_conv_per_stage_decoder": [self.convs_per_stage] * (n - 1),
        }

    def divisor(self) -> list[int]:
        """What every patch axis must be divisible by (product of strides)."""
        upd = self.arch_kwargs_update(self.patch_size)
        out = [1, 1, 1]
        for s in upd["strides"]:
            out = [a * b for a, b in zip(out, s)]
        return out

    def __post_init__(self) -> None:
        if self.optimizer not in (None, "adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("learning_rate", "optimizer"):  # unset: configurations stay as they were
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_json(cls, obj: dict) -> CpuConfig:
        lr = obj.get("learning_rate")
        return cls(tuple(obj["patch_size"]), tuple(obj["features"]), int(obj["batch_size"]),
                   int(obj.get("convs_per_stage", 2)), float(lr) if lr is not None else None,
                   obj.get("optimizer"))


@dataclass(frozen=True)
class PlansRef:
    """What a trainer needs to find a planned, preprocessed dataset."""

    dataset: DatasetRef
    plans_identifier: str
    configuration: str = CONFIGURATION
    config: str = "cpu"
    cpu: CpuConfig | None = field(default=None)


# ------------------------------------------------------------------ in-process pool
class _Ready:
    def __init__(self, value):
        self._value = value

    def ready(self) -> bool:
        return True

    def get(self, timeout=None):
        return self._value


class _Alive:
    def is_alive(self) -> bool:
        return True


class _InProcessPool:
    """Just enough of ``multiprocessing.Pool`` for nnU-Net's fingerprint/preprocess loops."""

    def __init__(self, *args, **kwargs):
        self._pool = [_Alive()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def starmap_async(self, func, iterable):
        return _Ready([func(*args) for args in iterable])


class _Context:
    Pool = _InProcessPool


class _MultiprocessingShim:
    @staticmethod
    def get_context(method=None):
        return _Context()


@contextlib.contextmanager
def _in_process(*modules) -> Iterator[None]:
    saved = [(m, m.multiprocessing) for m in modules]
    try:
        for m in modules:
            m.multiprocessing = _MultiprocessingShim
        yield
    finally:
        for m, orig in saved:
            m.multiprocessing = orig


# ------------------------------------------------------------------ toolkit settings
@dataclass(frozen=True)
class Augmentation:
    """What the toolkit's trainers may do to a patch (see :mod:`.trainers`).

    Attributes:
        mirror: world axes that may be mirrored, of ``"z"`` (superior-inferior), ``"y"``
            (anterior-posterior) and ``"x"`` (left-right; never for lateralised labels).
        max_rotation_deg: rotation limit (nnU-Net: up to 180 degrees in-plane).
    """

    mirror: tuple[str, ...] = ()
    max_rotation_deg: float = 15.0

    def plans_entry(self, transpose_forward: Sequence[int]) -> dict:
        """The ``plans["deepstationing"]`` entries: mirror axes in nnU-Net's axis order.

        >>> Augmentation(("z", "y")).plans_entry([0, 1, 2])["mirror_axes"]
        [0, 1]
        >>> Augmentation(("x",)).plans_entry([2, 0, 1])["mirror_axes"]
        [0]
        """
        array_axis = {"z": 0, "y": 1, "x": 2}
        axes = sorted(list(transpose_forward).index(array_axis[a]) for a in self.mirror)
        return {"mirror_axes": axes, "max_rotation_deg": float(self.max_rotation_deg)}

    def to_json(self) -> dict:
        return {"mirror": list(self.mirror), "max_rotation_deg": self.max_rotation_deg}

    @classmethod
    def from_json(cls, obj: dict) -> Augmentation:
        return cls(tuple(obj.get("mirror", ())), float(obj.get("max_rotation_deg", 15.0)))


def ct_window_properties(window: Sequence[float]) -> dict:
    """nnU-Net CT-normalisation statistics for a fixed HU window (clip, then scale).

    nnU-Net's ``CTNormalization`` clips to the 0.5/99.5 percentiles of the *target's*
    foreground and z-scores with its mean and std. For a station target (mediastinal fat)
    that clips the CT to about [-150, 220] HU, where lung, fat and air look alike. A fixed
    window instead keeps what the CT shows: ``[-1000, 1000]`` maps to [-2.5, 2.5].

    >>> ct_window_properties((-1000, 1000))["std"]
    400.0
    """
    lo, hi = (float(v) for v in window)
    return {"percentile_00_5": lo, "percentile_99_5": hi, "mean": (lo + hi) / 2,
            "std": (hi - lo) / 5, "min": lo, "max": hi, "median": (lo + hi) / 2}


def _apply_toolkit(plans_file: Path, augmentation: Augmentation,
                   ct_window: Sequence[float] | None, cpu: CpuConfig | None = None,
                   spacing: Sequence[float] | None = None) -> None:
    plans = json.loads(plans_file.read_text())
    if spacing is not None:  # the data is on this grid already: nnU-Net must not resample
        transposed = [float(spacing[a]) for a in plans["transpose_forward"]]
        plans["configurations"][CONFIGURATION]["spacing"] = transposed
    plans["deepstationing"] = augmentation.plans_entry(plans["transpose_forward"])
    if cpu is not None and cpu.learning_rate is not None:
        plans["deepstationing"]["learning_rate"] = float(cpu.learning_rate)
    if cpu is not None and cpu.optimizer is not None:
        plans["deepstationing"]["optimizer"] = cpu.optimizer
    if ct_window is not None:
        plans["foreground_intensity_properties_per_channel"]["0"] = \
            ct_window_properties(ct_window)
    write_json_atomic(plans, plans_file)


# ------------------------------------------------------------------ planning
def _source_key(dataset: DatasetRef, config: str, cpu: CpuConfig | None,
                augmentation: Augmentation, ct_window: Sequence[float] | None,
                spacing: Sequence[float] | None) -> dict:
    src = json.loads((dataset.raw_folder / "deepstationing_source.json").read_text())
    key = {"source": src, "config": config, "cpu": cpu.to_json() if cpu else None,
           "augmentation": augmentation.to_json(),
           "ct_window": list(ct_window) if ct_window is not None else None,
           "spacing": [float(v) for v in spacing] if spacing is not None else None}
    return json.loads(json.dumps(key))  # tuples -> lists, as read back from disk


def plan_and_preprocess(workspace: Workspace, dataset: DatasetRef, config: str = "cpu",
                        cpu: CpuConfig | None = None, *,
                        augmentation: Augmentation = Augmentation(),
                        ct_window: Sequence[float] | None = None,
                        spacing: Sequence[float] | None = None,
                        verbose: bool = False) -> PlansRef:
    """Fingerprint, plan and preprocess ``dataset`` (skipped if already done for these inputs).

    Args:
        workspace: the nnU-Net folders.
        dataset: the exported raw dataset.
        config: ``"cpu"`` or ``"full"``.
        cpu: the CPU network (``cpu`` config only; default :class:`CpuConfig`).
        augmentation: mirror axes and rotation limit the trainers may use (written into
            the plans, so prediction knows them too).
        ct_window: a fixed HU window for the CT channel (``None``: nnU-Net's statistics
            of the target's foreground; see :func:`ct_window_properties`).
        spacing: the stage's target spacing ``(z, y, x)``, the grid the dataset was
            exported on (:mod:`deepstationing.backbone.inputs`); written into the plans, so
            that nnU-Net resamples nothing (``None``: nnU-Net's own choice).
        verbose: show nnU-Net's output.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; use one of {CONFIGS}")
    if config == "cpu":
        cpu = cpu or CpuConfig()
    else:
        cpu = None
    plans_id = CPU_PLANS if config == "cpu" else FULL_PLANS
    ref = PlansRef(dataset, plans_id, CONFIGURATION, config, cpu)
    pre = workspace.preprocessed / dataset.name
    marker = pre / f"deepstationing_{plans_id}.json"
    key = _source_key(dataset, config, cpu, augmentation, ct_window, spacing)
    if marker.exists() and json.loads(marker.read_text()) == key:
        return ref
    with nnunet_environment(workspace, n_proc_da=1):
        import nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor as fpe_mod
        import nnunetv2.preprocessing.preprocessors.default_preprocessor as pp_mod
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprint_dataset,
            plan_experiment_dataset,
            preprocess_dataset,
        )

        with _in_process(fpe_mod, pp_mod), _quiet(verbose):
            if marker.exists():
                marker.unlink()
            extract_fingerprint_dataset(dataset.id, _lean_extractor(), num_processes=1,
                                        clean=True, verbose=False, show_progress_bar=False)
            plan_experiment_dataset(dataset.id)
            if config == "cpu":
                _write_cpu_plans(pre, cpu)
            _apply_toolkit(pre / f"{plans_id}.json", augmentation, ct_window, cpu, spacing)
            preprocess_dataset(dataset.id, plans_id, configurations=(CONFIGURATION,),
                               num_processes=[1], verbose=False, show_progress_bar=False)
    write_json_atomic(key, marker)
    return ref


def _lean_extractor():
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )

    class _LeanFingerprintExtractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = FINGERPRINT_SAMPLES

    return _LeanFingerprintExtractor


def _write_cpu_plans(pre: Path, cpu: CpuConfig) -> None:
    plans = json.loads((pre / f"{FULL_PLANS}.json").read_text())
    conf = dict(plans["configurations"][CONFIGURATION])
    div = cpu.divisor()
    patch = [max(d, (int(p) // d) * d) for p, d in zip(cpu.patch_size, div)]
    conf["patch_size"] = patch
    conf["batch_size"] = int(cpu.batch_size)
    conf["data_identifier"] = f"{CPU_PLANS}_{CONFIGURATION}"
    arch = json.loads(json.dumps(conf["architecture"]))
    arch["arch_kwargs"].update(cpu.arch_kwargs_update(patch))
    conf["architecture"] = arch
    plans["configurations"] = {CONFIGURATION: conf}
    plans["plans_name"] = CPU_PLANS
    write_json_atomic(plans, pre / f"{CPU_PLANS}.json")


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """nnU-Net prints a lot on stdout; keep it out of the user's way unless verbose."""
    if verbose:
        yield
        return
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        yield
