"""Serve a simulated firmware on a loopback TCP socket or a pseudo-terminal.

The serial driver then reaches it through pyserial unchanged (``socket://127.0.0.1:PORT``
or the printed ``/dev/pts/N``). With ``baud`` set, the server behaves like a full-duplex
UART: request bytes become available to the firmware at the line rate (10 bit times per
byte, 8N1) and replies leave at the line rate on their own wire, overlapping reception.

One host at a time: a second TCP client gets a NAK BUSY frame (or, for line protocols,
nothing) and is disconnected.
"""

from __future__ import annotations

import logging
import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["SimServer"]

log = logging.getLogger(__name__)


def _precise_timers() -> None:
    """Ask Linux for 1 µs timer slack in this thread (default 50 µs), so a reply due in
    0.2 ms is not released 50 µs late; elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


class _Pacer:
    """Line-rate timing of one direction of a UART."""

    def __init__(self, baud: int | None) -> None:
        self.byte_time = 10.0 / baud if baud else 0.0
        self.free_at = 0.0

    def finish_time(self, n: int, start: float) -> float:
        t = max(start, self.free_at) + n * self.byte_time
        self.free_at = t
        return t


class SimServer:
    """Run a firmware (``receive(bytes) -> bytes``) behind a socket or a pty.

    Parameters
    ----------
    firmware : object
        Has ``receive(bytes) -> bytes``; optionally ``busy_frame()``, ``delimiter``
        (default 0x00) and ``faults.reply_delay_s``.
    baud : int, optional
        Simulated line rate; None for no pacing.
    """

    def __init__(self, firmware, *, baud: int | None = None) -> None:
        self.firmware = firmware
        self.baud = baud
        self.delimiter = getattr(firmware, "delimiter", b"\x00")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.address: str | None = None
        self._sock: socket.socket | None = None
        self._master_fd: int | None = None
        self._slave_fd: int | None = None

    # ---------------------------------------------------------------- public
    def start_socket(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port); returns ``socket://host:port``."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(4)
        except BaseException:
            s.close()  # the port stays free for the caller's next try
            raise
        s.settimeout(0.1)
        self._sock = s
        self.address = f"socket://{host}:{s.getsockname()[1]}"
        self._spawn(self._accept_loop)
        log.info("simulated board listening on %s", self.address)
        return self.address

    def start_pty(self) -> str:
        """Open a pseudo-terminal pair; returns the slave path for pyserial."""
        import tty

        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master_fd, self._slave_fd = master, slave
        self.address = os.ttyname(slave)
        self._spawn(self._pty_loop)
        log.info("simulated board on pseudo-terminal %s", self.address)
        return self.address

    def stop(self) -> None:
        """Stop serving: join the threads, close the socket or pseudo-terminal."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        for fd in (self._master_fd, self._slave_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted (for ``rfctl sim-board``)."""
        try:
            while not self._stop.is_set():
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # ---------------------------------------------------------------- internals
    def _spawn(self, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, daemon=True, name=f"rfctl-sim-{fn.__name__}")
        t.start()
        self._threads.append(t)

    def _pieces(self, data: bytes) -> list[bytes]:
        """Split at delimiters, keeping them, so each frame is timed on its own."""
        out, start = [], 0
        d = self.delimiter[0]
        for i, b in enumerate(data):
            if b == d:
                out.append(data[start: i + 1])
                start = i + 1
        if start < len(data):
            out.append(data[start:])
        return out

    def _serve_stream(self, recv: Callable[[float], bytes | None],
                      send: Callable[[bytes], None]) -> None:
        """Serve one connection with UART timing.

        A frame's last byte arrives ``len × 10 / baud`` after the previous one finished
        (reception is paced from the moment the bytes reach the server). The firmware
        handles it at once (a real MCU takes microseconds, so Python's own processing
        time must not show up as board latency), and the reply is released when its
        last byte would have left the board: at the frame's arrival time plus the reply's
        line time, after any reply still on the wire (full duplex).
        """
        rx, tx = _Pacer(self.baud), _Pacer(self.baud)
        delay = getattr(getattr(self.firmware, "faults", None), "reply_delay_s", 0.0)
        due_tx: deque[tuple[float, bytes]] = deque()
        _precise_timers()
        while not self._stop.is_set():
            wait = due_tx[0][0] - time.perf_counter() if due_tx else math.inf
            if wait <= 0:
                try:
                    send(due_tx.popleft()[1])
                except OSError:
                    return
                continue
            # sleep in the poll until the next reply is due (no spinning: a spinning
            # server thread would take the interpreter from a host in the same process)
            data = recv(min(wait, 0.1))
            if data is None:
                return
            if not data:
                continue
            t = time.perf_counter()
            for piece in self._pieces(data):
                arrived = rx.finish_time(len(piece), t)
                with self._lock:
                    reply = self.firmware.receive(piece)
                if reply:
                    due_tx.append((tx.finish_time(len(reply), arrived + delay), reply))

    def _accept_loop(self) -> None:
        assert self._sock is not None
        busy = threading.Event()
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if busy.is_set():
                self._spawn(lambda c=conn: self._reject(c))
                continue
            busy.set()

            def client(c: socket.socket = conn) -> None:
                def recv(timeout: float) -> bytes | None:
                    r, _, _ = select.select([c], [], [], timeout)
                    if not r:
                        return b""
                    try:
                        d = c.recv(65536)
                    except OSError:
                        return None
                    return d if d else None

                try:
                    self._serve_stream(recv, c.sendall)
                finally:
                    c.close()
                    busy.clear()

            self._spawn(client)

    def _reject(self, conn: socket.socket) -> None:
        """Tell a second client the board is busy, then hang up cleanly: half-close and
        drain what it sent, so the kernel does not reset the connection and discard the
        busy frame before the client has read it."""
        bf = getattr(self.firmware, "busy_frame", None)
        try:
            if bf is not None:
                conn.sendall(bf())
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(0.5)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()

    def _pty_loop(self) -> None:
        fd = self._master_fd
        assert fd is not None

        def recv(timeout: float) -> bytes | None:
            r, _, _ = select.select([fd], [], [], timeout)
            if not r:
                return b""
            try:
                return os.read(fd, 65536)
            except OSError:
                return None

        def send(data: bytes) -> None:
            os.write(fd, data)

        self._serve_stream(recv, send)


def board_server(profile, *, faults: dict | None = None, baud: int | None = None,
                 nvm_path: str | None = None, lease_s: float = 2.0) -> SimServer:
    """Entry point (group ``rfctl.sims``, name ``board-server``): a :class:`SimServer`
    running the simulated rfctl firmware of ``profile``.

    Parameters
    ----------
    profile : rfctl.config.BoardProfile
    faults : dict, optional
        Keyword arguments of :class:`rfctl.sims.simboard.Faults`.
    baud : int, optional
        Simulated line rate, bit/s (None: unpaced).
    nvm_path : str, optional
        File for the board's non-volatile memory (active image, beam slots, boot
        counter), written atomically; None keeps it in this process only.
    lease_s : float
        Idle time after which another host's HELLO may take the board over, s.
    """
    from .simboard import Faults, SimBoardFirmware

    fw = SimBoardFirmware.from_profile(profile, faults=Faults(**faults) if faults else None,
                                       nvm_path=nvm_path, lease_s=lease_s)
    return SimServer(fw, baud=baud)
