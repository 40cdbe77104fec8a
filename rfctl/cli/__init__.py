"""The ``rfctl`` command line: one module per command group, each thin (parse → call the
library → format). Only this package prints.

``main(argv=None)`` returns an exit status, so it can be called from tests:

- 0 success;
- 1 an rfctl error (invalid config or state, hardware constraint, device, unwritable
  output): a one-line ``rfctl: error: …`` message on stderr;
- 2 usage (argparse);
- 3 an unexpected exception — a bug: ``rfctl: internal error, please report`` and the
  traceback under ``-v``;
- 130 interrupted (Ctrl-C);
- 143 terminated by SIGTERM, 129 by SIGHUP (128 + the signal's number): ``main`` turns
  them into :class:`~rfctl.errors.Terminated`, a KeyboardInterrupt, so they take the
  path of Ctrl-C everywhere (a lab run restores the board and writes its records), with
  the message ``rfctl: terminated (SIGTERM): …``.
Angles are shown in degrees and gains in dB here, at the edge; everything inside is SI.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rfctl import __version__
from rfctl.errors import OutputError, RfctlError, Terminated, interruption, stop_status
from rfctl.stopsignals import TERMINATING_SIGNALS, handling

from .argtypes import check_output_file

__all__ = ["build_parser", "main"]

# the command groups import numpy, scipy, pydantic, … (about 2 s): they are imported by
# build_parser, inside main's handling of Ctrl-C, so an interrupt during start-up exits
# 130 with one line instead of a traceback
_GROUP_NAMES = ("configs", "design", "board", "optimize", "sims", "lab")


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
    for name in _GROUP_NAMES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def _terminate(signum, frame) -> None:
    raise Terminated(signum)


def _stopped_head(exc: BaseException) -> str:
    """``rfctl: interrupted`` (Ctrl-C) or ``rfctl: terminated (SIGTERM)``."""
    ki = interruption(exc)
    return f"rfctl: {ki}" if isinstance(ki, Terminated) else "rfctl: interrupted"


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status.

    SIGTERM and SIGHUP raise :class:`~rfctl.errors.Terminated` while it runs (main
    thread only; the previous handlers are put back on return)."""
    with handling(_terminate, TERMINATING_SIGNALS):
        return _main(argv, out)


def _main(argv: Sequence[str] | None, out: TextIO | None) -> int:
    out = out or sys.stdout
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors and --help/--version
        return int(exc.code or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C while the command groups were imported
        print(_stopped_head(exc), file=sys.stderr)
        return stop_status(exc)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
    wire_handler = None
    try:
        if args.log_wire:
            check_output_file(args.log_wire, "--log-wire")
            try:
                wire_handler = logging.FileHandler(args.log_wire, encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"--log-wire {args.log_wire}: cannot open: {exc.strerror}",
                                  path=str(args.log_wire), reason=exc.strerror) from None
            wire_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            wire = logging.getLogger("rfctl.wire")
            wire.setLevel(logging.DEBUG)
            wire.addHandler(wire_handler)
        return int(args.func(args, out))
    except RfctlError as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # stopped by Ctrl-C, and says how
            print(f"{_stopped_head(exc)}: {_one_line(exc)}", file=sys.stderr)
            return stop_status(exc)
        print(f"rfctl: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(_stopped_head(exc), file=sys.stderr)
        return stop_status(exc)
    except BrokenPipeError:
        # the reader of our output went away (e.g. `rfctl demo | head -1`): not an error
        # of ours; stop writing quietly, with the shell's SIGPIPE status
        _silence_stdout()
        return 141
    except Exception as exc:  # a bug: say so, and show the traceback under -v
        print(f"rfctl: internal error, please report: {type(exc).__name__}: {_one_line(exc)}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        return 3
    finally:
        if wire_handler is not None:
            logging.getLogger("rfctl.wire").removeHandler(wire_handler)
            wire_handler.close()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (tests)
        pass


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (a multi-error config message is joined)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(exc).__name__
