"""Simulated OpenSourceRIS firmware: the device side of the ASCII line protocol.

Written from the protocol facts in the field notes (not from the driver): ``!0x<64 hex>``
sets the 256-bit pattern and answers ``#OK``; ``?Pattern`` answers ``#0X<64 hex>``;
``?SerialNo``, ``?Vext``; ``!Reset`` reboots with a banner ending in ``#READY!``. Invalid
commands and errors get no reply at all. Faults: ignore sets, total silence.
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

    def __init__(self, serial_no: int = 12, *, ignore_sets: bool = False,
                 silent: bool = False) -> None:
        self.serial_no = serial_no
        self.pattern = bytes(PATTERN_BYTES)
        self.ignore_sets = ignore_sets
        self.silent = silent
        self._buf = bytearray()
        self.resets = 0

    def receive(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                if len(self._buf) > 128:  # receive buffer overflow: dropped, no reply
                    self._buf.clear()
                break
            line = bytes(self._buf[:i]).strip(b"\r")
            del self._buf[: i + 1]
            if len(line) > 127 or self.silent:
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
            return (b"OpenSourceRIS firmware (simulated)\nBoot...\n"
                    b"Shift registers: 256\n#READY!\n")
        return b""  # invalid: no reply at all


def firmware_for(profile: BoardProfile, **kwargs) -> OsrisFirmwareSim:
    """Entry point (group ``rfctl.sims``, name ``osris``): firmware for ``profile``."""
    return OsrisFirmwareSim(**kwargs)
