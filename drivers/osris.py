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
pattern back. Resets are detected by the banner (``#READY!``), checked by the serial
number, and (if the banner was lost) caught by the read-back. The simulated firmware
lives in ``rfctl.sims.osris_firmware``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

from rfctl.config import BoardProfile, PhaseBank
from rfctl.errors import ConfigError, DeviceError, DeviceTimeoutError
from rfctl.hal.device import (
    Capabilities,
    DeviceInfo,
    LinkStats,
    StageError,
    layout_from_profile,
    operation_deadline,
)
from rfctl.hal.image import image_crc as crc32

from .no_beam_memory import NoBeamMemory
from .transport import Transport, closed_on_error, open_link

__all__ = ["OsrisBoard", "open_osris"]

log = logging.getLogger(__name__)
wire_log = logging.getLogger("rfctl.wire")
N_ELEMENTS = 256
PATTERN_BYTES = 32
_PATTERN_RE = re.compile(r"^#0X([0-9A-F]{64})$", re.IGNORECASE)


class OsrisBoard(NoBeamMemory):
    """An OpenSourceRIS board as a HAL device.

    Staging is host-side (the board has no staged buffer the host could check); the
    latch is the ``!0x…`` command, verified by reading the pattern back. The HAL reads
    the pattern before every plan (board truth, not the host's memory).

    Resets: the banner's ``#READY!`` seen anywhere in the reply stream means the board
    rebooted (its pattern is back to zeros): the host's copy is forgotten, the serial
    number is asked again (a different board is refused), and a set in progress is sent
    again. A reset whose banner was lost is caught by the read-back.

    Parameters
    ----------
    profile : BoardProfile
        Must hold exactly one ``phase`` bank of 256 one-bit elements.
    transport : Transport
    clock : callable, optional
        Monotonic clock, s (injectable for tests).
    """

    no_beams_reason = "OpenSourceRIS boards have no beam memory"

    max_chunk = PATTERN_BYTES

    def __init__(self, profile: BoardProfile, transport: Transport, *,
                 clock: Callable[[], float] = time.perf_counter) -> None:
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
        self.deadline_s = operation_deadline(profile.link)
        self.stats = LinkStats()
        self.capabilities = Capabilities(staged_buffer=False, atomic_latch=True,
                                         beam_slots=0, max_chunk=PATTERN_BYTES,
                                         sessions=False)
        self.verified_active: bytes | None = None
        self.staged_clean = False
        self.beams: dict[int, tuple[int, bytes]] = {}
        self._staged = bytearray(PATTERN_BYTES)
        self._rx = bytearray()
        self._info: DeviceInfo | None = None
        self._clock = clock
        self._skew = 0.0
        self._reset_seen = False
        self._identifying = False
        self.serial_no: str | None = None
        self.connect()

    def _now(self) -> float:
        return self._clock() + self._skew

    # ---------------------------------------------------------------- line I/O
    def _send(self, line: str) -> None:
        data = (line + "\n").encode("ascii")
        wire_log.debug("tx %s %s", self.name, line)
        self.transport.write(data)
        self.stats.bytes_tx += len(data)
        self.stats.frames_tx += 1

    def _on_banner(self) -> None:
        log.warning("%s: reset banner #READY! seen: the board rebooted (pattern back to "
                    "zeros); the host's copy is forgotten", self.name)
        self.stats.resets_seen += 1
        self.verified_active = None
        self.staged_clean = False
        self._reset_seen = True

    def _read_reply(self, until: float) -> str | None:
        """Next '#' line before ``until`` (banner text skipped, ``#READY!`` noted); None on
        silence."""
        while True:
            i = self._rx.find(b"\n")
            if i >= 0:
                line = bytes(self._rx[:i]).strip(b"\r").decode("ascii", "replace")
                del self._rx[: i + 1]
                wire_log.debug("rx %s %s", self.name, line)
                if line.upper() == "#READY!":
                    self._on_banner()
                    return line
                if line.startswith("#"):
                    return line
                continue  # banner text
            left = until - self._now()
            if left <= 0:
                return None
            chunk = self.transport.read(0 if self.transport.synchronous else min(left, 0.05))
            if not chunk and self.transport.synchronous:
                self._skew += self.timeout  # nothing will come: a silence of timeout_s
                return None
            self._rx += chunk
            self.stats.bytes_rx += len(chunk)

    def _ask(self, line: str, accept, *, deadline: float | None = None) -> str:
        """Send ``line`` until a reply ``accept`` takes, within the operation deadline.
        A reset banner in between makes the command go out again at once."""
        deadline = deadline if deadline is not None else self._now() + self.deadline_s
        attempt = 0
        while self._now() < deadline:
            if attempt:
                self.stats.retries += 1
            attempt += 1
            self._rx.clear()
            self._send(line)
            wait_until = min(deadline, self._now() + self.timeout)
            while True:
                reply = self._read_reply(wait_until)
                if reply is None:
                    self.stats.timeouts += 1
                    break
                if accept(reply):
                    return reply
                if reply.upper() == "#READY!":
                    # the command may have been lost in the reset: make sure the same
                    # board came back, then send it again
                    if not self._identifying:
                        self.connect()
                    break
        raise DeviceTimeoutError(
            f"{self.name}: no valid reply to {line[:12]!r} within {self.deadline_s:g} s "
            f"({attempt} attempt(s), timeout {self.timeout:g} s; OpenSourceRIS answers "
            "errors with silence)")

    # ---------------------------------------------------------------- identity
    def connect(self) -> DeviceInfo:
        """Ask the serial number (``?SerialNo``); after a reset, the same board must
        answer.

        Raises
        ------
        DeviceError
            A board with another serial number answers after a reset.
        DeviceTimeoutError
            No answer within the operation deadline.
        """
        self._identifying = True
        try:
            reply = self._ask("?SerialNo", lambda r: r.lower().startswith("#serno:"))
        except DeviceTimeoutError as exc:
            if self.serial_no is not None:  # the board answered before: not its kind
                raise
            raise DeviceTimeoutError(
                f"{exc}; no OpenSourceRIS board answered: the board there may be of "
                f"another kind or speak another protocol (profile {self.profile.name}'s "
                f"driver {self.profile.driver!r} speaks OpenSourceRIS's ?SerialNo / "
                "!Pattern lines; a board of the rfctl protocol needs a profile with driver "
                "'rfctl-serial'), or be off") from None
        except DeviceError as exc:
            if self.serial_no is not None or "disconnected" not in str(exc):
                raise
            raise DeviceError(
                f"{exc}: the link closed before the board answered; the board may be in "
                "use by another client (a serial-over-TCP bridge, such as rfctl "
                "sim-bench's, serves one client at a time)") from None
        finally:
            self._identifying = False
        serial = reply.split(":", 1)[1].strip()
        if self.serial_no is not None and serial != self.serial_no:
            raise DeviceError(
                f"{self.name}: serial number {serial} answers, this session opened "
                f"{self.serial_no}: another board")
        self.serial_no = serial
        self._reset_seen = False
        self._info = DeviceInfo(model=self.profile.model, banks=layout_from_profile(
            self.profile), firmware="OpenSourceRIS", serial=serial)
        log.info("%s: OpenSourceRIS serial %s", self.name, self.serial_no)
        return self._info

    def info(self) -> DeviceInfo:
        """Identity and layout; asks the serial number again after a reset.

        Raises
        ------
        DeviceError
            Another board answers after a reset.
        DeviceTimeoutError
            No answer within the operation deadline.
        """
        if self._info is None or self._reset_seen:
            return self.connect()
        return self._info

    # ---------------------------------------------------------------- pattern
    def read_active(self) -> bytes:
        """The pattern the board applies (``?Pattern``), never a cache."""
        reply = self._ask("?Pattern", lambda r: _PATTERN_RE.match(r) is not None)
        return bytes.fromhex(_PATTERN_RE.match(reply).group(1))  # type: ignore[union-attr]

    def active_crc(self) -> int:
        """CRC-32 of the pattern read from the board (``?Pattern``), never a cache.

        Raises
        ------
        DeviceTimeoutError
            No valid reply within the operation deadline.
        """
        return crc32(self.read_active())

    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None:
        """Build the pattern host-side on the base the HAL read from the board."""
        if sync or not self.staged_clean or self.verified_active is None:
            self._staged = bytearray(self.verified_active or bytes(PATTERN_BYTES))
        for _bank, off, data in writes:
            self._staged[off: off + len(data)] = data
        if crc32(bytes(self._staged)) != image_crc:
            raise StageError(f"{self.name}: staged pattern CRC differs from the image's "
                             "(the base pattern is not the board's)", base_mismatch=True)
        self.staged_clean = True
        return self.latch(image_crc) if latch else None

    def latch(self, image_crc: int) -> int:
        """Send the pattern and read it back until the board shows it (within the
        deadline, at most ``retries + 1`` sets); returns the CRC the board shows.

        Raises
        ------
        StageError
            ``latch_sent=True``: the board may show the new pattern, the old one, or
            zeros after a reset.
        """
        pattern = bytes(self._staged)
        deadline = self._now() + self.deadline_s
        shown = None
        try:
            for _ in range(self.retries + 1):
                self._ask("!0x" + pattern.hex().upper(), lambda r: r.upper() == "#OK",
                          deadline=deadline)
                shown = self.read_active()
                if shown == pattern:
                    return crc32(shown)
                log.warning("%s: the board shows another pattern after #OK%s; setting "
                            "it again", self.name, " (it reset)" if self._reset_seen else "")
                if self._now() >= deadline:
                    break
        except DeviceError as exc:
            raise StageError(str(exc), latch_sent=True, cause=exc) from exc
        return crc32(shown) if shown is not None else 0

    def reset(self) -> None:
        """``!Reset``: wait for the banner's ``#READY!`` (the pattern returns to zeros)."""
        self._ask("!Reset", lambda r: r.upper() == "#READY!")
        self.connect()

    def supply_voltage(self) -> float:
        """External supply voltage, V (``?Vext``)."""
        reply = self._ask("?Vext", lambda r: r.upper().endswith(" V"))
        return float(reply[1:].split()[0])

    def close(self) -> None:
        """Release the port (the pattern stays applied; never raises)."""
        self.transport.close()


def open_osris(profile: BoardProfile, *, url: str | None = None, firmware=None,
               exclusive: bool = True) -> OsrisBoard:
    """Entry point ``osris``: open the board a profile describes.

    ``firmware=`` (an in-process simulated firmware, supplied by
    :func:`rfctl.hal.discovery.open_device` for ``sim://`` links) bypasses the serial port;
    anything else goes through pyserial's ``serial_for_url``.
    """
    transport, _ = open_link(profile, url=url, firmware=firmware, exclusive=exclusive)
    with closed_on_error(transport):
        return OsrisBoard(profile, transport)
