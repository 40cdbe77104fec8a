"""The ``rfctl`` command line: one module per command group, each thin (parse → call the
library → format). Only this package prints.

``main(argv=None)`` returns an exit status (0 success, 1 an rfctl error such as an
invalid config or a hardware constraint, 2 usage), so it can be called from tests.
Angles are shown in degrees and gains in dB here, at the edge; everything inside is SI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rfctl import __version__
from rfctl.errors import RfctlError

from . import board, configs, design, lab, optimize, sims

__all__ = ["build_parser", "main"]

_GROUPS = (configs, design, board, optimize, sims, lab)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (each group registers its own)."""
    p = argparse.ArgumentParser(
        prog="rfctl",
        description="Control reconfigurable antenna arrays: optimize, quantize, program.",
    )
    p.add_argument("--version", action="version", version=f"rfctl {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr (-v info, -vv debug)")
    p.add_argument("--log-wire", type=Path, metavar="FILE",
                   help="record every frame (logger rfctl.wire, DEBUG) in FILE")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors and --help/--version
        return int(exc.code or 0)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
    wire_handler = None
    if args.log_wire:
        wire_handler = logging.FileHandler(args.log_wire, encoding="utf-8")
        wire_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        wire = logging.getLogger("rfctl.wire")
        wire.setLevel(logging.DEBUG)
        wire.addHandler(wire_handler)
    try:
        return int(args.func(args, out))
    except RfctlError as exc:
        print(f"rfctl: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if wire_handler is not None:
            logging.getLogger("rfctl.wire").removeHandler(wire_handler)
            wire_handler.close()
