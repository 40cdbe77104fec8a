"""OpenSourceRIS boards (16 × 16 one-bit elements; ASCII protocol over a USB COM port).

Protocol facts (see ../shared/reference/field_notes.md): a command starts with ``!``
(set) or ``?`` (query) and ends with ``\\n``; replies start with ``#``; commands are
case-insensitive. ``!0x<64 hex>`` sets the 256-bit pattern (MSB = element 1, top left,
row by row) and answers ``#OK``; ``?Pattern`` answers ``#0X<64 hex>``, the pattern
actually applied; ``!Reset`` reboots with a banner ending in ``#READY!``. An invalid
command or any error gets **no reply at all**, so silence is a failure, bounded by the
link timeout. The firmware shifts all bits in and pulses one latch line, so a set is
atomic on the board.

:class:`OsrisBoard` implements the HAL :class:`~rfctl.hal.device.Device`: staging is
host-side, the latch is the ``!0x…`` command, and every set is verified by reading the
pattern back. The simulated firmware lives in ``rfctl.sims.osris_firmware``.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections.abc import Sequence

from rfctl.config import BoardProfile, PhaseBank
from rfctl.errors import ConfigError, DeviceError, DeviceTimeoutError
from rfctl.hal.device import DeviceInfo, LinkStats, StageError, layout_from_profile

from .transport import InProcessTransport, SerialTransport, Transport

__all__ = ["OsrisBoard", "open_osris"]

log = logging.getLogger(__name__)
wire_log = logging.getLogger("rfctl.wire")
N_ELEMENTS = 256
PATTERN_BYTES = 32
_PATTERN_RE = re.compile(r"^#0X([0-9A-F]{64})$", re.IGNORECASE)


def _crc32(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


class OsrisBoard:
    """An OpenSourceRIS board as a HAL device.

    Parameters
    ----------
    profile : BoardProfile
        Must hold exactly one ``phase`` bank of 256 one-bit elements.
    transport : Transport
    """

    max_chunk = PATTERN_BYTES

    def __init__(self, profile: BoardProfile, transport: Transport) -> None:
        banks = profile.banks
        if len(banks) != 1 or not isinstance(banks[0], PhaseBank) or \
                banks[0].count != N_ELEMENTS or banks[0].bits != 1:
            raise ConfigError(f"{profile.name}: an OpenSourceRIS profile needs exactly one "
                              "phase bank with count = 256 and bits = 1", field="banks",
                              reason="not an OpenSourceRIS layout")
        self.profile = profile
        self.transport = transport
        self.name = profile.name
        self.timeout = profile.link.timeout_s
        self.retries = profile.link.retries
        self.stats = LinkStats()
        self.verified_active: bytes | None = None
        self.staged_clean = True
        self.beams: dict[int, tuple[int, bytes]] = {}
        self._staged = bytearray(PATTERN_BYTES)
        self._rx = bytearray()
        self._info: DeviceInfo | None = None
        self.serial_no: str | None = None
        self.connect()

    # ---------------------------------------------------------------- line I/O
    def _send(self, line: str) -> None:
        data = (line + "\n").encode("ascii")
        wire_log.debug("tx %s %s", self.name, line)
        self.transport.write(data)
        self.stats.bytes_tx += len(data)
        self.stats.frames_tx += 1

    def _read_reply(self) -> str | None:
        """Next '#' line within the timeout (banner lines are skipped); None on silence."""
        deadline = time.perf_counter() + self.timeout
        while True:
            i = self._rx.find(b"\n")
            if i >= 0:
                line = bytes(self._rx[:i]).strip(b"\r").decode("ascii", "replace")
                del self._rx[: i + 1]
                wire_log.debug("rx %s %s", self.name, line)
                if line.startswith("#"):
                    return line
                continue  # banner text
            left = deadline - time.perf_counter()
            if left <= 0 and not self.transport.synchronous:
                return None
            chunk = self.transport.read(0 if self.transport.synchronous else min(left, 0.05))
            if not chunk and self.transport.synchronous:
                return None
            self._rx += chunk
            self.stats.bytes_rx += len(chunk)

    def _ask(self, line: str, accept) -> str:
        """Send ``line`` until a reply ``accept`` takes (bounded retries)."""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            self._rx.clear()
            self._send(line)
            while True:
                reply = self._read_reply()
                if reply is None:
                    self.stats.timeouts += 1
                    break
                if accept(reply):
                    return reply
                if reply.upper() == "#READY!":  # an unexpected reset of the board
                    log.warning("%s: board reset banner seen; pattern cache forgotten", self.name)
                    self.verified_active = None
        raise DeviceTimeoutError(
            f"{self.name}: no valid reply to {line[:12]!r} after {self.retries + 1} "
            f"attempt(s) of {self.timeout:g} s (OpenSourceRIS answers errors with silence)")

    # ---------------------------------------------------------------- identity
    def connect(self) -> DeviceInfo:
        reply = self._ask("?SerialNo", lambda r: r.lower().startswith("#serno:"))
        self.serial_no = reply.split(":", 1)[1].strip()
        self._info = DeviceInfo(model=self.profile.model, firmware="OpenSourceRIS",
                                banks=layout_from_profile(self.profile))
        log.info("%s: OpenSourceRIS serial %s", self.name, self.serial_no)
        return self._info

    def info(self) -> DeviceInfo:
        return self._info or self.connect()

    # ---------------------------------------------------------------- pattern
    def read_active(self) -> bytes:
        reply = self._ask("?Pattern", lambda r: _PATTERN_RE.match(r) is not None)
        return bytes.fromhex(_PATTERN_RE.match(reply).group(1))  # type: ignore[union-attr]

    def active_crc(self) -> int:
        return _crc32(self.read_active())

    def _set(self, pattern: bytes) -> int:
        self._ask("!0x" + pattern.hex().upper(), lambda r: r.upper() == "#OK")
        return _crc32(self.read_active())  # verify every set by read-back

    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None:
        if sync or not self.staged_clean:
            self._staged = bytearray(self.verified_active or bytes(PATTERN_BYTES))
        for _bank, off, data in writes:
            self._staged[off: off + len(data)] = data
        if _crc32(bytes(self._staged)) != image_crc:
            raise StageError(f"{self.name}: staged pattern CRC differs from the image's "
                             "(the base pattern is unknown: read it first)", latch_sent=False)
        return self.latch(image_crc) if latch else None

    def latch(self, image_crc: int) -> int:
        try:
            return self._set(bytes(self._staged))
        except DeviceError as exc:
            raise StageError(str(exc), latch_sent=True, cause=exc) from exc

    def store_beam(self, slot: int) -> int:
        raise DeviceError(f"{self.name}: OpenSourceRIS boards have no beam memory")

    def select_beam(self, slot: int, expected_crc: int) -> int:
        raise DeviceError(f"{self.name}: OpenSourceRIS boards have no beam memory")

    def reset(self) -> None:
        """``!Reset``: wait for the banner's ``#READY!`` (the pattern returns to zeros)."""
        self._ask("!Reset", lambda r: r.upper() == "#READY!")
        self.verified_active = None
        self.staged_clean = False

    def supply_voltage(self) -> float:
        """External supply voltage, V (``?Vext``)."""
        reply = self._ask("?Vext", lambda r: r.upper().endswith(" V"))
        return float(reply[1:].split()[0])

    def close(self) -> None:
        self.transport.close()


def open_osris(profile: BoardProfile, *, url: str | None = None, firmware=None,
               exclusive: bool = True) -> OsrisBoard:
    """Entry point ``osris``: open the board a profile describes.

    ``firmware=`` (an in-process simulated firmware, supplied by
    :func:`rfctl.hal.discovery.open_device` for ``sim://`` links) bypasses the serial port;
    anything else goes through pyserial's ``serial_for_url``.
    """
    url = url or profile.link.url
    if firmware is not None:
        transport: Transport = InProcessTransport(firmware)
    elif url.startswith("sim://"):
        raise ConfigError(f"{profile.name}: link.url: {url} needs a simulated firmware "
                          "(open it with rfctl.hal.discovery.open_device)", field="link.url",
                          reason="no simulator given")
    else:
        transport = SerialTransport(url, profile.link.baud, exclusive=exclusive)
    try:
        return OsrisBoard(profile, transport)
    except Exception:
        transport.close()
        raise
