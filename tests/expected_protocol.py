"""Byte-exact transcripts in the style of PyMeasure's ``expected_protocol``.

A test writes down, by hand, the (bytes the host writes, bytes the device answers)
pairs of an exchange. :class:`TranscriptPeer` plays the device on a loopback TCP
socket, so the driver talks through its real stack (pyserial ``socket://`` or pyvisa-py
``TCPIP::…::SOCKET``): every line the driver writes must equal the next expected one
byte for byte, and a line written after the transcript ended, or a pair never reached,
fails the test.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence

__all__ = ["TranscriptPeer"]


class TranscriptPeer:
    """The device side of a line-based transcript, on 127.0.0.1.

    Parameters
    ----------
    pairs : sequence of (bytes, bytes)
        Each host line (terminator included) and the device's answer to it (``b""``:
        silence).
    terminator : bytes
        What ends a host line.
    timeout : float
        Longest wait for the host's next byte, s; also bounds the wait for the host to
        close the link after the last pair.

    Use as a context manager around the driver's whole session (open to close): leaving
    it raises ``AssertionError`` on the first mismatch, an unanswered pair, or bytes
    after the end, even when the driver raised first (the driver's error is chained).
    """

    def __init__(self, pairs: Sequence[tuple[bytes, bytes]], *, terminator: bytes = b"\n",
                 timeout: float = 5.0) -> None:
        self.pairs = list(pairs)
        self.terminator = terminator
        self.timeout = timeout
        self.done = 0
        self.errors: list[str] = []
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.settimeout(timeout)
        self.port = self._srv.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self._srv.accept()
        except OSError as exc:
            self.errors.append(f"the host never connected ({exc})")
            return
        buf = b""
        with conn:
            conn.settimeout(self.timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for k, (want, reply) in enumerate(self.pairs):
                while self.terminator not in buf:
                    try:
                        chunk = conn.recv(4096)
                    except OSError as exc:
                        chunk = b""
                        self.errors.append(f"pair {k}: waiting for {want!r}: {exc}")
                    if not chunk:
                        if not self.errors:
                            self.errors.append(f"pair {k}: the host closed the link "
                                               f"before writing {want!r} (got {buf!r})")
                        return
                    buf += chunk
                i = buf.index(self.terminator) + len(self.terminator)
                got, buf = buf[:i], buf[i:]
                if got != want:
                    self.errors.append(f"pair {k}: host wrote {got!r}, expected {want!r}")
                    return
                if reply:
                    conn.sendall(reply)
                self.done += 1
            while True:  # after the last pair: anything but the host closing is a leftover
                try:
                    chunk = conn.recv(4096)
                except OSError as exc:
                    self.errors.append(f"the host did not close the link after the "
                                       f"transcript ({exc})")
                    return
                if not chunk:
                    break
                buf += chunk
            if buf:
                self.errors.append(f"bytes after the transcript ended: {buf!r}")

    @property
    def tcp_url(self) -> str:
        """pyserial URL of this peer."""
        return f"socket://127.0.0.1:{self.port}"

    @property
    def visa_resource(self) -> str:
        """pyvisa-py resource name of this peer."""
        return f"TCPIP0::127.0.0.1::{self.port}::SOCKET"

    def __enter__(self) -> TranscriptPeer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._thread.join(self.timeout + 1)
        self._srv.close()
        problems = list(self.errors)
        if self._thread.is_alive():
            problems.append("the peer is still waiting (the host did not close the link)")
        if not problems and self.done < len(self.pairs):
            problems.append(f"only {self.done} of {len(self.pairs)} pairs were exchanged")
        if problems:
            raise AssertionError("; ".join(problems)) from exc
