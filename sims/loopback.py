"""Loopback TCP plumbing shared by the simulated servers (board and instruments)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

__all__ = ["accepted", "listen"]


def listen(host: str, port: int, *, backlog: int = 4, poll_s: float = 0.1) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port) whose ``accept`` times
    out every ``poll_s`` seconds, so a server thread can notice a stop request.

    Raises
    ------
    OSError
        The address cannot be bound (in use, not local, out of range).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        s.settimeout(poll_s)
    except (OSError, OverflowError):
        s.close()
        raise
    return s


def accepted(sock: socket.socket, stop: threading.Event) -> Iterator[socket.socket]:
    """Connections accepted on ``sock`` until ``stop`` is set or the socket is closed,
    each with TCP_NODELAY (replies leave at once, as from a UART)."""
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield conn
