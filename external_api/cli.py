"""The ``workspace`` command: the entry point for serving, calling and inspecting functions."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from external_api import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``workspace`` command."""
    parser = argparse.ArgumentParser(
        prog="workspace",
        description="Agent workspace runtime: external data APIs, function server, browser.",
    )
    parser.add_argument("--version", action="version", version=f"workspace-toolkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("version", help="print the installed version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``workspace`` command with ``argv`` and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    parser.print_help()
    return 0
