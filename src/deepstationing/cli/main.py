"""Entry point of the ``deepstationing`` command.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable that takes
the parsed arguments and returns an exit code. Errors of the toolkit's own kind
(:class:`~deepstationing.errors.DeepStationingError`: bad input files and the like) are
printed as one line ``deepstationing: error: <file>: <problem>`` with exit code 2, and so
is an :class:`OSError` about a file (an output that cannot be written, an unreadable input);
anything else is a bug and keeps its traceback. Warnings the library logs are shown on
stderr as ``deepstationing: warning: <message>``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from deepstationing import __version__
from deepstationing.data.atomic import describe_os_error
from deepstationing.errors import DeepStationingError

#: Sub-command modules, in the order ``--help`` lists them (pipeline order).
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "phantom",
    "view",
    "rules",
    "train",
    "search",
    "experiment",
    "predict",
    "qc",
    "export",
    "evaluate",
    "dataset",
    "model",
)

DESCRIPTION = """\
Thoracic lymph node station parsing in chest CT (DeepStationing, IASLC map:
1L 1R 2L 2R 3A 3P 4L 4R 5 6 7 8).

Typical use:
  deepstationing demo -o out/                  run the whole pipeline on the built-in phantom
  deepstationing phantom --cases 4 --out ph/   synthesise CT + organ/station/node truth
  deepstationing rules --organs organs.nii.gz -o stations.nii.gz
  deepstationing train organs --cohort ph/ --fold 0 --config cpu
  deepstationing train stations --cohort ph/ --fold 0 --channels pred:all
  deepstationing search --cohort ph/ --fold 0     rank the 22 organs (key-organ search)
  deepstationing experiment paper --cohort ph/ --out exp/   the paper's protocol + report
  deepstationing predict ct.nii.gz -o out/ --model runs/models/<name>
  deepstationing predict dicom/CT/ -o out/ --model M --format nifti,rtstruct,seg
  deepstationing qc out/                       check the predictions' plausibility again
  deepstationing export out/stations.nii.gz --ct dicom/CT/ -o rt/ --format rtstruct
  deepstationing dataset import clinic/ -o cohort/ --map rois.yaml
  deepstationing model export runs/models/<name> -o model.zip
  deepstationing model import model.zip --to models/<name>
  deepstationing evaluate --pred P --truth T -o results/
  deepstationing view CASE_DIR -o case.png

Run 'deepstationing COMMAND --help' for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepstationing",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # a module that cannot be imported is a bug: it raises
        importlib.import_module(f"deepstationing.cli.{name}").register(sub)
    return parser


class _StderrWarnings(logging.Handler):
    """Shows the library's logged warnings as ``deepstationing: warning: ...`` on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:  # sys.stderr looked up now: it may have been replaced since (tests, capture)
            print(f"deepstationing: warning: {record.getMessage()}", file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _show_library_warnings() -> logging.Handler | None:
    logger = logging.getLogger("deepstationing")
    if any(isinstance(h, _StderrWarnings) for h in logger.handlers):
        return None  # nested call (demo runs the other commands)
    handler = _StderrWarnings()
    logger.addHandler(handler)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    handler = _show_library_warnings()
    try:
        return int(args.func(args) or 0)
    except DeepStationingError as exc:
        print(f"deepstationing: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not exc.filename:  # no file involved: a bug, keep the traceback
            raise
        print(f"deepstationing: error: {exc.filename}: {describe_os_error(exc, verb='')}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepstationing: interrupted", file=sys.stderr)
        return 130
    finally:
        if handler is not None:
            logging.getLogger("deepstationing").removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
