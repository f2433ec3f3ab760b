"""Helper for commands with actions (``dataset import``, ``model export``): not a command."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def command_with_actions(subparsers, name: str, *, help: str, description: str,
                         epilog: str) -> Callable[..., argparse.ArgumentParser]:
    """Add command ``name``; returns ``add(action, help)`` that adds one of its actions.

    Each action shows the command's description and examples in its ``--help`` unless
    given its own.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                   formatter_class=fmt)
    sub = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)

    def add(action: str, help: str, *, own_description: str | None = None
            ) -> argparse.ArgumentParser:
        return sub.add_parser(action, help=help, description=own_description or description,
                              epilog=None if own_description else epilog,
                              formatter_class=fmt)

    return add
