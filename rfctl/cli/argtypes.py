"""Argument types and output-path checks for the command line.

A bad number is a usage error (argparse prints it and the CLI exits 2); an output path
that cannot be written (a directory, a missing parent) is an
:class:`~rfctl.errors.OutputError` (exit 1), checked before any work is done.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from rfctl.errors import OutputError

__all__ = ["check_output_file", "check_writable_folder", "crc32_value", "finite_float",
           "int_at_least", "probability"]


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
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo:g}, {hi:g}]")
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

    The folder is probed by creating a file in it and removing it again (permission
    bits are not consulted: root ignores them, and a folder such as ``/proc`` refuses
    new files whatever its bits say); an existing regular file is opened for appending (nothing
    written, its contents untouched).

    Raises
    ------
    OutputError
        ``path`` is a directory, contains a NUL byte, its parent does not exist, or the
        file cannot be created or written there.
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
    if p.is_file():  # a regular file (opening a FIFO or a device could block)
        try:
            with open(p, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise OutputError(f"{what} {s}: cannot write: {exc.strerror or exc}", path=s,
                              reason=str(exc.strerror or exc)) from None
    check_writable_folder(p.parent, f"{what} {s}: cannot write")


def check_writable_folder(folder: Path, what: str) -> None:
    """Refuse a folder in which a file cannot be created: a probe file is created in it
    and removed again (the permission bits are not consulted; root ignores them).

    Parameters
    ----------
    folder : Path
        An existing folder.
    what : str
        The start of the message (e.g. ``"--out runs: cannot create the run folder"``);
        the reason follows in parentheses.

    Raises
    ------
    OutputError
        A file cannot be created in ``folder`` (the reason from the OS).
    """
    try:
        fd, probe = tempfile.mkstemp(prefix=".rfctl-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{what} (no file can be created in {str(folder)!r}: "
                          f"{exc.strerror or exc})", path=str(folder),
                          reason=str(exc.strerror or exc)) from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
