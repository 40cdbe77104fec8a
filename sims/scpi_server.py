"""A line-based SCPI server on 127.0.0.1 for the simulated instruments (pyvisa-py reaches
it as ``TCPIP::127.0.0.1::PORT::SOCKET``)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from .loopback import accepted, listen

__all__ = ["ScpiServer"]


class ScpiServer:
    """Serve a line handler (``str -> str | None``) on 127.0.0.1, one client at a time."""

    def __init__(self, handler: Callable[[str], str | None]) -> None:
        self.handler = handler
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.port = 0

    def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1:``port`` (0: any free port) in a thread; returns the port."""
        s = listen("127.0.0.1", port, backlog=2)
        self._sock = s
        self.port = s.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name="rfctl-scpi")
        self._thread.start()
        return self.port

    @property
    def resource(self) -> str:
        """The pyvisa-py resource string of this server, ``TCPIP::127.0.0.1::PORT::SOCKET``."""
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _serve(self) -> None:
        assert self._sock is not None
        for conn in accepted(self._sock, self._stop):
            try:
                self._client(conn)
            except OSError:  # the client went away mid-reply: drop it, keep serving
                continue

    def _client(self, conn) -> None:
        """Serve one client until it disconnects (or the server stops)."""
        conn.settimeout(0.1)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    d = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not d:
                    break
                buf += d
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self.lock:
                        reply = self.handler(line.decode("ascii", "replace").strip())
                    if reply is not None:
                        conn.sendall(reply.encode() + b"\n")

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
