"""The signals that stop an ``rfctl`` command — Ctrl-C (SIGINT), SIGTERM and SIGHUP — and
a context manager that handles them on the main thread.

SIGTERM and SIGHUP raise :class:`rfctl.errors.Terminated`, a KeyboardInterrupt, so they
take the path of Ctrl-C everywhere (the board restored, the records written).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rfctl.errors import Terminated

__all__ = ["STOP_SIGNALS", "TERMINATING_SIGNALS", "handling", "signal_label", "stop_exception"]

# SIGHUP does not exist on Windows
TERMINATING_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
STOP_SIGNALS: tuple[int, ...] = (signal.SIGINT, *TERMINATING_SIGNALS)


def stop_exception(signum: int) -> KeyboardInterrupt:
    """The exception a stop signal raises: KeyboardInterrupt for SIGINT, else
    :class:`~rfctl.errors.Terminated`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def signal_label(signum: int) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    return "Ctrl-C" if signum == signal.SIGINT else Terminated(signum).signame


@contextmanager
def handling(handler: Callable, signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[bool]:
    """Install ``handler`` for ``signums`` inside the block and put the previous handlers
    back afterwards. Only on the main thread (elsewhere nothing is installed). SIGTERM or
    SIGHUP already ignored (``nohup``) stay ignored.

    Yields
    ------
    bool
        Whether the handlers were installed (on the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous: dict[int, object] = {}
    try:
        for s in signums:
            if s != signal.SIGINT and signal.getsignal(s) is signal.SIG_IGN:
                continue
            previous[s] = signal.signal(s, handler)
        yield True
    finally:
        for s, old in previous.items():
            if old is None:  # installed outside Python
                old = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
            signal.signal(s, old)
