"""Model packages: export/import round trip, and hostile archives refused without a trace.

The checkpoints are built like nnU-Net v2's (``nnUNetTrainer.save_checkpoint``): network
weights, SGD optimizer state, numpy float32 scalars in the training log, ``torch.device`` in
``init_args``; no training needed. The slow test packages a checkpoint that nnU-Net itself
wrote.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from deepstationing.backbone.checkpoint import load_checkpoint_safely
from deepstationing.cli.main import main
from deepstationing.errors import InputError
from deepstationing.training.package import (
    PACKAGE_MANIFEST,
    PackageLimits,
    export_model_package,
    import_model_package,
)


def nnunet_like_checkpoint(path: Path, extra=None) -> None:
    net = torch.nn.Conv3d(1, 2, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    net(torch.zeros(1, 1, 4, 4, 4)).sum().backward()
    opt.step()
    ck = {
        "network_weights": OrderedDict(net.state_dict()),
        "optimizer_state": opt.state_dict(),
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float32(0.1)], "ema_fg_dice": [np.float32(0.1)],
                    "dice_per_class_or_region": [[np.float64(0.2), np.float32(0.0)]],
                    "train_losses": [np.float32(1.5)], "val_losses": [np.float32(1.7)],
                    "lrs": [0.01], "epoch_start_timestamps": [1.0],
                    "epoch_end_timestamps": [2.0]},
        "_best_ema": np.float32(0.1),
        "current_epoch": 1,
        "init_args": {"plans": {"configurations": {}}, "configuration": "3d_fullres",
                      "fold": 0, "dataset_json": {"labels": {"background": 0}},
                      "device": torch.device("cpu")},
        "trainer_name": "DeepStationingTrainerCPU",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    ck.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, path)


def make_model(root: Path) -> Path:
    from deepstationing.training.stages import station_stage

    record = {"budget": {"epochs": 1, "iterations": 1, "val_iterations": 1}, "epochs": 1}
    stage = {"definition": station_stage("none").to_json(), "folds": {"0": record, "1": record}}
    (root / "stations").mkdir(parents=True)
    (root / "deepstationing_model.json").write_text(json.dumps(
        {"format": 3, "stages": {"stations": stage}}))
    for f in (0, 1):
        nnunet_like_checkpoint(root / "stations" / f"fold_{f}" / "checkpoint_final.pth")
        (root / "stations" / f"fold_{f}" / "deepstationing_runs.json").write_text("[]")
        (root / "stations" / f"fold_{f}" / "plans.json").write_text("{}")
        (root / "stations" / f"fold_{f}" / "dataset.json").write_text("{}")
    (root / "README.md").write_text("phantom model")
    return root


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pkg")
    model = make_model(tmp / "model")
    export_model_package(model, tmp / "model.zip")
    return model, tmp / "model.zip"


def test_nnunet_like_checkpoint_loads_weights_only(tmp_path):
    path = tmp_path / "ck.pth"
    nnunet_like_checkpoint(path)
    ck = load_checkpoint_safely(path)
    assert ck["trainer_name"] == "DeepStationingTrainerCPU"
    assert isinstance(ck["_best_ema"], np.float32)
    assert ck["init_args"]["device"] == torch.device("cpu")
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # the allow-list is what makes it load


def test_round_trip_keeps_every_file(package, tmp_path):
    model, archive = package
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read(PACKAGE_MANIFEST))
    assert manifest["schema"]["stations"][:2] == ["1L", "1R"]
    assert manifest["stages"]["stations"]["channels"] == "none"
    assert manifest["stages"]["stations"]["folds"] == ["0", "1"]
    paths = [f["path"] for f in manifest["files"]]
    assert "stations/fold_1/checkpoint_final.pth" in paths and "README.md" in paths
    target = import_model_package(archive, tmp_path / "models" / "m")
    for rel in paths:
        assert (target / rel).read_bytes() == (model / rel).read_bytes()
    # the same folder exports to the same bytes (sorted entries, fixed timestamps)
    export_model_package(model, tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == archive.read_bytes()


def test_cli_export_and_import(package, tmp_path, capsys):
    model, _ = package
    assert main(["model", "export", str(model), "-o", str(tmp_path / "m.zip")]) == 0
    assert main(["model", "import", str(tmp_path / "m.zip"), "--to", str(tmp_path / "m")]) == 0
    assert "stations" in capsys.readouterr().out
    assert (tmp_path / "m" / "deepstationing_model.json").exists()
    rc = main(["model", "import", str(tmp_path / "m.zip"), "--to", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "not empty" in err and "Traceback" not in err


def test_export_refuses_links_and_foreign_files(tmp_path):
    model = make_model(tmp_path / "model")
    (model / "stations" / "link.json").symlink_to(model / "stations" / "fold_0" / "plans.json")
    with pytest.raises(InputError, match="symbolic link"):
        export_model_package(model, tmp_path / "a.zip")
    (model / "stations" / "link.json").unlink()
    (model / "stations" / "hook.py").write_text("print('hi')")
    with pytest.raises(InputError, match="unexpected file stations/hook.py"):
        export_model_package(model, tmp_path / "b.zip")
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "b.zip").exists()


# ---------------------------------------------------------------------- hostile archives
def rebuild(src: Path, dst: Path, *, replace=None, add=(), drop=(), manifest=None) -> Path:
    """Copy a package, replacing/adding/dropping entries and optionally editing the manifest."""
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.pop(info.filename, zin.read(info))
            if info.filename == PACKAGE_MANIFEST and manifest is not None:
                data = json.dumps(manifest(json.loads(data))).encode()
            zout.writestr(info, data)
        for info, data in add:
            zout.writestr(info, data)
    return dst


def _entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def _relist(data_by_path):
    """Manifest editor: list these extra model files with correct sizes and checksums."""
    import hashlib

    def edit(man):
        for path, data in data_by_path.items():
            man["files"].append({"path": path, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()})
        return man
    return edit


class Evil:
    """Unpickling this would run a shell command."""

    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile(kind: str, package, tmp: Path) -> Path:
    _, good = package
    bad = tmp / f"{kind}.zip"
    ck_name = "model/stations/fold_0/checkpoint_final.pth"
    if kind == "traversal":
        return rebuild(good, bad, add=[(_entry("model/../../escaped.json"), b"{}")],
                       manifest=_relist({"../../escaped.json": b"{}"}))
    if kind == "dotdot_top":
        return rebuild(good, bad, add=[(_entry("../escaped.json"), b"{}")])
    if kind == "absolute":
        return rebuild(good, bad, add=[(_entry(str(tmp / "abs_escaped.json")), b"{}")])
    if kind == "symlink":
        return rebuild(good, bad, add=[(_entry("model/link.json", stat.S_IFLNK | 0o777),
                                        b"/etc/passwd")], manifest=_relist(
            {"link.json": b"/etc/passwd"}))
    if kind == "device":
        return rebuild(good, bad, add=[(_entry("model/dev.json", stat.S_IFCHR | 0o644), b"")],
                       manifest=_relist({"dev.json": b""}))
    if kind == "pickle":
        Evil.marker = tmp / "PWNED"
        nnunet_like_checkpoint(tmp / "evil.pth", {"trainer_name": Evil()})
        data = (tmp / "evil.pth").read_bytes()

        def fix(man):  # a careful attacker lists the right size and checksum
            import hashlib

            for f in man["files"]:
                if f["path"] == "stations/fold_0/checkpoint_final.pth":
                    f.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
            return man
        return rebuild(good, bad, replace={ck_name: data}, manifest=fix)
    if kind == "checksum":
        with zipfile.ZipFile(good) as zf:
            data = bytearray(zf.read("model/stations/fold_0/plans.json"))
        data[0:1] = b"["
        data[-1:] = b"]"
        return rebuild(good, bad, replace={"model/stations/fold_0/plans.json": bytes(data)})
    if kind == "extra":
        return rebuild(good, bad, add=[(_entry("model/stations/extra.json"), b"{}")])
    if kind == "missing":
        return rebuild(good, bad, drop=("model/README.md",))
    if kind == "python":
        return rebuild(good, bad, add=[(_entry("model/hook.py"), b"import os")],
                       manifest=_relist({"hook.py": b"import os"}))
    if kind == "duplicate":
        with zipfile.ZipFile(good) as zf:
            data = zf.read("model/README.md")
        with pytest.warns(UserWarning, match="Duplicate name"):
            return rebuild(good, bad, add=[(_entry("model/README.md"), data)])
    if kind == "bomb":
        data = bytes(20 << 20)  # 20 MB of zeros deflate to ~20 kB
        info = _entry("model/big.txt")
        info.compress_type = zipfile.ZIP_DEFLATED
        return rebuild(good, bad, add=[(info, data)], manifest=_relist({"big.txt": data}))
    if kind == "schema":
        def other(man):
            man["schema"]["stations"] = man["schema"]["stations"][::-1]
            man["schema"]["version"] = "0"
            return man
        return rebuild(good, bad, manifest=other)
    if kind == "corrupt":
        data = bytearray(good.read_bytes())
        with zipfile.ZipFile(good) as zf:
            info = zf.getinfo("model/stations/fold_0/plans.json")
        h = info.header_offset  # local header: name and extra lengths at bytes 26-29
        start = h + 30 + int.from_bytes(data[h + 26:h + 28], "little") + \
            int.from_bytes(data[h + 28:h + 30], "little")
        data[start] ^= 0xFF  # flip the first byte of its compressed data: the CRC fails
        bad.write_bytes(bytes(data))
        return bad
    if kind == "not_zip":
        bad.write_bytes(b"PK\x03\x04 definitely not a zip")
        return bad
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, problem", [
    ("traversal", "path traversal"),
    ("dotdot_top", "path traversal"),
    ("absolute", "absolute path"),
    ("symlink", "symbolic link"),
    ("device", "hard link, device"),
    ("pickle", "posix.system"),
    ("checksum", "checksum mismatch"),
    ("extra", "not in the package manifest"),
    ("missing", "is missing"),
    ("python", "unexpected file kind"),
    ("duplicate", "appears twice"),
    ("bomb", "zip bomb"),
    ("schema", "another label schema"),
    ("corrupt", "damaged or unsupported entry"),
    ("not_zip", "not a zip archive"),
])
def test_hostile_archive_is_refused_without_a_trace(package, tmp_path, capsys, kind, problem):
    work = tmp_path / "work"
    work.mkdir()
    bad = _hostile(kind, package, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    target = work / "models" / "imported"
    rc = main(["model", "import", str(bad), "--to", str(target)])
    err = capsys.readouterr().err
    assert rc == 2, err
    errors = [ln for ln in err.splitlines() if not ln.startswith("[model]")]
    assert len(errors) == 1 and errors[0].startswith(f"deepstationing: error: {bad}:"), err
    assert problem in errors[0], err
    # nothing written: no target, no staging left beside it, nothing outside it
    assert not target.exists()
    assert not (work / "models").exists() or not any((work / "models").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "escaped.json").exists() and not (tmp_path / "PWNED").exists()
    assert not Path(str(tmp_path / "abs_escaped.json")).exists()


def test_size_caps_are_enforced(package, tmp_path):
    _, good = package
    with pytest.raises(InputError, match="over the .*cap"):
        import_model_package(good, tmp_path / "m", limits=PackageLimits(max_file_bytes=1000))
    with pytest.raises(InputError, match="entries, over the cap"):
        import_model_package(good, tmp_path / "m", limits=PackageLimits(max_entries=3))
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_genuine_nnunet_checkpoint_packages_and_loads(tmp_path):
    """Train one tiny nnU-Net stage (seconds), then package and re-import its model."""
    from deepstationing.backbone.plans import CpuConfig
    from deepstationing.backbone.train import TrainBudget
    from deepstationing.organs.cascade import SINGLE, TrainOptions, train_organs
    from deepstationing.phantom import generate_cohort

    cohort = generate_cohort(tmp_path / "cohort", 4, preset="small", spacing=(5.6, 5.6, 10.0),
                             progress=False)
    opts = TrainOptions(workdir=tmp_path / "runs", config="cpu",
                        cpu=CpuConfig(patch_size=(16, 32, 32), features=(4, 8, 16),
                                      batch_size=2),
                        budget=TrainBudget(1, 2, 1), progress=None)
    model = train_organs(cohort, 0, options=opts, stages=(SINGLE,), model_dir=tmp_path / "m")
    ck_path = model.checkpoint(SINGLE, 0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(ck_path))
    assert set(unsafe) <= {"numpy._core.multiarray.scalar", "numpy.dtype",
                           "numpy.core.multiarray.scalar"}, unsafe
    assert load_checkpoint_safely(ck_path)["trainer_name"] == "DeepStationingTrainerCPU"
    export_model_package(model.root, tmp_path / "m.zip")
    target = import_model_package(tmp_path / "m.zip", tmp_path / "imported")
    assert (target / "single" / "fold_0" / "checkpoint_final.pth").read_bytes() == \
        ck_path.read_bytes()
