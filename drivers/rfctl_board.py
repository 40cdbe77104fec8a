"""Host driver for boards that speak the rfctl protocol (PROTOCOL.md).

:class:`RfctlBoard` implements the HAL's :class:`~rfctl.hal.device.Device`: it
identifies the board and refuses one whose bank layout differs from the profile, keeps
requests pipelined within the board's receive window, retransmits lost or NAKed requests
(same sequence number: the board replays or re-executes idempotently) within a bounded
number of rounds, notices reboots through the boot id every reply carries (re-IDENT,
re-validate the cached active image by CRC), and logs every frame on ``rfctl.wire``.
"""

from __future__ import annotations

import json
import logging
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from rfctl.config import BoardProfile
from rfctl.errors import (
    BusyError,
    ConfigError,
    DeviceError,
    DeviceTimeoutError,
    HardwareConstraintError,
    RfctlError,
)
from rfctl.hal.device import (
    BankLayout,
    DeviceInfo,
    LinkStats,
    StageError,
    layout_from_profile,
)

from .protocol import (
    BAD_FRAME_SEQ,
    REPLY_FLAG,
    Cmd,
    FrameError,
    FrameSplitter,
    Nak,
    decode_frame,
    encode_frame,
    log_frame,
    parse_reply,
)
from .transport import InProcessTransport, SerialTransport, Transport

__all__ = ["RfctlBoard", "open_rfctl_board", "plan_frames"]

log = logging.getLogger(__name__)


@dataclass
class _Req:
    seq: int
    cmd: int
    payload: bytes
    wire: bytes
    reply: tuple[int, bytes] | None = None
    sent: bool = False


def _crc32(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def _write_payload(bank: int, off: int, data: bytes) -> bytes:
    return struct.pack("<BH", bank, off) + data


def _stage_requests(writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
                    sync: bool, latch: bool, chunk: int) -> list[tuple[int, bytes]]:
    """[SYNC_STAGED], WRITE_STAGED…, then WRITE_LATCH (the last write with the latch) or
    LATCH when there is nothing to write; STAGED_CRC instead when not latching."""
    reqs: list[tuple[int, bytes]] = []
    if sync:
        reqs.append((Cmd.SYNC_STAGED, b""))
    for bank, off, data in writes:
        for s in range(0, len(data), chunk):
            reqs.append((Cmd.WRITE_STAGED, _write_payload(bank, off + s, data[s: s + chunk])))
    crc = struct.pack("<I", image_crc)
    if not latch:
        reqs.append((Cmd.STAGED_CRC, b""))
    elif reqs and reqs[-1][0] == Cmd.WRITE_STAGED:
        last = reqs.pop()[1]
        reqs.append((Cmd.WRITE_LATCH, last[:3] + crc + last[3:]))
    else:
        reqs.append((Cmd.LATCH, crc))
    return reqs


def plan_frames(writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
                sync: bool, latch: bool, first_seq: int = 1) -> list[bytes]:
    """The request frames a program would send (for dry runs and protocol tests).

    Order: [SYNC_STAGED], WRITE_STAGED per write with the last write carried by
    WRITE_LATCH(crc) (LATCH alone when nothing is written), or STAGED_CRC at the end
    when not latching.
    """
    frames, seq = [], first_seq
    reqs = _stage_requests(writes, image_crc, sync=sync, latch=latch, chunk=1 << 16)
    for cmd, payload in reqs:
        frames.append(encode_frame(seq, cmd, payload))
        seq = seq + 1 if seq + 1 < BAD_FRAME_SEQ else 1
    return frames


class RfctlBoard:
    """An rfctl-protocol board behind a transport.

    Parameters
    ----------
    profile : BoardProfile
        Declares the layout the board must report; ``profile.link`` gives timeout,
        retries and chunk size.
    transport : Transport
        Already open.
    name : str, optional
        Name used in errors and logs (default: the profile name).
    connect : bool
        Identify the board now (default).
    """

    def __init__(self, profile: BoardProfile, transport: Transport, *, name: str | None = None,
                 connect: bool = True) -> None:
        self.profile = profile
        self.transport = transport
        self.name = name or profile.name
        self.timeout = profile.link.timeout_s
        self.retries = profile.link.retries
        self.max_chunk = profile.link.chunk
        self.stats = LinkStats()
        self.verified_active: bytes | None = None
        self.staged_clean = False
        self.beams: dict[int, tuple[int, bytes]] = {}
        self._seq = 0
        self._splitter = FrameSplitter()
        self._info: DeviceInfo | None = None
        self._window = 1024
        self._boot_id: int | None = None
        self._in_reboot = False
        if connect:
            self.connect()

    # ---------------------------------------------------------------- identity
    def connect(self) -> DeviceInfo:
        """IDENT the board and check its layout against the profile.

        Raises
        ------
        HardwareConstraintError
            Model or bank layout differs from the profile (nothing else is sent).
        DeviceTimeoutError
            No reply within ``(retries + 1) × timeout``.
        """
        (status, data), = self._exchange([(Cmd.IDENT, b"")], check_boot=False)
        if status != Nak.ACK:
            raise DeviceError(f"{self.name}: IDENT refused ({Nak(status).name})")
        try:
            d = json.loads(data.decode())
            banks = tuple(BankLayout(b["name"], b["kind"], int(b["count"]), int(b["bits"]))
                          for b in d["banks"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DeviceError(f"{self.name}: malformed IDENT reply: {exc}") from None
        info = DeviceInfo(model=d["model"], firmware=d.get("firmware", "?"), banks=banks,
                          boot_id=self._boot_id or 0, slots=int(d.get("slots", 0)))
        want = layout_from_profile(self.profile)
        if info.model != self.profile.model:
            raise HardwareConstraintError(
                f"{self.name}: board reports model {info.model!r}, profile "
                f"{self.profile.name!r} expects {self.profile.model!r}")
        if info.banks != want:
            raise HardwareConstraintError(
                f"{self.name}: board layout {[(b.name, b.count, b.bits) for b in banks]} "
                f"differs from profile {[(b.name, b.count, b.bits) for b in want]}")
        self._window = max(64, int(d.get("rx_buffer", 1024)))
        self.max_chunk = min(self.max_chunk, int(d.get("max_payload", self.max_chunk)))
        self._info = info
        log.info("%s: %s firmware %s, %d banks, %d bytes per image, boot %s", self.name,
                 info.model, info.firmware, len(banks), info.nbytes, self._boot_id)
        return info

    def info(self) -> DeviceInfo:
        if self._info is None:
            return self.connect()
        return self._info

    # ---------------------------------------------------------------- exchange
    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq + 1 < BAD_FRAME_SEQ else 1
        return self._seq

    def _on_reboot(self, boot: int) -> None:
        """The board rebooted: re-IDENT, forget cached state, re-validate by CRC."""
        old = self._boot_id
        self._boot_id = boot
        log.warning("%s: board rebooted (boot id %s → %s)", self.name, old, boot)
        self.beams.clear()
        cached, self.verified_active = self.verified_active, None
        self.staged_clean = True  # staged is restored from active at boot
        if self._in_reboot:
            return
        self._in_reboot = True
        try:
            self._info = None
            self.connect()
            if cached is not None and self.active_crc() == _crc32(cached):
                self.verified_active = cached
        except RfctlError as exc:
            # the caller's own error says what happened; the cache stays forgotten
            log.warning("%s: could not re-identify after the reboot: %s", self.name, exc)
        finally:
            self._in_reboot = False

    def _exchange(self, reqs_in: Sequence[tuple[int, bytes]], *, check_boot: bool = True,
                  latch_index: int | None = None) -> list[tuple[int, bytes]]:
        """Send requests pipelined; return (status, data) per request, in order.

        Lost, corrupted and BUSY requests are retransmitted (same sequence number) in
        at most ``retries`` further rounds. A request retransmitted after SYNC_STAGED
        brings every later write with it (sync would erase them).

        Raises
        ------
        StageError
            Rounds exhausted, or the board rebooted in the middle (``latch_sent`` says
            whether the latch request left the host).
        """
        reqs = []
        for cmd, payload in reqs_in:
            seq = self._next_seq()
            reqs.append(_Req(seq, cmd, payload, encode_frame(seq, cmd, payload)))
        by_seq = {r.seq: r for r in reqs}
        rebooted: int | None = None
        for rnd in range(self.retries + 1):
            todo = [r for r in reqs if r.reply is None]
            if not todo:
                break
            if rnd:
                self.stats.retries += len(todo)
                log.debug("%s: round %d, retransmitting %d request(s)", self.name, rnd,
                          len(todo))
            lost = 0
            answered_now = 0
            i = 0  # next to send
            outstanding = 0
            last_rx = time.perf_counter()
            while True:
                batch = bytearray()
                while i < len(todo) and (outstanding + len(todo[i].wire) <= self._window
                                         or outstanding == 0):
                    r = todo[i]
                    log_frame("tx", r.wire)
                    batch += r.wire
                    r.sent = True
                    self.stats.frames_tx += 1
                    outstanding += len(r.wire)
                    i += 1
                if batch:  # one write for everything the window allows
                    self.transport.write(bytes(batch))
                    self.stats.bytes_tx += len(batch)
                    last_rx = time.perf_counter()
                if answered_now + lost >= len(todo):
                    break
                chunk = self.transport.read(0 if self.transport.synchronous else
                                            min(self.timeout, 0.05))
                if not chunk:
                    if self.transport.synchronous or \
                            time.perf_counter() - last_rx > self.timeout:
                        self.stats.timeouts += 1
                        break
                    continue
                last_rx = time.perf_counter()
                self.stats.bytes_rx += len(chunk)
                for raw in self._splitter.feed(chunk):
                    log_frame("rx", raw + b"\x00")
                    try:
                        fr = decode_frame(raw)
                        status, boot, data = parse_reply(fr.payload)
                    except FrameError:
                        lost += 1
                        continue
                    if fr.seq == BAD_FRAME_SEQ:
                        if status == Nak.BUSY:
                            raise BusyError(f"{self.name}: board is busy with another host")
                        lost += 1
                        continue
                    r = by_seq.get(fr.seq)
                    if r is None or r.reply is not None or fr.cmd != (r.cmd | REPLY_FLAG):
                        continue  # a late duplicate
                    if self._boot_id is None:
                        self._boot_id = boot
                    elif boot != self._boot_id and rebooted is None:
                        rebooted = boot
                    if r in todo:
                        outstanding -= len(r.wire)
                    if status == Nak.BUSY:
                        lost += 1
                        continue
                    r.reply = (status, data)
                    answered_now += 1
                if rebooted is not None and check_boot:
                    break
            if rebooted is not None and check_boot:
                latch_sent = latch_index is not None and reqs[latch_index].sent
                self._on_reboot(rebooted)
                raise StageError(f"{self.name}: board rebooted during the transfer",
                                 latch_sent=latch_sent)
            self._fixup_order(reqs, by_seq, latch_index)
        missing = [r for r in reqs if r.reply is None]
        if missing:
            latch_sent = latch_index is not None and reqs[latch_index].sent
            names = sorted({Cmd(r.cmd).name for r in missing})
            exc = DeviceTimeoutError(
                f"{self.name}: no valid reply to {len(missing)} request(s) ({', '.join(names)})"
                f" after {self.retries + 1} round(s), timeout {self.timeout:g} s")
            if latch_index is None and len(reqs) == 1 and reqs[0].cmd == Cmd.IDENT:
                raise exc
            raise StageError(str(exc), latch_sent=latch_sent, cause=exc)
        if rebooted is not None and not check_boot:
            self._boot_id = rebooted
        return [r.reply for r in reqs]  # type: ignore[misc]

    def _fixup_order(self, reqs: list[_Req], by_seq: dict[int, _Req],
                     latch_index: int | None) -> None:
        """Make the next round resend what order requires.

        - SYNC_STAGED unanswered → every later write must be resent after it.
        - LATCH that NAKed CRC_MISMATCH while an earlier request is unanswered → resend
          it after them (the board refused it: nothing latched).
        - LATCH ACKed → every earlier request took effect (the CRC proves it).

        A request that did get a reply but must run again is a new command: it gets a
        new sequence number (the board would otherwise replay its cached reply).
        """
        def again(r: _Req) -> None:
            if r.reply is None:
                return
            by_seq.pop(r.seq, None)
            r.seq = self._next_seq()
            r.wire = encode_frame(r.seq, r.cmd, r.payload)
            r.reply = None
            by_seq[r.seq] = r

        for k, r in enumerate(reqs):
            if r.cmd == Cmd.SYNC_STAGED and r.reply is None:
                for later in reqs[k + 1:]:
                    if later.cmd == Cmd.WRITE_STAGED:
                        again(later)
        if latch_index is not None:
            lr = reqs[latch_index]
            earlier_missing = any(r.reply is None for r in reqs[:latch_index])
            if lr.reply is not None and lr.reply[0] == Nak.CRC_MISMATCH and earlier_missing:
                again(lr)
            elif lr.reply is not None and lr.reply[0] == Nak.ACK:
                for r in reqs[:latch_index]:
                    if r.reply is None:
                        r.reply = (Nak.ACK, b"")

    def _one(self, cmd: int, payload: bytes = b"", *, latch: bool = False) -> bytes:
        (status, data), = self._exchange([(cmd, payload)], latch_index=0 if latch else None)
        if status != Nak.ACK:
            raise StageError(f"{self.name}: {Cmd(cmd).name} refused: {Nak(status).name}"
                             + (f" (board CRC {struct.unpack('<I', data[:4])[0]:#010x})"
                                if status == Nak.CRC_MISMATCH and len(data) >= 4 else ""),
                             latch_sent=False)
        return data

    # ---------------------------------------------------------------- Device API
    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None:
        """Write the staged image and either latch it (returns the active CRC the board
        reports after the latch) or check its CRC (returns None).

        Raises
        ------
        StageError
            On NAK, CRC mismatch, reboot or exhausted retries.
        """
        self.info()
        reqs = _stage_requests(writes, image_crc, sync=sync, latch=latch, chunk=self.max_chunk)
        last = len(reqs) - 1
        replies = self._exchange(reqs, latch_index=last if latch else None)
        for (cmd, _), (status, _data) in zip(reqs[:-1], replies[:-1], strict=True):
            if status != Nak.ACK:
                raise StageError(f"{self.name}: {Cmd(cmd).name} refused: {Nak(status).name}",
                                 latch_sent=False)
        status, data = replies[-1]
        if latch:
            if status == Nak.CRC_MISMATCH:
                got = struct.unpack("<I", data[:4])[0]
                raise StageError(f"{self.name}: staged CRC {got:#010x} differs from the "
                                 f"image's {image_crc:#010x}; not latched", latch_sent=False)
            if status != Nak.ACK:
                raise StageError(f"{self.name}: {Cmd(reqs[-1][0]).name} refused: "
                                 f"{Nak(status).name}", latch_sent=False)
            return struct.unpack("<I", data[:4])[0]
        got = struct.unpack("<I", data[:4])[0]
        if got != image_crc:
            raise StageError(f"{self.name}: staged CRC {got:#010x} differs from the image's "
                             f"{image_crc:#010x}", latch_sent=False)
        return None

    def latch(self, image_crc: int) -> int:
        """LATCH with the expected staged CRC; returns the active CRC after it."""
        return struct.unpack("<I", self._one(Cmd.LATCH, struct.pack("<I", image_crc),
                                             latch=True)[:4])[0]

    def active_crc(self) -> int:
        return struct.unpack("<I", self._one(Cmd.ACTIVE_CRC)[:4])[0]

    def staged_crc(self) -> int:
        return struct.unpack("<I", self._one(Cmd.STAGED_CRC)[:4])[0]

    def status(self) -> dict[str, int]:
        clean, a, s = struct.unpack("<BII", self._one(Cmd.STATUS)[:9])
        return {"staged_equals_active": clean, "active_crc": a, "staged_crc": s,
                "boot_id": self._boot_id or 0}

    def read_active(self) -> bytes:
        """Read the whole active image back from the board (not from a cache)."""
        info = self.info()
        reqs = []
        for bi, lay in enumerate(info.banks):
            for off in range(0, lay.nbytes, self.max_chunk):
                n = min(self.max_chunk, lay.nbytes - off)
                reqs.append((Cmd.READ_ACTIVE, struct.pack("<BHH", bi, off, n)))
        replies = self._exchange(reqs)
        if any(s != Nak.ACK for s, _ in replies):
            raise DeviceError(f"{self.name}: READ_ACTIVE refused")
        return b"".join(d for _, d in replies)

    def store_beam(self, slot: int) -> int:
        return struct.unpack("<I", self._one(Cmd.BEAM_STORE, bytes([slot]))[:4])[0]

    def select_beam(self, slot: int, expected_crc: int) -> int:
        data = self._one(Cmd.BEAM_SELECT, struct.pack("<BI", slot, expected_crc), latch=True)
        return struct.unpack("<I", data[:4])[0]

    def reset(self) -> None:
        """Reboot the board and reconnect (the active image survives; beam slots do not).

        The cached active image is kept only if the board's active CRC still matches it.
        """
        self._one(Cmd.RESET)
        cached, self.verified_active = self.verified_active, None
        self.beams.clear()
        self.staged_clean = True  # staged is restored from active at boot
        self._boot_id = None  # learn the new boot id from the IDENT reply
        self._info = None
        self.connect()
        if cached is not None and self.active_crc() == _crc32(cached):
            self.verified_active = cached

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RfctlBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_rfctl_board(profile: BoardProfile, *, url: str | None = None, firmware=None,
                     exclusive: bool = True, name: str | None = None) -> RfctlBoard:
    """Entry point ``rfctl-serial``: open the board a profile describes.

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
        return RfctlBoard(profile, transport, name=name)
    except Exception:
        transport.close()
        raise
