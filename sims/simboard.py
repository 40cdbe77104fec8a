"""Simulated rfctl board firmware: the device side of PROTOCOL.md, with faults.

The firmware holds a staged image, an active image (mirrored in non-volatile memory,
so a reboot restores the last latched image and the staged image with it), beam slots
(RAM: cleared at reboot) and a boot id. It answers every well-formed request (ACK or
NAK, echoing the sequence number); replays the cached reply when a request is
retransmitted with the same sequence number; and NAKs undecodable frames with
``BAD_FRAME`` (sequence 0xFFFF) so that the host can retransmit at once.

Fault injection (all probabilities, seeded): byte drops and corruption in either
direction, BUSY NAKs, a latch that does not take (ACKed, active unchanged), a reset in
the middle of a transfer (reboot on receiving a write, no reply), a silent power cycle
(reboot after executing a request, reply lost), total silence, and a reply delay.

Its bank layout is generated from the same board profile the host uses.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rfctl.drivers.protocol import (
    BAD_FRAME_SEQ,
    PROTOCOL_VERSION,
    REPLY_FLAG,
    Cmd,
    FrameError,
    FrameSplitter,
    Nak,
    decode_frame,
    encode_frame,
    ident_payload,
    reply_payload,
)

from rfctl.config import BoardProfile
from rfctl.hal.device import BankLayout, layout_from_profile

__all__ = ["Faults", "SimBoardFirmware"]

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Fault probabilities of a simulated board (0 = never).

    Attributes
    ----------
    drop_rx, corrupt_rx : float
        Per byte host → board: dropped, or XOR-ed with a random non-zero value.
    drop_tx, corrupt_tx : float
        Per byte board → host.
    busy : float
        Per request: NAK BUSY without executing.
    latch_fails : float
        Per LATCH / BEAM_SELECT: ACKed but the active image is unchanged.
    reset_mid_transfer : float
        Per WRITE_STAGED: the board reboots instead of executing it (no reply).
    power_cycle : float
        Per request: executed, then a silent reboot before the reply leaves.
    silent : bool
        Never reply.
    reply_delay_s : float
        Extra latency before each reply (in the server; the in-process board ignores it).
    seed : int
        Seed of the fault generator.
    """

    drop_rx: float = 0.0
    corrupt_rx: float = 0.0
    drop_tx: float = 0.0
    corrupt_tx: float = 0.0
    busy: float = 0.0
    latch_fails: float = 0.0
    reset_mid_transfer: float = 0.0
    power_cycle: float = 0.0
    silent: bool = False
    reply_delay_s: float = 0.0
    seed: int = 0


@dataclass
class _Counters:
    frames: int = 0
    bad_frames: int = 0
    replays: int = 0
    reboots: int = 0
    latches: int = 0
    events: list[str] = field(default_factory=list)


class SimBoardFirmware:
    """The firmware of a simulated board.

    Parameters
    ----------
    banks : sequence of BankLayout
        Bank layout (use :meth:`from_profile`).
    model : str
        Model string reported by IDENT.
    slots : int
        Beam slots.
    rx_buffer : int
        Receive buffer size reported to the host (bounds its pipelining window).
    max_payload : int
        Largest WRITE_STAGED payload accepted.
    faults : Faults, optional
    """

    def __init__(self, banks: Sequence[BankLayout], *, model: str, firmware: str = "sim-1.0",
                 slots: int = 16, rx_buffer: int = 4096, max_payload: int = 1024,
                 faults: Faults | None = None) -> None:
        self.banks = tuple(banks)
        self.model = model
        self.firmware = firmware
        self.n_slots = slots
        self.rx_buffer = rx_buffer
        self.max_payload = max_payload
        self.faults = faults or Faults()
        self.rng = np.random.default_rng(self.faults.seed)
        self.offsets = np.cumsum([0] + [b.nbytes for b in self.banks]).tolist()
        self.size = self.offsets[-1]
        self.nvm = bytes(self.size)
        self.active = bytearray(self.size)
        self.staged = bytearray(self.size)
        self.slots: dict[int, bytes] = {}
        self.boot_id = 1
        self.counters = _Counters()
        self._splitter = FrameSplitter(limit=rx_buffer)
        self._cache: OrderedDict[int, tuple[int, bytes]] = OrderedDict()

    @classmethod
    def from_profile(cls, profile: BoardProfile, **kwargs) -> SimBoardFirmware:
        """A firmware whose layout is exactly the profile's (one declaration for both)."""
        return cls(layout_from_profile(profile), model=profile.model, **kwargs)

    # ---------------------------------------------------------------- helpers
    def _crc(self, data: bytes | bytearray) -> int:
        return zlib.crc32(bytes(data)) & 0xFFFFFFFF

    def reboot(self, why: str) -> None:
        """Reboot: staged and active restored from NVM, slots and caches cleared."""
        self.boot_id = (self.boot_id + 1) & 0xFFFF or 1
        self.active = bytearray(self.nvm)
        self.staged = bytearray(self.nvm)
        self.slots.clear()
        self._cache.clear()
        self._splitter.clear()
        self.counters.reboots += 1
        self.counters.events.append(f"reboot ({why})")
        log.debug("sim board rebooted (%s), boot id %d", why, self.boot_id)

    def _mangle(self, data: bytes, p_drop: float, p_corrupt: float) -> bytes:
        if not data or (p_drop <= 0 and p_corrupt <= 0):
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if p_corrupt > 0:
            hit = self.rng.random(arr.size) < p_corrupt
            if hit.any():
                arr[hit] ^= self.rng.integers(1, 256, hit.sum(), dtype=np.uint8)
        if p_drop > 0:
            arr = arr[self.rng.random(arr.size) >= p_drop]
        return arr.tobytes()

    def _chance(self, p: float) -> bool:
        return p > 0 and bool(self.rng.random() < p)

    def busy_frame(self) -> bytes:
        """The NAK BUSY a server sends to a second client before closing it."""
        return encode_frame(BAD_FRAME_SEQ, REPLY_FLAG, reply_payload(Nak.BUSY, self.boot_id))

    def bank_bytes(self, which: str = "active") -> dict[str, bytes]:
        """The bytes of every bank in the staged or active image (for tests)."""
        img = self.active if which == "active" else self.staged
        return {b.name: bytes(img[self.offsets[i]: self.offsets[i + 1]])
                for i, b in enumerate(self.banks)}

    # ---------------------------------------------------------------- receive
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the bytes the board sends back."""
        f = self.faults
        data = self._mangle(data, f.drop_rx, f.corrupt_rx)
        out = bytearray()
        for raw in self._splitter.feed(data):
            reply = self._handle_raw(raw)
            if reply is not None and not f.silent:
                out += self._mangle(reply, f.drop_tx, f.corrupt_tx)
        return bytes(out)

    def _handle_raw(self, raw: bytes) -> bytes | None:
        c = self.counters
        try:
            frame = decode_frame(raw)
        except FrameError as exc:
            c.bad_frames += 1
            c.events.append(f"bad frame: {exc}")
            return encode_frame(BAD_FRAME_SEQ, REPLY_FLAG,
                                reply_payload(Nak.BAD_FRAME, self.boot_id))
        c.frames += 1
        if frame.is_reply:
            return None
        if frame.version != PROTOCOL_VERSION:
            return encode_frame(frame.seq, frame.cmd | REPLY_FLAG,
                                reply_payload(Nak.BAD_VERSION, self.boot_id))
        cached = self._cache.get(frame.seq)
        if cached is not None and cached[0] == frame.cmd:
            c.replays += 1
            return cached[1]
        f = self.faults
        if self._chance(f.busy):
            return encode_frame(frame.seq, frame.cmd | REPLY_FLAG,
                                reply_payload(Nak.BUSY, self.boot_id))
        if frame.cmd == Cmd.WRITE_STAGED and self._chance(f.reset_mid_transfer):
            self.reboot("reset in the middle of a transfer")
            return None
        status, data, after = self._execute(frame.cmd, frame.payload)
        reply = encode_frame(frame.seq, frame.cmd | REPLY_FLAG,
                             reply_payload(status, self.boot_id, data))
        self._cache[frame.seq] = (frame.cmd, reply)
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        if after == "reset":
            self.reboot("RESET command")
        if self._chance(f.power_cycle):
            self.reboot("silent power cycle")
            return None
        return reply

    # ---------------------------------------------------------------- commands
    def _execute(self, cmd: int, p: bytes) -> tuple[int, bytes, str | None]:
        try:
            if cmd == Cmd.IDENT:
                banks = [{"name": b.name, "kind": b.kind, "count": b.count, "bits": b.bits}
                         for b in self.banks]
                return Nak.ACK, ident_payload(self.model, self.firmware, banks,
                                              slots=self.n_slots, rx_buffer=self.rx_buffer,
                                              max_payload=self.max_payload), None
            if cmd == Cmd.WRITE_STAGED:
                bank, off = struct.unpack("<BH", p[:3])
                data = p[3:]
                if bank >= len(self.banks) or len(data) > self.max_payload:
                    return Nak.BAD_ARGUMENT, b"", None
                start = self.offsets[bank] + off
                if off + len(data) > self.banks[bank].nbytes:
                    return Nak.BAD_ARGUMENT, b"", None
                self.staged[start: start + len(data)] = data
                return Nak.ACK, b"", None
            if cmd == Cmd.WRITE_LATCH:  # the last write and the latch in one frame
                bank, off, expected = struct.unpack("<BHI", p[:7])
                status, _, _ = self._execute(Cmd.WRITE_STAGED, p[:3] + p[7:])
                if status != Nak.ACK:
                    return status, b"", None
                return self._execute(Cmd.LATCH, struct.pack("<I", expected))
            if cmd == Cmd.STAGED_CRC:
                return Nak.ACK, struct.pack("<I", self._crc(self.staged)), None
            if cmd == Cmd.ACTIVE_CRC:
                return Nak.ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == Cmd.SYNC_STAGED:
                self.staged = bytearray(self.active)
                return Nak.ACK, b"", None
            if cmd == Cmd.LATCH:
                (expected,) = struct.unpack("<I", p[:4])
                staged_crc = self._crc(self.staged)
                if staged_crc != expected:
                    return Nak.CRC_MISMATCH, struct.pack("<I", staged_crc), None
                self._latch(bytes(self.staged))
                return Nak.ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == Cmd.READ_ACTIVE:
                bank, off, length = struct.unpack("<BHH", p[:5])
                if bank >= len(self.banks) or off + length > self.banks[bank].nbytes:
                    return Nak.BAD_ARGUMENT, b"", None
                start = self.offsets[bank] + off
                return Nak.ACK, bytes(self.active[start: start + length]), None
            if cmd == Cmd.BEAM_STORE:
                slot = p[0]
                if slot >= self.n_slots:
                    return Nak.BAD_ARGUMENT, b"", None
                self.slots[slot] = bytes(self.staged)
                return Nak.ACK, struct.pack("<I", self._crc(self.staged)), None
            if cmd == Cmd.BEAM_SELECT:
                slot = p[0]
                (expected,) = struct.unpack("<I", p[1:5])
                if slot >= self.n_slots:
                    return Nak.BAD_ARGUMENT, b"", None
                if slot not in self.slots:
                    return Nak.EMPTY_SLOT, b"", None
                img = self.slots[slot]
                if self._crc(img) != expected:
                    return Nak.CRC_MISMATCH, struct.pack("<I", self._crc(img)), None
                self.staged = bytearray(img)
                self._latch(img)
                return Nak.ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == Cmd.RESET:
                return Nak.ACK, b"", "reset"
            if cmd == Cmd.STATUS:
                clean = 1 if self.staged == self.active else 0
                return Nak.ACK, struct.pack("<BII", clean, self._crc(self.active),
                                            self._crc(self.staged)), None
            return Nak.UNKNOWN_COMMAND, b"", None
        except (struct.error, IndexError):
            return Nak.BAD_ARGUMENT, b"", None

    def _latch(self, img: bytes) -> None:
        self.counters.latches += 1
        if self._chance(self.faults.latch_fails):
            self.counters.events.append("latch did not take")
            return
        # one step: every output changes together, and NVM keeps it across reboots
        self.active = bytearray(img)
        self.nvm = bytes(img)


def sleep_until(t: float) -> None:
    """Sleep until ``time.perf_counter() >= t``: a coarse sleep, then a spin that yields
    the interpreter lock (so the server's other thread is not held up)."""
    while True:
        rem = t - time.perf_counter()
        if rem <= 0:
            return
        time.sleep(rem - 0.0015 if rem > 0.002 else 0)


def firmware_for(profile: BoardProfile, **kwargs) -> SimBoardFirmware:
    """Entry point (group ``rfctl.sims``, name ``rfctl-serial``): the simulated firmware of
    ``profile``; ``kwargs`` are :class:`SimBoardFirmware` options (e.g. ``faults=``)."""
    return SimBoardFirmware.from_profile(profile, **kwargs)
