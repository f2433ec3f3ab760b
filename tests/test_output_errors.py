"""Outputs that cannot be written: one line naming the path and the problem, exit 2, no
temporary file left behind, for every command (handled once, in the atomic writers and in
``cli/main.py``)."""

from __future__ import annotations

import errno
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from deepstationing.cli.main import main
from deepstationing.data import atomic
from deepstationing.data.atomic import (
    atomic_output,
    current_umask,
    write_json_atomic,
    write_text_atomic,
)
from deepstationing.data.image import Image, read_image, write_image
from deepstationing.errors import InputError, OutputError
from deepstationing.phantom import generate_case


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("out_err") / "case_000"
    generate_case(0, seed=0, preset="small").write(d)
    return d


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    from deepstationing.phantom import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "c", 4, preset="small",
                           spacing=(11.2, 11.2, 10.0)).root


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".tmp-*")] if folder.is_dir() else []


# ---------------------------------------------------------------- the ways a write fails
def _under_a_file(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "out", "afile is a file, not a folder"


def _proc(tmp_path, monkeypatch):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    return Path("/proc") / "deepstationing_out", "/proc"


def _read_only(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permissions: refuse like the kernel would
        real_open, real_mkdir = os.open, os.mkdir

        def deny(real):
            def call(path, *args, **kwargs):
                if Path(os.fsdecode(path)).parent == ro:
                    raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
                return real(path, *args, **kwargs)
            return call

        monkeypatch.setattr(os, "open", deny(real_open))
        monkeypatch.setattr(os, "mkdir", deny(real_mkdir))
    return ro / "out", "permission denied"


def _disk_full(tmp_path, monkeypatch):
    """Every temporary file is a link to /dev/full: the kernel answers ENOSPC to writes."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real = atomic.StagedOutput.scratch

    def scratch(self, suffix=""):
        name = real(self, suffix)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return name

    monkeypatch.setattr(atomic.StagedOutput, "scratch", scratch)
    return tmp_path / "full" / "out", "no space left on device"


FAILURES = {"under_a_file": _under_a_file, "proc": _proc, "read_only": _read_only,
            "disk_full": _disk_full}


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def _check_one_line(code, err, out, expect):
    lines = err.splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert lines[-1].startswith("deepstationing: error: "), err
    assert str(out) in lines[-1] and expect in lines[-1], lines[-1]


COMMANDS = {
    "rules": lambda case, out: ["rules", "--organs", case / "organs.nii.gz", "-o",
                                f"{out}.nii.gz", "--quiet"],
    "rules_landmarks": lambda case, out: ["rules", "--organs", case / "organs.nii.gz", "-o",
                                          case.parent / "rules_ok.nii.gz", "--landmarks",
                                          f"{out}.json", "--quiet"],
    "view": lambda case, out: ["view", case, "-o", f"{out}.png"],
    "phantom": lambda case, out: ["phantom", "--cases", "1", "--out", out, "--quiet"],
    "evaluate": lambda case, out: ["evaluate", "--pred", case / "stations.nii.gz", "--truth",
                                   case / "stations.nii.gz", "-o", out],
    "predict": lambda case, out: ["predict", case / "ct.nii.gz", "-o", out, "--model", "m"],
    "demo": lambda case, out: ["demo", "-o", out, "--cases", "1", "--preset", "small"],
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_output_is_one_line(command, failure, case_dir, tmp_path, monkeypatch,
                                       capsys, request):
    if command == "rules_landmarks" and failure == "disk_full":
        pytest.skip("the station map, written first, fails the same way (tested in 'rules')")
    out, expect = FAILURES[failure](tmp_path, monkeypatch)
    if command == "predict":
        request.getfixturevalue("stand_in_model")
    argv = [str(a) for a in COMMANDS[command](case_dir, out)]
    option = next(o for o in ("--landmarks", "-o", "--out") if o in argv)
    named = Path(argv[argv.index(option) + 1])
    code, err = _run(capsys, argv)
    _check_one_line(code, err, named, expect)
    assert not _temps(tmp_path) and not _temps(case_dir.parent)
    if failure == "disk_full":  # nothing published under a final name
        assert not any(p.is_file() and p.stat().st_size for p in named.parent.rglob("*")
                       if p.suffix in (".gz", ".png", ".json", ".csv", ".md"))


@pytest.mark.parametrize("failure", ["under_a_file", "proc", "disk_full"])
def test_train_unwritable_workdir_is_one_line(failure, cohort_dir, tmp_path, monkeypatch,
                                              capsys):
    out, expect = FAILURES[failure](tmp_path, monkeypatch)
    code, err = _run(capsys, ["train", "organs", "--cohort", cohort_dir, "--fold", "0",
                              "--workdir", out, "--epochs", "1", "--iterations", "1"])
    _check_one_line(code, err, out, expect)
    assert not _temps(tmp_path)


# ---------------------------------------------------------------- the writers themselves
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "x.nii.gz"
    write_image(Image(np.full((2, 3, 4), 3, np.int16)), target)
    _disk_full(tmp_path, monkeypatch)  # formats ITK writes itself: test_image_checks.py
    with pytest.raises(OutputError, match="x.nii.gz: cannot write: no space left on device"):
        write_image(Image(np.zeros((2, 3, 4), np.int16)), target)
    with pytest.raises(OutputError, match="no space left on device"):
        write_json_atomic({"a": 1}, tmp_path / "x.json")
    monkeypatch.undo()
    assert read_image(target).array.max() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_other_exceptions_pass_through_and_leave_nothing(tmp_path):
    with pytest.raises(KeyError), atomic_output(tmp_path / "a.txt") as out:
        Path(out.path).write_text("half")
        out.scratch(".nii")
        raise KeyError("bug")
    assert list(tmp_path.iterdir()) == []


def test_output_errors_survive_a_process_pool():
    for exc in (OutputError("/x/y.nii.gz", "cannot write: disk full"),
                InputError("/x/ct.nii.gz", "2D image"), InputError(None, "--cases < 1")):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc) and back.path == exc.path


def test_phantom_workers_report_the_write_error(tmp_path, monkeypatch, capsys):
    _disk_full(tmp_path, monkeypatch)  # forked workers inherit the patched writer
    code, err = _run(capsys, ["phantom", "--cases", "2", "--workers", "2", "--quiet",
                              "--out", tmp_path / "c"])
    assert code == 2 and err.startswith("deepstationing: error: ") and len(err.splitlines()) == 1
    assert "no space left on device" in err and "ct.nii.gz" in err
    assert not _temps(tmp_path) and not (tmp_path / "c" / "manifest.json").exists()


def test_main_reports_an_os_error_about_a_file_in_one_line(tmp_path, capsys, monkeypatch):
    from deepstationing.cli import rules

    def denied(args):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "organs.nii"))

    monkeypatch.setattr(rules, "run", denied)
    code, err = _run(capsys, ["rules", "--organs", "x", "-o", "y"])
    assert code == 2 and err == f"deepstationing: error: {tmp_path / 'organs.nii'}: " \
                                "permission denied"

    def bug(args):
        raise OSError("no file involved")

    monkeypatch.setattr(rules, "run", bug)
    with pytest.raises(OSError, match="no file involved"):
        main(["rules", "--organs", "x", "-o", "y"])


# ---------------------------------------------------------------- permissions and umask
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_published_files_follow_the_umask_without_changing_it(mask, tmp_path, monkeypatch):
    old = os.umask(mask)  # the test sets it; the library must only read it
    try:
        assert current_umask() == mask

        def forbidden(*args):
            raise AssertionError("os.umask called: changes process-wide state")

        monkeypatch.setattr(os, "umask", forbidden)
        paths = [write_image(Image(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nii.gz"),
                 write_image(Image(np.zeros((2, 3, 4), np.int16)), tmp_path / "a.nrrd"),
                 write_text_atomic("x", tmp_path / "a.txt")]
        fd, tmp = __import__("tempfile").mkstemp(dir=tmp_path)  # owner-only file
        os.close(fd)
        atomic.publish(tmp, tmp_path / "p.bin")
        paths.append(tmp_path / "p.bin")
        monkeypatch.undo()
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p


def test_detached_header_formats_get_their_own_data_file(tmp_path):
    """.mhd/.nhdr: ITK names the data file after the (temporary) header; it is renamed."""
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for name in ("x.mhd", "y.nhdr", "x.mhd"):  # the second .mhd write replaces the first
        write_image(Image(arr), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mhd", "x.zraw", "y.nhdr",
                                                           "y.raw.gz"]
    for name in ("x.mhd", "y.nhdr"):
        np.testing.assert_array_equal(read_image(tmp_path / name).array, arr)
