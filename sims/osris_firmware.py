"""Simulated OpenSourceRIS firmware: the device side of the ASCII line protocol.

Written from the protocol facts in the field notes (not from the driver): ``!0x<64 hex>``
sets the 256-bit pattern and answers ``#OK``; ``?Pattern`` answers ``#0X<64 hex>``;
``?SerialNo``, ``?Vext``; ``!Reset`` reboots with a banner ending in ``#READY!``. Invalid
commands and errors get no reply at all. A reboot (command, watchdog, brown-out, reset
button) clears the pattern to all zeros and sends the banner.

Faults: ignore sets, total silence, a spontaneous reset before the n-th command (that
command is lost; the banner goes out with the next bytes the board sends, i.e. in the
middle of the reply stream), a reset right after every set (a brown-out as the outputs
switch), and a lost banner (the reset happens, the host hears nothing of it).
"""

from __future__ import annotations

from rfctl.config import BoardProfile

__all__ = ["PATTERN_BYTES", "OsrisFirmwareSim", "firmware_for"]

PATTERN_BYTES = 32
"""256 one-bit elements."""


class OsrisFirmwareSim:
    """Simulated OpenSourceRIS firmware (line protocol, no replies to errors).

    Parameters
    ----------
    serial_no : int
    ignore_sets : bool
        Fault: answer ``#OK`` to a set but keep the old pattern (caught by read-back).
    silent : bool
        Fault: never answer.
    """

    delimiter = b"\n"

    BANNER = (b"OpenSourceRIS firmware (simulated)\nBoot...\nShift registers: 256\n"
              b"#READY!\n")

    def __init__(self, serial_no: int = 12, *, ignore_sets: bool = False,
                 silent: bool = False, reset_before: set[int] | None = None,
                 banner_lost: bool = False, reset_after_set: bool = False) -> None:
        self.serial_no = serial_no
        self.pattern = bytes(PATTERN_BYTES)
        self.ignore_sets = ignore_sets
        self.silent = silent
        self.reset_before = set(reset_before or ())
        self.banner_lost = banner_lost
        self.reset_after_set = reset_after_set
        self._buf = bytearray()
        self._pending = bytearray()  # banner of a spontaneous reset, not yet sent
        self.commands = 0
        self.lines_heard = 0  # every line received, answered or not
        self.resets = 0

    def power_cycle(self) -> None:
        """A spontaneous reset (watchdog, brown-out, button): pattern to zeros, banner
        queued (unless ``banner_lost``)."""
        self.resets += 1
        self.pattern = bytes(PATTERN_BYTES)
        self._buf.clear()
        if not self.banner_lost:
            self._pending += self.BANNER

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the bytes the board sends back (replies,
        and a queued reset banner). Invalid commands get no reply."""
        self._buf += data
        out = bytearray(self._pending)
        self._pending.clear()
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                if len(self._buf) > 128:  # receive buffer overflow: dropped, no reply
                    self._buf.clear()
                break
            line = bytes(self._buf[:i]).strip(b"\r")
            del self._buf[: i + 1]
            self.lines_heard += 1
            if len(line) > 127 or self.silent:
                continue
            self.commands += 1
            if self.commands in self.reset_before:
                self.power_cycle()  # the command is lost in the reset
                out += self._pending
                self._pending.clear()
                continue
            out += self._line(line.decode("ascii", "replace"))
        return bytes(out)

    def _line(self, line: str) -> bytes:
        low = line.lower()
        if low.startswith("!0x") and len(line) == 67:
            try:
                pattern = bytes.fromhex(line[3:])
            except ValueError:
                return b""
            if not self.ignore_sets:
                self.pattern = pattern
            if self.reset_after_set:  # brown-out as the outputs switch
                self.power_cycle()
            return b"#OK\n"
        if low == "?pattern":
            return b"#0X" + self.pattern.hex().upper().encode() + b"\n"
        if low == "?vext":
            return b"#09.14 V\n"
        if low == "?serialno":
            return f"#SerNo:  {self.serial_no}\n".encode()
        if low == "!reset":
            self.resets += 1
            self.pattern = bytes(PATTERN_BYTES)
            return b"" if self.banner_lost else self.BANNER
        return b""  # invalid: no reply at all


def firmware_for(profile: BoardProfile, **kwargs) -> OsrisFirmwareSim:
    """Entry point (group ``rfctl.sims``, name ``osris``): firmware for ``profile``."""
    return OsrisFirmwareSim(**kwargs)
