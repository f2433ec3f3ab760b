"""The phantom generator reports progress through a callback and logging, never by printing;
the command line prints it."""

from __future__ import annotations

import logging

from deepstationing.cli.main import main
from deepstationing.phantom import generate_cohort

TINY = (11.2, 11.2, 10.0)


def test_library_reports_through_the_callback_and_logging(tmp_path, capsys, caplog):
    calls = []
    with caplog.at_level(logging.INFO, logger="deepstationing"):
        generate_cohort(tmp_path / "c", 3, preset="small", spacing=TINY,
                        progress=lambda *a: calls.append(a))
    assert [(done, total, cid) for done, total, cid, _ in calls] == [
        (1, 3, "case_000"), (2, 3, "case_001"), (3, 3, "case_002")]
    assert all(seconds > 0 for *_, seconds in calls)
    assert capsys.readouterr() == ("", "")  # nothing printed
    messages = [r.getMessage() for r in caplog.records]
    assert sum("case_00" in m for m in messages) == 3 and "wrote 3 phantom cases" in messages[-1]


def test_cli_prints_the_progress(tmp_path, capsys):
    assert main(["phantom", "--cases", "2", "--out", str(tmp_path / "c"), "--spacing",
                 "11.2", "11.2", "10"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("[phantom] 1/2 case_000 (") and err[1].startswith("[phantom] 2/2")
    assert err[-1].startswith(f"[phantom] wrote 2 cases to {tmp_path / 'c'} in ")
    assert main(["phantom", "--cases", "1", "--out", str(tmp_path / "q"), "--quiet",
                 "--spacing", "11.2", "11.2", "10"]) == 0
    assert capsys.readouterr().err == ""
