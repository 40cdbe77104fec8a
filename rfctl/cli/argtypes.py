"""Argument types and output-path checks for the command line.

A bad number is a usage error (argparse prints it and the CLI exits 2); an output path
that cannot be written (a directory, a missing parent) is an
:class:`~rfctl.errors.OutputError` (exit 1), checked before any work is done.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rfctl.errors import OutputError

__all__ = ["check_output_file", "crc32_value", "finite_float", "int_at_least", "probability"]


def int_at_least(lo: int, hi: int = 2**63 - 1):
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside [{lo}, {hi}]")
        return v

    parse.__name__ = "int"
    return parse


def finite_float(lo: float = -math.inf, hi: float = math.inf):
    """An argparse type: a finite float in [lo, hi]."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text} is not a finite number in [{lo:g}, {hi:g}]")
        return v

    parse.__name__ = "float"
    return parse


probability = finite_float(0.0, 1.0)
probability.__doc__ = "argparse type: a finite probability in [0, 1]."


def crc32_value(text: str) -> int:
    """An argparse type: a CRC-32 written in decimal or 0x-hex, in [0, 2^32)."""
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CRC-32 (e.g. 0x1234abcd)") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 0xffffffff]")
    return v


def check_output_file(path: Path | None, what: str) -> None:
    """Refuse an output file path that cannot be written, before any work is done.

    Raises
    ------
    OutputError
        ``path`` is a directory, contains a NUL byte, or its parent does not exist.
    """
    if path is None:
        return
    s = str(path)
    if "\0" in s:
        raise OutputError(f"{what} {s!r}: invalid file name (NUL byte)", path=s,
                          reason="invalid file name")
    p = Path(s)
    if p.is_dir():
        raise OutputError(f"{what} {s}: is a directory; give a file name", path=s,
                          reason="is a directory")
    if p.parent.exists() and not p.parent.is_dir():
        raise OutputError(f"{what} {s}: {str(p.parent)!r} is a file, not a directory",
                          path=s, reason="parent is a file")
    if not p.parent.is_dir():
        raise OutputError(f"{what} {s}: directory {str(p.parent)!r} does not exist", path=s,
                          reason="missing directory")
