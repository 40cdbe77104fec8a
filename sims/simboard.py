"""Simulated rfctl board firmware: the device side of PROTOCOL.md (version 2), with faults.

Written from drivers/PROTOCOL.md, not from the host driver: the frame codec below (COBS,
CRC-16/CCITT-FALSE, header layout) is this module's own, so that a mistake in the
driver's codec is not mirrored here. Both are checked against byte-exact transcripts.

The firmware holds a staged image, an active image and beam slots. The active image and
the beam slots live in non-volatile memory (NVM): in process memory by default, or in a
file (``nvm_path``) written atomically (temporary file, fsync, rename) at every latch,
beam store and boot, so a board process that is killed and restarted comes back with its
last latched image. A boot restores active and staged from NVM, draws a new random boot
id, increments the boot counter and ends every session.

Sessions: ``HELLO`` with a host-chosen 32-bit session id makes that session current (a
new id clears the reply cache; the current id resumes it). Every other request must
carry the current session id, or it is refused with ``NO_SESSION`` and not executed.
Replies are cached per session by sequence number, so a retransmission within a session
is answered from the cache and never executed twice, and no other session is ever
answered from that cache. A second host's ``HELLO`` is refused with ``BUSY`` while the
current session is live (traffic within ``lease_s``, no ``BYE``).

Fault injection (all probabilities, seeded): byte drops and corruption in either
direction, BUSY NAKs, a latch that does not take (ACKed, active unchanged), a reset in
the middle of a transfer (reboot on receiving a write, no reply), a silent power cycle
(reboot after executing a request, reply lost), total silence, and a reply delay.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import struct
import tempfile
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfctl.config import BoardProfile
from rfctl.errors import ConfigError
from rfctl.hal.device import layout_from_profile
from rfctl.hal.image import BankLayout

__all__ = ["Faults", "SimBoardFirmware", "firmware_for"]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the wire (PROTOCOL.md)
VERSION = 2
SEQ_UNTRUSTED = 0xFFFF
REPLY = 0x80
# request codes
IDENT, WRITE_STAGED, STAGED_CRC, LATCH, READ_ACTIVE, ACTIVE_CRC = 1, 2, 3, 4, 5, 6
BEAM_STORE, BEAM_SELECT, RESET, STATUS, SYNC_STAGED, WRITE_LATCH = 7, 8, 9, 10, 11, 12
HELLO, BYE = 13, 14
# status codes
ACK, BAD_FRAME, UNKNOWN_COMMAND, BAD_ARGUMENT, CRC_MISMATCH = 0, 1, 2, 3, 4
BUSY, EMPTY_SLOT, BAD_VERSION, NO_SESSION = 5, 6, 7, 8
IDENT_CHUNK = 48


class _BadFrameError(Exception):
    """Not a frame."""


def _crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, bit by bit: poly 0x1021, init 0xFFFF, MSB first, no xor-out."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _crc16_fast(data: bytes) -> int:
    # the same CRC from the standard library (tests check both against 0x29B1)
    return binascii.crc_hqx(data, 0xFFFF)


def _stuff(data: bytes) -> bytes:
    """COBS: each block is a code byte n (1..255) followed by n-1 non-zero bytes; a code
    below 255 stands for a zero after the block, except at the very end. Data that ends
    with a full 254-byte block gets no empty block after it (PROTOCOL.md, Framing)."""
    out = bytearray([0])
    code_at, n = 0, 1
    full = False  # the block just closed was a full one (no implied zero)
    for b in data:
        full = False
        if b == 0:
            out[code_at] = n
            code_at, n = len(out), 1
            out.append(0)
            continue
        out.append(b)
        n += 1
        if n == 255:
            out[code_at] = n
            code_at, n = len(out), 1
            out.append(0)
            full = True
    if full:
        out.pop()
    else:
        out[code_at] = n
    return bytes(out)


def _unstuff(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + n > len(data) or 0 in data[i + 1: i + n]:
            raise _BadFrameError("bad COBS")
        out += data[i + 1: i + n]
        i += n
        if n < 255 and i < len(data):
            out.append(0)
    return bytes(out)


def _frame(session: int, seq: int, cmd: int, payload: bytes) -> bytes:
    body = struct.pack("<BIHBH", VERSION, session, seq, cmd, len(payload)) + payload
    return _stuff(body + struct.pack(">H", _crc16_fast(body))) + b"\x00"


def _frame_v1(seq: int, cmd: int, payload: bytes) -> bytes:
    body = struct.pack("<BHBH", 1, seq, cmd, len(payload)) + payload
    return _stuff(body + struct.pack(">H", _crc16_fast(body))) + b"\x00"


def _parse(raw: bytes) -> tuple[int, int, int, int, bytes]:
    """(version, session, seq, cmd, payload) of a frame without its delimiter."""
    body = _unstuff(raw)
    if len(body) < 8 or _crc16_fast(body[:-2]) != struct.unpack(">H", body[-2:])[0]:
        raise _BadFrameError("short frame or CRC")
    if body[0] == 1:
        _, seq, cmd, n = struct.unpack("<BHBH", body[:6])
        payload, session = body[6:-2], 0
    else:
        if len(body) < 12:
            raise _BadFrameError("short frame")
        _, session, seq, cmd, n = struct.unpack("<BIHBH", body[:10])
        payload = body[10:-2]
    if len(payload) != n:
        raise _BadFrameError("length")
    return body[0], session, seq, cmd, payload


@dataclass
class Faults:
    """Fault probabilities of a simulated board (0 = never).

    Attributes
    ----------
    drop_rx, corrupt_rx : float
        Per byte host → board: dropped, or XOR-ed with a random non-zero value.
    drop_tx, corrupt_tx : float
        Per byte board → host.
    dup_rx, dup_tx : float
        Per byte, host → board and board → host: the byte arrives twice.
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
        Extra latency before each reply, s (in the server; the in-process board ignores
        it).
    seed : int
        Seed of the fault generator.
    """

    drop_rx: float = 0.0
    corrupt_rx: float = 0.0
    drop_tx: float = 0.0
    corrupt_tx: float = 0.0
    dup_rx: float = 0.0
    dup_tx: float = 0.0
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
    sessions: int = 0
    refused_sessions: int = 0
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
        Receive buffer size reported to the host (bounds its pipelining window), bytes.
    max_payload : int
        Largest WRITE_STAGED payload accepted, bytes.
    faults : Faults, optional
    nvm_path : str or Path, optional
        File holding the non-volatile memory (active image, beam slots, boot counter);
        created if missing. Without it the memory lasts as long as this object.
    lease_s : float
        A session with no traffic for this long may be taken over by another host.
    clock : callable, optional
        Monotonic clock, s (injectable for tests).
    """

    delimiter = b"\x00"

    def __init__(self, banks: Sequence[BankLayout], *, model: str, firmware: str = "sim-2.0",
                 slots: int = 16, rx_buffer: int = 4096, max_payload: int = 1024,
                 faults: Faults | None = None, nvm_path: str | Path | None = None,
                 lease_s: float = 2.0, serial: str = "SIM-0001",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.banks = tuple(banks)
        self.model = model
        self.firmware = firmware
        self.serial = serial
        self.n_slots = slots
        self.rx_buffer = rx_buffer
        self.max_payload = max_payload
        self.faults = faults or Faults()
        self.rng = np.random.default_rng(self.faults.seed)
        self.offsets = np.cumsum([0] + [b.nbytes for b in self.banks]).tolist()
        self.size = self.offsets[-1]
        self.nvm_path = Path(nvm_path) if nvm_path else None
        self.lease_s = lease_s
        self.clock = clock
        self.nvm_active = bytes(self.size)
        self.nvm_slots: dict[int, bytes] = {}
        self.boot_count = 0
        if self.nvm_path is not None and self.nvm_path.exists():
            self._load_nvm()
        self.counters = _Counters()
        self._buf = bytearray()
        self._cache: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self.session: int | None = None
        self._last_seen = 0.0
        self._boot("power on")

    @classmethod
    def from_profile(cls, profile: BoardProfile, **kwargs) -> SimBoardFirmware:
        """A firmware whose layout is exactly the profile's (one declaration for both)."""
        return cls(layout_from_profile(profile), model=profile.model, **kwargs)

    # ---------------------------------------------------------------- NVM
    def _load_nvm(self) -> None:
        assert self.nvm_path is not None
        try:
            d = json.loads(self.nvm_path.read_text())
            active = bytes.fromhex(d["active"])
            slots = {int(k): bytes.fromhex(v) for k, v in d["slots"].items()}
            count = int(d["boot_count"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.nvm_path}: not a simulated board's memory: {exc}",
                              field="nvm", reason="unreadable") from None
        if d.get("model") != self.model or len(active) != self.size:
            raise ConfigError(f"{self.nvm_path}: memory of a {d.get('model')!r} board with "
                              f"{len(active)} image bytes, this board is {self.model!r} with "
                              f"{self.size}", field="nvm", reason="other board")
        self.nvm_active, self.nvm_slots, self.boot_count = active, slots, count

    def _save_nvm(self) -> None:
        if self.nvm_path is None:
            return
        doc = json.dumps({"model": self.model, "boot_count": self.boot_count,
                          "active": self.nvm_active.hex(),
                          "slots": {str(k): v.hex() for k, v in self.nvm_slots.items()}})
        fd, tmp = tempfile.mkstemp(prefix=self.nvm_path.name + ".", suffix=".tmp",
                                   dir=self.nvm_path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(doc)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.nvm_path)  # atomic: the old file or the new one, never half
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---------------------------------------------------------------- state
    @property
    def slots(self) -> dict[int, bytes]:
        """Beam slots held in NVM: slot number → image bytes."""
        return self.nvm_slots

    @property
    def nvm(self) -> bytes:
        """The active image as saved in NVM (what survives a reboot)."""
        return self.nvm_active

    def _crc(self, data: bytes | bytearray) -> int:
        return zlib.crc32(bytes(data)) & 0xFFFFFFFF

    def _boot(self, why: str) -> None:
        self.boot_id = int.from_bytes(os.urandom(4), "little") or 1
        self.boot_count += 1
        self.active = bytearray(self.nvm_active)
        self.staged = bytearray(self.nvm_active)
        self._cache.clear()
        self._buf.clear()
        self.session = None
        self._save_nvm()
        log.debug("sim board booted (%s), boot %d id %08x", why, self.boot_count,
                  self.boot_id)

    def reboot(self, why: str) -> None:
        """Reboot: active and staged restored from NVM, sessions and caches cleared, a
        new boot id."""
        self.counters.reboots += 1
        self.counters.events.append(f"reboot ({why})")
        self._boot(why)

    def _mangle(self, data: bytes, p_drop: float, p_corrupt: float, p_dup: float = 0.0
                ) -> bytes:
        if not data or (p_drop <= 0 and p_corrupt <= 0 and p_dup <= 0):
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if p_corrupt > 0:
            hit = self.rng.random(arr.size) < p_corrupt
            if hit.any():
                arr[hit] ^= self.rng.integers(1, 256, hit.sum(), dtype=np.uint8)
        if p_drop > 0:
            arr = arr[self.rng.random(arr.size) >= p_drop]
        if p_dup > 0:
            arr = np.repeat(arr, np.where(self.rng.random(arr.size) < p_dup, 2, 1))
        return arr.tobytes()

    def _chance(self, p: float) -> bool:
        return p > 0 and bool(self.rng.random() < p)

    def _reply(self, session: int, seq: int, cmd: int, status: int, data: bytes = b"") -> bytes:
        return _frame(session, seq, cmd | REPLY, struct.pack("<BI", status, self.boot_id) + data)

    def busy_frame(self) -> bytes:
        """The NAK BUSY a server sends to a second client before closing it."""
        return self._reply(0, SEQ_UNTRUSTED, 0, BUSY)

    def bank_bytes(self, which: str = "active") -> dict[str, bytes]:
        """The bytes of every bank in the staged or active image (for tests)."""
        img = self.active if which == "active" else self.staged
        return {b.name: bytes(img[self.offsets[i]: self.offsets[i + 1]])
                for i, b in enumerate(self.banks)}

    def ident_document(self) -> bytes:
        """The IDENT reply document: compact UTF-8 JSON of protocol version, model,
        firmware, serial, boot count, banks, slots and buffer sizes."""
        banks = [{"name": b.name, "kind": b.kind, "count": b.count, "bits": b.bits}
                 for b in self.banks]
        return json.dumps({"protocol": VERSION, "model": self.model,
                           "firmware": self.firmware, "serial": self.serial,
                           "boot_count": self.boot_count, "banks": banks,
                           "slots": self.n_slots, "rx_buffer": self.rx_buffer,
                           "max_payload": self.max_payload}, separators=(",", ":")).encode()

    # ---------------------------------------------------------------- receive
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; return the bytes the board sends back."""
        f = self.faults
        data = self._mangle(data, f.drop_rx, f.corrupt_rx, f.dup_rx)
        out = bytearray()
        self._buf += data
        while True:
            i = self._buf.find(0)
            if i < 0:
                if len(self._buf) > self.rx_buffer:  # garbage without a delimiter
                    self._buf.clear()
                break
            raw = bytes(self._buf[:i])
            del self._buf[: i + 1]
            if not raw:
                continue
            reply = self._handle_raw(raw)
            if reply is not None and not f.silent:
                out += self._mangle(reply, f.drop_tx, f.corrupt_tx, f.dup_tx)
        return bytes(out)

    def _handle_raw(self, raw: bytes) -> bytes | None:
        c = self.counters
        try:
            version, session, seq, cmd, payload = _parse(raw)
        except _BadFrameError as exc:
            c.bad_frames += 1
            c.events.append(f"bad frame: {exc}")
            return self._reply(0, SEQ_UNTRUSTED, 0, BAD_FRAME)
        c.frames += 1
        if cmd & REPLY:
            return None
        if version != VERSION:
            if version == 1:  # an old host: tell it in its own format
                return _frame_v1(seq, cmd | REPLY, struct.pack("<BH", BAD_VERSION,
                                                               self.boot_id & 0xFFFF))
            return self._reply(session, seq, cmd, BAD_VERSION)
        now = self.clock()
        if cmd == HELLO:
            return self._hello(session, seq, now)
        if session == 0 or session != self.session:
            return self._reply(session, seq, cmd, NO_SESSION)
        self._last_seen = now
        cached = self._cache.get(seq)
        if cached is not None and cached[0] == cmd:
            c.replays += 1
            return cached[1]
        f = self.faults
        if self._chance(f.busy):
            return self._reply(session, seq, cmd, BUSY)
        if cmd in (WRITE_STAGED, WRITE_LATCH) and self._chance(f.reset_mid_transfer):
            self.reboot("reset in the middle of a transfer")
            return None
        status, data, after = self._execute(cmd, payload)
        reply = self._reply(session, seq, cmd, status, data)
        if after == "bye":
            self.session = None
            self._cache.clear()
            return reply
        self._cache[seq] = (cmd, reply)
        while len(self._cache) > 256:
            self._cache.popitem(last=False)
        if after == "reset":
            self.reboot("RESET command")
        if self._chance(f.power_cycle):
            self.reboot("silent power cycle")
            return None
        return reply

    def _hello(self, session: int, seq: int, now: float) -> bytes:
        c = self.counters
        if session == 0:
            return self._reply(session, seq, HELLO, BAD_ARGUMENT)
        resumed = session == self.session
        if not resumed:
            if self.session is not None and now - self._last_seen < self.lease_s:
                c.refused_sessions += 1
                return self._reply(session, seq, HELLO, BUSY)
            self.session = session
            self._cache.clear()  # replies of an older session are never replayed
            c.sessions += 1
        self._last_seen = now
        return self._reply(session, seq, HELLO, ACK,
                           struct.pack("<BIB", VERSION, self.boot_count, int(resumed)))

    # ---------------------------------------------------------------- commands
    def _execute(self, cmd: int, p: bytes) -> tuple[int, bytes, str | None]:
        try:
            if cmd == IDENT:
                (off,) = struct.unpack("<H", p[:2]) if p else (0,)
                doc = self.ident_document()
                return ACK, struct.pack("<H", len(doc)) + doc[off: off + IDENT_CHUNK], None
            if cmd == WRITE_STAGED:
                bank, off = struct.unpack("<BH", p[:3])
                data = p[3:]
                if bank >= len(self.banks) or len(data) > self.max_payload:
                    return BAD_ARGUMENT, b"", None
                start = self.offsets[bank] + off
                if off + len(data) > self.banks[bank].nbytes:
                    return BAD_ARGUMENT, b"", None
                self.staged[start: start + len(data)] = data
                return ACK, b"", None
            if cmd == WRITE_LATCH:  # the last write and the latch in one frame
                bank, off, expected = struct.unpack("<BHI", p[:7])
                status, _, _ = self._execute(WRITE_STAGED, p[:3] + p[7:])
                if status != ACK:
                    return status, b"", None
                return self._execute(LATCH, struct.pack("<I", expected))
            if cmd == STAGED_CRC:
                return ACK, struct.pack("<I", self._crc(self.staged)), None
            if cmd == ACTIVE_CRC:
                return ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == SYNC_STAGED:
                self.staged = bytearray(self.active)
                return ACK, b"", None
            if cmd == LATCH:
                (expected,) = struct.unpack("<I", p[:4])
                staged_crc = self._crc(self.staged)
                if staged_crc != expected:
                    return CRC_MISMATCH, struct.pack("<I", staged_crc), None
                self._latch(bytes(self.staged))
                return ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == READ_ACTIVE:
                bank, off, length = struct.unpack("<BHH", p[:5])
                if bank >= len(self.banks) or off + length > self.banks[bank].nbytes:
                    return BAD_ARGUMENT, b"", None
                start = self.offsets[bank] + off
                return ACK, bytes(self.active[start: start + length]), None
            if cmd == BEAM_STORE:
                slot = p[0]
                if slot >= self.n_slots:
                    return BAD_ARGUMENT, b"", None
                self.nvm_slots[slot] = bytes(self.staged)
                self._save_nvm()
                return ACK, struct.pack("<I", self._crc(self.staged)), None
            if cmd == BEAM_SELECT:
                slot = p[0]
                (expected,) = struct.unpack("<I", p[1:5])
                if slot >= self.n_slots:
                    return BAD_ARGUMENT, b"", None
                if slot not in self.nvm_slots:
                    return EMPTY_SLOT, b"", None
                img = self.nvm_slots[slot]
                if self._crc(img) != expected:
                    return CRC_MISMATCH, struct.pack("<I", self._crc(img)), None
                self.staged = bytearray(img)
                self._latch(img)
                return ACK, struct.pack("<I", self._crc(self.active)), None
            if cmd == RESET:
                return ACK, b"", "reset"
            if cmd == BYE:
                return ACK, b"", "bye"
            if cmd == STATUS:
                clean = 1 if self.staged == self.active else 0
                return ACK, struct.pack("<BII", clean, self._crc(self.active),
                                        self._crc(self.staged)), None
            return UNKNOWN_COMMAND, b"", None
        except (struct.error, IndexError):
            return BAD_ARGUMENT, b"", None

    def _latch(self, img: bytes) -> None:
        self.counters.latches += 1
        if self._chance(self.faults.latch_fails):
            self.counters.events.append("latch did not take")
            return
        # one step: every output changes together, and NVM keeps it across reboots
        self.active = bytearray(img)
        self.nvm_active = bytes(img)
        self._save_nvm()


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
    ``profile``; ``kwargs`` are :class:`SimBoardFirmware` options (e.g. ``faults=``,
    ``nvm_path=``)."""
    return SimBoardFirmware.from_profile(profile, **kwargs)
