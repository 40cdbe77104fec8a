"""Byte transports a driver talks through.

- :class:`SerialTransport` — pyserial's ``serial_for_url``: real ports, ``socket://``,
  ``loop://``, ``spy://``, pseudo-terminals; exclusive access where the OS supports it.
- :class:`InProcessTransport` — a simulated firmware called directly (fast tests, the
  ``sim://`` URL). Its replies are available as soon as the request is written, so an
  empty read means that nothing will come.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from rfctl.errors import BusyError, ConfigError, DeviceError

__all__ = ["InProcessTransport", "SerialTransport", "Transport", "closed_on_error",
           "open_link"]

log = logging.getLogger(__name__)


class Transport(Protocol):
    """Bytes in, bytes out."""

    synchronous: bool
    """True when every reply is available right after the request was written."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it, in order).

        Raises
        ------
        DeviceError
            The link is closed or the write failed.
        """
        ...

    def read(self, timeout: float) -> bytes:
        """Bytes received so far, waiting at most ``timeout`` s for the first one.

        Parameters
        ----------
        timeout : float
            Longest wait for the first byte, s (a synchronous transport ignores it).

        Returns
        -------
        bytes
            Possibly empty: nothing arrived in time.

        Raises
        ------
        DeviceError
            The read failed.
        """
        ...

    def close(self) -> None:
        """Release the link (idempotent; never raises)."""
        ...


class InProcessTransport:
    """Talk to a firmware object in this process.

    Parameters
    ----------
    firmware : object
        Has ``receive(data: bytes) -> bytes``: the bytes the board sends back.
    """

    synchronous = True

    def __init__(self, firmware) -> None:
        self.firmware = firmware
        self._rx = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the firmware; its reply is queued for :meth:`read`.

        Raises
        ------
        DeviceError
            The transport is closed.
        """
        if self.closed:
            raise DeviceError("transport is closed")
        self._rx += self.firmware.receive(data)

    def read(self, timeout: float) -> bytes:
        """Everything the firmware replied so far (``timeout`` is ignored: an empty
        result means nothing will come)."""
        out = bytes(self._rx)
        self._rx.clear()
        return out

    def close(self) -> None:
        """Refuse further writes (the firmware object itself is left alone)."""
        self.closed = True


class SerialTransport:
    """A pyserial port opened with ``serial.serial_for_url``.

    Parameters
    ----------
    url : str
        Device path or pyserial URL.
    baud : int
        Line rate (ignored by socket:// and loop://).
    exclusive : bool
        Refuse to share the port (POSIX lock); a second opener gets :class:`BusyError`.

    Raises
    ------
    BusyError
        The port is locked by another process.
    DeviceError
        The port cannot be opened.
    """

    synchronous = False

    def __init__(self, url: str, baud: int = 921_600, *, exclusive: bool = True) -> None:
        import serial

        self.url = url
        try:
            ser = serial.serial_for_url(url, baudrate=baud, timeout=0, write_timeout=5,
                                        do_not_open=True)
            if exclusive and hasattr(ser, "exclusive") and not url.startswith(
                    ("socket://", "loop://", "rfc2217://", "spy://socket")):
                ser.exclusive = True
            ser.open()
        except serial.SerialException as exc:
            msg = str(exc)
            if "exclusive" in msg.lower() or "lock" in msg.lower() or "busy" in msg.lower():
                raise BusyError(f"{url}: port is in use by another program ({msg})") from None
            raise DeviceError(f"{url}: cannot open: {msg}") from None
        except (ValueError, OSError) as exc:
            raise DeviceError(f"{url}: cannot open: {exc}") from None
        self.ser = ser
        sock = getattr(ser, "_socket", None)  # socket:// — send small frames at once
        if sock is not None:
            try:
                import socket as _socket

                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._socket_like = url.startswith(("socket://", "rfc2217://")) or "socket://" in url
        # a plain socket:// carries the bytes unchanged: read and write it directly (one
        # poll and one recv per read instead of pyserial's two of each)
        self._sock = sock if url.startswith("socket://") else None

    def write(self, data: bytes) -> None:
        """Write ``data`` and flush it to the port.

        Raises
        ------
        DeviceError
            pyserial or the OS reports a failure.
        """
        import serial

        try:
            if self._sock is not None:
                self._sock.sendall(data)
                return
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"{self.url}: write failed: {exc}") from None

    def read(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` s for one byte, then return it with everything else
        already received.

        Parameters
        ----------
        timeout : float
            Longest wait for the first byte, s.

        Returns
        -------
        bytes
            Empty when nothing arrived in time.

        Raises
        ------
        DeviceError
            pyserial or the OS reports a failure.
        """
        import serial

        try:
            if self._sock is not None:
                ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
                if not ready:
                    return b""
                data = self._sock.recv(65536)
                if not data:
                    raise DeviceError(f"{self.url}: read failed: socket disconnected")
                return data
            if self._socket_like:
                # pyserial's socket:// reports in_waiting as 0/1: block for one byte, then
                # take everything already there in one non-blocking read
                self.ser.timeout = timeout
                first = self.ser.read(1)
                if not first:
                    return b""
                self.ser.timeout = 0
                return first + self.ser.read(65536)
            waiting = self.ser.in_waiting
            if waiting:
                return self.ser.read(waiting)
            self.ser.timeout = timeout
            first = self.ser.read(1)
            if not first:
                return b""
            more = self.ser.in_waiting
            return first + (self.ser.read(more) if more else b"")
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"{self.url}: read failed: {exc}") from None

    def close(self) -> None:
        """Close the port. For socket:// the socket is closed here: pyserial's own close
        sleeps 0.3 s "for quick reconnects", which would dominate a short session."""
        try:
            sock = getattr(self.ser, "_socket", None)
            if sock is not None:
                import socket as _socket

                try:
                    sock.shutdown(_socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                self.ser._socket = None
                self.ser.is_open = False
            self.ser.close()
        except Exception:  # closing must not raise
            log.debug("error while closing %s", self.url, exc_info=True)


def open_link(profile: Any, *, url: str | None = None, firmware: Any = None,
              exclusive: bool = True) -> tuple[Transport, Callable[[], Transport] | None]:
    """The byte link a board factory talks through.

    Parameters
    ----------
    profile : BoardProfile
        Its ``link`` gives the default URL and the line rate.
    url : str, optional
        Port or pyserial URL (default ``profile.link.url``).
    firmware : object, optional
        An in-process simulated firmware (``receive(bytes) -> bytes``, supplied by
        :func:`rfctl.hal.discovery.open_device` for ``sim://`` links); it bypasses the
        serial port.
    exclusive : bool
        Refuse to share the port (see :class:`SerialTransport`).

    Returns
    -------
    transport : Transport
    reopen : callable or None
        Opens the same port again after a link loss (None for an in-process firmware).

    Raises
    ------
    ConfigError
        A ``sim://`` URL without a firmware.
    BusyError, DeviceError
        The port is locked or cannot be opened.
    """
    url = url or profile.link.url
    if firmware is not None:
        return InProcessTransport(firmware), None
    if url.startswith("sim://"):
        raise ConfigError(f"{profile.name}: link.url: {url} needs a simulated firmware "
                          "(open it with rfctl.hal.discovery.open_device)", field="link.url",
                          reason="no simulator given")

    def reopen() -> Transport:
        return SerialTransport(url, profile.link.baud, exclusive=exclusive)

    return reopen(), reopen


@contextmanager
def closed_on_error(transport: Transport) -> Iterator[Transport]:
    """Close ``transport`` if the block raises (a driver that fails to open must not
    keep its port), then let the error through."""
    try:
        yield transport
    except BaseException:
        transport.close()
        raise


def monotonic() -> float:
    """A monotonic clock, s (``time.perf_counter``; drivers take it injectable)."""
    return time.perf_counter()
