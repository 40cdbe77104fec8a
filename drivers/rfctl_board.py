"""Host driver for boards that speak the rfctl protocol (PROTOCOL.md, version 2).

:class:`RfctlBoard` implements the HAL's :class:`~rfctl.hal.device.Device`:

- **Sessions.** At connect the host picks a random 32-bit session id and says HELLO; the
  board makes it the current session and clears its reply cache, so this host is never
  answered from another session's replies. Every frame carries the id. A board that
  answers ``NO_SESSION`` lost the session (reboot, or another host took over): the
  host's copy of the board is forgotten.
- **Reset detection.** Every reply carries the board's boot id; IDENT and HELLO report the
  boot counter. A changed boot id invalidates the host's copy (re-checked by CRC).
- **Retries by deadline.** Each operation has a deadline, ``timeout_s × (retries + 1)``.
  Within it, a request is sent again as soon as it is known lost (a later request was
  answered first), after damage was seen and the line went quiet, or after ``timeout_s``
  of silence; BUSY is retried; a link that drops is reopened and the session resumed. A
  latch refused while earlier writes were still in doubt is executed afresh (new
  sequence number) after them, never answered from the cache.
- **Chunked IDENT.** The identity document comes in 48-byte chunks, each retried on its
  own, so a noisy line does not fail the open.
- **Pipelining** (``capabilities.pipelined``). A new session's first program asks
  ACTIVE_CRC in the same batch as its writes and latches only after the answer (no
  round trip of its own); a sweep's next image is prestaged behind each latch
  (``stage(…, then=…)``) and then only latched (PROTOCOL.md, "Prestaging").

Every frame is logged on ``rfctl.wire`` at DEBUG.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rfctl.config import BoardProfile
from rfctl.errors import (
    BusyError,
    ChecksumError,
    DeviceError,
    DeviceTimeoutError,
    HardwareConstraintError,
    NakError,
)
from rfctl.hal.device import (
    Capabilities,
    DeviceInfo,
    LinkStats,
    StageError,
    layout_from_profile,
    operation_deadline,
)
from rfctl.hal.image import BankLayout, image_crc

from .protocol import (
    BAD_FRAME_SEQ,
    IDENT_CHUNK,
    PROTOCOL_VERSION,
    REPLY_FLAG,
    Cmd,
    FrameError,
    FrameSplitter,
    Nak,
    decode_frame,
    encode_frame,
    log_frame,
    parse_ident,
    parse_reply,
)
from .transport import Transport, closed_on_error, open_link

__all__ = ["RfctlBoard", "open_rfctl_board", "plan_frames"]

log = logging.getLogger(__name__)

SETTLE_S = 0.02
"""After damage is seen, a quiet line for this long means the replies still to come are
lost: outstanding requests are sent again (bounded by ``timeout_s``)."""


@dataclass
class _Req:
    seq: int
    cmd: int
    payload: bytes
    wire: bytes
    reply: tuple[int, bytes] | None = None
    sends: int = 0
    first_send_no: int = -1
    last_send_no: int = -1
    due: bool = True
    hold: bool = False
    gated: bool = False  # a latch not sent until the ACTIVE_CRC asked ahead of it says so
    final: bool = False
    busy: bool = False
    t_sent: float = 0.0


class ProtocolVersionError(DeviceError):
    """The board speaks another version of the rfctl protocol."""


class _SessionLostError(Exception):
    """Internal: the board answered NO_SESSION or changed its boot id."""

    def __init__(self, boot: int, why: str) -> None:
        super().__init__(why)
        self.boot = boot
        self.why = why


def _write_payload(bank: int, off: int, data: bytes) -> bytes:
    return struct.pack("<BH", bank, off) + data


def _stage_requests(writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
                    latch: bool, chunk: int) -> list[tuple[int, bytes]]:
    """WRITE_STAGED…, then WRITE_LATCH (the last write with the latch) or LATCH when there
    is nothing to write; STAGED_CRC instead of the latch when not latching."""
    reqs: list[tuple[int, bytes]] = []
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
                sync: bool, latch: bool, first_seq: int = 1, session: int = 0) -> list[bytes]:
    """The request frames a program would send (for dry runs and protocol tests).

    Order: [SYNC_STAGED (sent alone, before the rest)], WRITE_STAGED per write with the
    last write carried by WRITE_LATCH(crc) (LATCH alone when nothing is written), or
    STAGED_CRC at the end when not latching. The HELLO that opens a session precedes
    them.
    """
    frames, seq = [], first_seq
    reqs = ([(Cmd.SYNC_STAGED, b"")] if sync else []) + _stage_requests(
        writes, image_crc, latch=latch, chunk=1 << 16)
    for cmd, payload in reqs:
        frames.append(encode_frame(seq, cmd, payload, session=session))
        seq = seq + 1 if seq + 1 < BAD_FRAME_SEQ else 1
    return frames


class RfctlBoard:
    """An rfctl-protocol board behind a transport.

    Parameters
    ----------
    profile : BoardProfile
        Declares the layout the board must report; ``profile.link`` gives timeout,
        retries (the operation deadline) and chunk size.
    transport : Transport
        Already open.
    name : str, optional
        Name used in errors and logs (default: the profile name).
    connect : bool
        Open the session and identify the board now (default).
    reopen : callable, optional
        Returns a fresh transport to the same board after a link loss (None: a lost link
        is not reopened).
    session : int, optional
        Session id (default: 32 random bits).
    clock : callable, optional
        Monotonic clock, s (injectable for tests).
    """

    def __init__(self, profile: BoardProfile, transport: Transport, *, name: str | None = None,
                 connect: bool = True, reopen: Callable[[], Transport] | None = None,
                 session: int | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.profile = profile
        self.transport = transport
        self.name = name or profile.name
        self.timeout = profile.link.timeout_s
        self.deadline_s = operation_deadline(profile.link)
        self.max_chunk = profile.link.chunk
        self.stats = LinkStats()
        self.verified_active: bytes | None = None
        self.staged_clean = False
        self.beams: dict[int, tuple[int, bytes]] = {}
        self.url = ""  # the link it was opened on (set by open_rfctl_board)
        self.session = session or (secrets.randbits(32) or 1)
        self._reopen = reopen
        self._clock = clock
        self._skew = 0.0  # silence of a synchronous transport, counted as link time
        self._seq = 0
        self._send_no = 0
        self._splitter = FrameSplitter()
        self._info: DeviceInfo | None = None
        self._window = 256
        self._boot_id: int | None = None
        self.boot_count = 0
        self._in_resync = False
        self._srtt: float | None = None  # smoothed request→reply time, s
        self._byte_time = 10.0 / profile.link.baud if profile.link.baud else 0.0
        self.capabilities = Capabilities(staged_buffer=True, atomic_latch=True, beam_slots=0,
                                         max_chunk=self.max_chunk, sessions=True,
                                         pipelined=True)
        self.prestaged_crc: int | None = None
        self.asked_active_crc: int | None = None  # the answer to stage(ask_active=True)
        self._inflight: list[_Req] = []  # prestaged writes sent behind the last latch
        if connect:
            self.connect()

    # ---------------------------------------------------------------- time
    def _now(self) -> float:
        return self._clock() + self._skew

    def _deadline(self) -> float:
        return self._now() + self.deadline_s

    # ---------------------------------------------------------------- identity
    def connect(self) -> DeviceInfo:
        """Open a session (HELLO) and identify the board (IDENT, in chunks).

        Raises
        ------
        HardwareConstraintError
            Model or bank layout differs from the profile (nothing else is sent).
        BusyError
            Another host holds a live session on the board.
        DeviceError
            The board speaks another protocol version, or does not answer within the
            operation deadline.
        """
        deadline = self._deadline()
        busy: BusyError | None = None
        while True:
            try:
                self._hello(deadline, first=True)
                return self._identify(self._deadline())  # an operation of its own
            except (BusyError, DeviceTimeoutError) as exc:
                # a TCP bridge that still serves our previous connection, or a link that
                # dropped while opening: reopen within the deadline
                busy = exc if isinstance(exc, BusyError) else busy
                if self._reopen is None or self._now() >= deadline:
                    if busy is None and self._info is None:  # never answered
                        raise DeviceTimeoutError(
                            f"{exc}; no board of the rfctl protocol answered: the board "
                            "there may be of another kind or speak another protocol "
                            f"(profile {self.profile.name}'s driver "
                            f"{self.profile.driver!r} speaks the rfctl protocol, "
                            "drivers/PROTOCOL.md; an OpenSourceRIS board needs a profile "
                            "with driver 'osris', e.g. osris-16x16), or be off") from None
                    raise (busy or exc) from None
                log.info("%s: opening again (%s)", self.name, exc)
                time.sleep(0.05)
                try:
                    self.transport.close()
                    self.transport = self._reopen()
                    self._splitter.clear()
                except DeviceError as exc2:
                    if self._now() >= deadline:
                        raise (busy or exc2) from None

    def _identify(self, deadline: float) -> DeviceInfo:
        try:
            (st, first), = self._exchange([(Cmd.IDENT, struct.pack("<H", 0))],
                                          deadline=deadline, recover=False)
            self._check(st, Cmd.IDENT, first)
            total = struct.unpack("<H", first[:2])[0]
            rest = self._exchange([(Cmd.IDENT, struct.pack("<H", off))
                                   for off in range(IDENT_CHUNK, total, IDENT_CHUNK)],
                                  deadline=deadline, recover=False)
        except StageError as exc:
            raise DeviceTimeoutError(f"{self.name}: IDENT failed: {exc}") from None
        parts = [first[2:]]
        for st, data in rest:
            self._check(st, Cmd.IDENT, data)
            parts.append(data[2:])
        try:
            d = parse_ident(b"".join(parts))
            banks = tuple(BankLayout(b["name"], b["kind"], int(b["count"]), int(b["bits"]))
                          for b in d["banks"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DeviceError(f"{self.name}: malformed IDENT reply: {exc}") from None
        self.boot_count = int(d.get("boot_count", self.boot_count))
        info = DeviceInfo(model=d["model"], banks=banks, firmware=d.get("firmware", "?"),
                          boot_id=self._boot_id or 0, boot_count=self.boot_count,
                          serial=str(d.get("serial", "")), slots=int(d.get("slots", 0)))
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
        self.max_chunk = min(self.profile.link.chunk, int(d.get("max_payload", self.max_chunk)))
        self.capabilities = Capabilities(staged_buffer=True, atomic_latch=True,
                                         beam_slots=info.slots, max_chunk=self.max_chunk,
                                         sessions=True, pipelined=True)
        self._info = info
        log.info("%s: %s firmware %s serial %s, %d banks, %d bytes per image, boot %d "
                 "(id %08x), session %08x", self.name, info.model, info.firmware, info.serial,
                 len(banks), info.nbytes, self.boot_count, self._boot_id or 0, self.session)
        return info

    def info(self) -> DeviceInfo:
        """Identity and layout from IDENT (asked once per connection).

        Raises
        ------
        DeviceError
            The board does not answer, or reports another layout than the profile's.
        """
        if self._info is None:
            return self.connect()
        return self._info

    def _hello(self, deadline: float, *, first: bool = False) -> bool:
        """Say HELLO with this session id; returns True if the board resumed it."""
        try:
            (st, data), = self._exchange([(Cmd.HELLO, b"")], deadline=deadline, hello=True,
                                         recover=False)
        except StageError as exc:
            raise DeviceTimeoutError(f"{self.name}: no answer to HELLO: {exc}") from None
        if st == Nak.BUSY:
            raise BusyError(f"{self.name}: the board is in a session with another host "
                            f"(still busy after {self.deadline_s:g} s)")
        self._check(st, Cmd.HELLO, data)
        _version, count, resumed = struct.unpack("<BIB", data[:6])
        self.boot_count = count
        return bool(resumed)

    def _check(self, status: int, cmd: int, data: bytes) -> None:
        if status != Nak.ACK:
            raise NakError(f"{self.name}: {Cmd(cmd).name} refused: {_nak_name(status)}",
                           code=status, command=Cmd(cmd).name)

    # ---------------------------------------------------------------- resets and links
    def _forget(self, why: str) -> None:
        """The host's copy of the board is no longer vouched for."""
        log.warning("%s: %s; the host's copy of the board is forgotten", self.name, why)
        self.stats.resets_seen += 1
        self.verified_active = None
        self.staged_clean = False
        self.prestaged_crc = None
        self._inflight = []
        self.beams.clear()

    def _resync(self, deadline: float, why: str) -> None:
        """After a reboot or a lost session: new session, re-identify, then re-check the
        old copy by the board's CRC (kept only if the board confirms it)."""
        cached = self.verified_active
        self._forget(why)
        self._boot_id = None
        self._hello(deadline)
        self._identify(deadline)
        if cached is not None:
            (st, data), = self._exchange([(Cmd.ACTIVE_CRC, b"")], deadline=deadline,
                                         recover=False)
            if st == Nak.ACK and struct.unpack("<I", data[:4])[0] == image_crc(cached):
                self.verified_active = cached
        self.staged_clean = False

    def _recover_link(self, deadline: float, cause: BaseException) -> None:
        """Reopen a lost link and resume the session within the deadline.

        Raises
        ------
        _SessionLostError
            The board rebooted or the session was taken over (resynced first).
        DeviceError
            The link could not be reopened before the deadline.
        """
        if self._reopen is None:
            raise DeviceError(f"{self.name}: link lost: {cause}") from None
        last: BaseException = cause
        while self._now() < deadline:
            try:
                self.transport.close()
                self.transport = self._reopen()
                self._splitter.clear()
                self.stats.reconnects += 1
                old_boot = self._boot_id
                resumed = self._hello(deadline)
            except (DeviceError, StageError) as exc:  # incl. a bridge still busy with us
                last = exc
                time.sleep(min(0.05, max(0.0, deadline - self._now())))
                continue
            if self._boot_id != old_boot or not resumed:
                why = ("board rebooted while the link was down" if self._boot_id != old_boot
                       else "session lost while the link was down")
                raise _SessionLostError(self._boot_id or 0, why)
            log.info("%s: link reopened, session %08x resumed", self.name, self.session)
            return
        raise DeviceError(f"{self.name}: link lost and not reopened within "
                          f"{self.deadline_s:g} s: {last}") from None

    # ---------------------------------------------------------------- exchange
    def _new_req(self, cmd: int, payload: bytes) -> _Req:
        self._seq = self._seq + 1 if self._seq + 1 < BAD_FRAME_SEQ else 1
        return _Req(self._seq, cmd, payload,
                    encode_frame(self._seq, cmd, payload, session=self.session))

    def _renew(self, r: _Req, by_seq: dict[int, _Req]) -> None:
        """Give ``r`` a new sequence number: the board executes it afresh."""
        by_seq.pop(r.seq, None)
        fresh = self._new_req(r.cmd, r.payload)
        r.seq, r.wire, r.reply, r.due = fresh.seq, fresh.wire, None, True
        r.sends, r.first_send_no = 0, -1
        by_seq[r.seq] = r

    def _exchange(self, items: Sequence[tuple[int, bytes]], *, deadline: float | None = None,
                  latch_index: int | None = None, check_crc: int | None = None,
                  hello: bool = False, recover: bool = True, adopt: Sequence[_Req] = (),
                  tail: Sequence[tuple[int, bytes]] = (), gate: int | None = None
                  ) -> list[tuple[int, bytes]]:
        """Send requests pipelined; return (status, data) per request, in order.

        The last request is a *check* when ``latch_index`` is given (a latch) or
        ``check_crc`` is (STAGED_CRC expected to equal it): a check that fails while an
        earlier request was in doubt (unanswered or retransmitted, so possibly executed
        after the check) is run again afresh once every earlier request is answered.

        ``adopt``: requests already sent behind the previous latch (prestaged writes),
        which precede ``items`` (``latch_index`` counts within ``items``); their replies
        come first in the result. ``tail``: requests sent right behind ``items`` whose
        replies are not waited for; on success they are left in flight
        (``self._inflight``) for the next stage to adopt. Any exchange abandons what was
        in flight before it (never sends it again): it was sent before this exchange's
        frames, so on an ordered link it executed before them or not at all.

        ``gate`` (with ``latch_index``): ``items[0]`` is an ACTIVE_CRC asked ahead of the
        writes; the latch is held back until it is answered, and not sent at all if the
        board's active CRC is already ``gate`` (the latch's reply is then that answer).

        Raises
        ------
        StageError
            Deadline passed (``latch_sent`` says whether the latch request left the
            host), the board rebooted, or the session was lost.
        BusyError
            The board (or its server) serves another host.
        DeviceError
            The board speaks another protocol version.
        """
        if deadline is None:
            deadline = self._deadline()
        self._inflight, self.prestaged_crc = [], None  # adopted by the caller, or abandoned
        reqs = list(adopt) + [self._new_req(c, p) for c, p in items]
        need = len(reqs)
        reqs += [self._new_req(c, p) for c, p in tail]
        by_seq = {r.seq: r for r in reqs}
        L = reqs[len(adopt) + latch_index] if latch_index is not None else None
        C = L if L is not None else (reqs[need - 1] if check_crc is not None else None)
        G = None
        if gate is not None and L is not None:
            G = reqs[len(adopt)]
            L.gated = True
        try:
            self._run(reqs, by_seq, C, check_crc, deadline, hello, recover, need, G, gate)
        except _SessionLostError as lost:
            latch_sent = L is not None and L.sends > 0
            if self._in_resync:  # no recursion: the outer resync reports it
                self._forget(lost.why)
                raise StageError(f"{self.name}: {lost.why}", latch_sent=latch_sent,
                             session_lost=True) from None
            self._in_resync = True
            try:
                self._resync(self._deadline(), lost.why)
            except (DeviceError, StageError, _SessionLostError) as exc:
                log.warning("%s: could not re-identify after %s: %s", self.name, lost.why, exc)
            finally:
                self._in_resync = False
            raise StageError(f"{self.name}: {lost.why}", latch_sent=latch_sent,
                             session_lost=True) from None
        except DeviceError as exc:
            if isinstance(exc, BusyError | ProtocolVersionError):
                raise
            raise StageError(str(exc), latch_sent=L is not None and L.sends > 0,
                             cause=exc) from None
        for r in reqs:
            if r.reply is None and r.busy and hello:
                r.reply = (Nak.BUSY, b"")
        reqs, tail_reqs = reqs[:need], reqs[need:]
        missing = [r for r in reqs if r.reply is None]
        if missing:
            names = sorted({Cmd(r.cmd).name for r in missing})
            raise StageError(
                f"{self.name}: no valid reply to {len(missing)} request(s) ({', '.join(names)})"
                f" within {self.deadline_s:g} s (timeout {self.timeout:g} s)",
                latch_sent=L is not None and L.sends > 0,
                cause=DeviceTimeoutError("deadline passed"))
        self._inflight = tail_reqs
        return [r.reply for r in reqs]  # type: ignore[misc]

    def _run(self, reqs: list[_Req], by_seq: dict[int, _Req], L: _Req | None,
             check_crc: int | None, deadline: float, hello: bool, recover: bool,
             need: int, G: _Req | None = None, gate: int | None = None) -> None:
        """Until the first ``need`` requests are answered (or the deadline): transmit,
        retransmit, and match replies (see :meth:`_exchange`)."""
        li = reqs.index(L) if L is not None else -1
        # adopted requests still unanswered occupy the board's receive window
        outstanding = sum(len(r.wire) for r in reqs if r.sends and r.reply is None and not r.due)
        last_rx = self._now()
        damage = False
        busy_until = 0.0
        biggest = max(len(r.wire) for r in reqs)
        while True:
            # a quiet line for this long means what is outstanding is lost: a few
            # round trips plus two frames' line time, at most timeout_s (adaptive, so a
            # lost frame costs milliseconds on a fast link, not the whole timeout)
            quiet = self.timeout if self._srtt is None else min(
                self.timeout, max(0.01, 4 * self._srtt + 2 * biggest * self._byte_time))
            if L is not None and L.hold and all(r.reply is not None for r in reqs[:li]):
                L.hold = False
                L.final = True
                self._renew(L, by_seq)
            pending = [r for r in reqs if r.reply is None]
            if all(r.reply is not None for r in reqs[:need]):
                return
            now = self._now()
            if now >= deadline:
                return
            # transmit what is due, in order, within the board's receive window
            batch = bytearray()
            if now >= busy_until:
                for r in pending:
                    if not r.due or r.hold or r.gated:
                        continue
                    if outstanding and outstanding + len(r.wire) > self._window:
                        break
                    log_frame("tx", r.wire)
                    batch += r.wire
                    r.due = False
                    r.t_sent = now
                    r.sends += 1
                    if r.sends > 1:
                        self.stats.retries += 1
                    self._send_no += 1
                    r.last_send_no = self._send_no
                    if r.first_send_no < 0:
                        r.first_send_no = self._send_no
                    self.stats.frames_tx += 1
                    outstanding += len(r.wire)
            try:
                if batch:
                    self.transport.write(bytes(batch))
                    self.stats.bytes_tx += len(batch)
                    last_rx = self._now()
                wait = 0.0 if self.transport.synchronous else max(0.0, min(
                    0.05, deadline - self._now(), max(0.001, quiet - (self._now() - last_rx))))
                chunk = self.transport.read(wait)
            except DeviceError as exc:
                if not recover:
                    raise
                self._recover_link(deadline, exc)
                for r in pending:
                    r.due = True
                outstanding = 0
                continue
            now = self._now()
            if not chunk:
                if self.transport.synchronous:
                    # nothing more will come: count the wait a real line would have had
                    self._skew += min(SETTLE_S, self.timeout) if damage else self.timeout
                    self.stats.timeouts += not damage
                    resend = True
                elif damage and now - last_rx >= min(SETTLE_S, quiet):
                    resend = True
                elif now - last_rx >= quiet:
                    self.stats.timeouts += now - last_rx >= self.timeout
                    resend = True
                else:
                    resend = False
                if resend:
                    damage = False
                    for r in pending:
                        r.due = True
                    outstanding = 0
                    last_rx = now
                continue
            last_rx = now
            self.stats.bytes_rx += len(chunk)
            for raw in self._splitter.feed(chunk):
                log_frame("rx", raw + b"\x00")
                try:
                    fr = decode_frame(raw)
                    if fr.version != PROTOCOL_VERSION:
                        raise ProtocolVersionError(
                            f"{self.name}: the board speaks rfctl protocol version "
                            f"{fr.version}; this host speaks {PROTOCOL_VERSION} (update the "
                            "board's firmware or use a matching rfctl)")
                    status, boot, data = parse_reply(fr.payload)
                except FrameError:
                    damage = True
                    continue
                if fr.seq == BAD_FRAME_SEQ:
                    if status == Nak.BUSY:
                        raise BusyError(f"{self.name}: board is busy with another host")
                    damage = True
                    continue
                if fr.session != self.session:
                    continue  # not ours (a stale frame of another session)
                r = by_seq.get(fr.seq)
                if r is None or r.reply is not None or fr.cmd != (r.cmd | REPLY_FLAG):
                    continue  # a late duplicate
                outstanding = max(0, outstanding - len(r.wire))
                if hello:
                    if self._boot_id is not None and boot != self._boot_id:
                        log.info("%s: board boot id %08x → %08x", self.name, self._boot_id,
                                 boot)
                    if status == Nak.BUSY:
                        r.due = True
                        r.busy = True
                        busy_until = self._now() + min(self.timeout, 0.1)
                        if self.transport.synchronous:
                            self._skew += min(self.timeout, 0.1)
                        continue
                    self._boot_id = boot
                elif boot != self._boot_id:
                    raise _SessionLostError(
                        boot, f"board rebooted (boot id {self._boot_id or 0:08x} → {boot:08x})")
                elif status == Nak.NO_SESSION:
                    raise _SessionLostError(boot, "the board ended this session (another host "
                                       "took it over)")
                if status == Nak.BUSY:
                    r.due = True
                    continue
                if r is G and L is not None and L.gated:
                    L.gated = False  # the board's answer opens the gate
                    if status == Nak.ACK and len(data) >= 4 and \
                            struct.unpack("<I", data[:4])[0] == gate:
                        L.reply = (Nak.ACK, data[:4])  # already active: no latch needed
                failed = status == Nak.CRC_MISMATCH or (
                    check_crc is not None and status == Nak.ACK and len(data) >= 4
                    and struct.unpack("<I", data[:4])[0] != check_crc)
                if r is L and failed and not L.final:
                    doubt = any(q.reply is None or q.sends > 1 for q in reqs[:li])
                    if doubt:  # executed before an earlier write: run it again after them
                        L.hold = True
                        continue
                r.reply = (status, data)
                if r.sends == 1:
                    sample = now - r.t_sent
                    self._srtt = sample if self._srtt is None else \
                        0.875 * self._srtt + 0.125 * sample
                for q in pending:  # answered out of order: the earlier one was lost
                    if q.reply is None and not q.due and not q.hold and \
                            q.last_send_no < r.first_send_no:
                        q.due = True
                        outstanding = max(0, outstanding - len(q.wire))
                if r is L and status == Nak.ACK and not failed:
                    for q in reqs[:li]:  # the CRC proves every earlier write took effect
                        if q.reply is None:
                            q.reply = (Nak.ACK, b"")

    def _one(self, cmd: int, payload: bytes = b"", *, latch: bool = False) -> bytes:
        (status, data), = self._exchange([(cmd, payload)], latch_index=0 if latch else None)
        if status != Nak.ACK:
            msg = f"{self.name}: {Cmd(cmd).name} refused: {_nak_name(status)}"
            if status == Nak.CRC_MISMATCH and len(data) >= 4:
                msg += f" (board CRC {struct.unpack('<I', data[:4])[0]:#010x})"
            raise StageError(msg, latch_sent=False, cause=NakError(msg, code=status,
                                                                   command=Cmd(cmd).name))
        return data

    # ---------------------------------------------------------------- Device API
    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool,
              then: tuple[Sequence[tuple[int, int, bytes]], int] | None = None,
              ask_active: bool = False) -> int | None:
        """Write the staged image and either latch it (returns the active CRC the board
        reports after the latch) or check its CRC (returns None).

        Parameters
        ----------
        writes : sequence of (bank, offset, bytes)
            Staged writes of this image. Empty with ``sync=False`` when the writes were
            prestaged behind the previous latch and ``prestaged_crc == image_crc``: those
            writes (in flight) are adopted, and only the LATCH is sent.
        image_crc : int
            CRC-32 the staged image must have.
        sync, latch : bool
        then : (writes, crc), optional
            With ``latch``: the next image's writes (against this image), sent right
            behind the latch in the same batch and left in flight; after a verified
            latch ``prestaged_crc`` is ``crc``. Any other exchange abandons them (they
            are never sent again; whatever of them executed is overwritten by the SYNC
            or full write that follows, or refused by the next LATCH's CRC check).
        ask_active : bool
            With ``latch``: ask ACTIVE_CRC ahead of the writes (same batch) and send the
            latch only if the board's active CRC is not already ``image_crc`` (a new
            session's first program: board truth without a round trip of its own). The
            answer is kept in ``asked_active_crc``.

        Raises
        ------
        StageError
            On NAK, CRC mismatch (``base_mismatch``), reboot, lost session or deadline.
        """
        self.info()
        deadline = self._deadline()
        adopt = self._inflight if (latch and not sync and not writes
                                   and self.prestaged_crc == image_crc) else []
        if sync:  # alone: a SYNC retried after later writes would erase them
            (st, _), = self._exchange([(Cmd.SYNC_STAGED, b"")], deadline=deadline)
            if st != Nak.ACK:
                raise StageError(f"{self.name}: SYNC_STAGED refused: {_nak_name(st)}")
        reqs = _stage_requests(writes, image_crc, latch=latch, chunk=self.max_chunk)
        gate = image_crc if ask_active and latch else None
        if gate is not None:
            reqs.insert(0, (Cmd.ACTIVE_CRC, b""))
        self.asked_active_crc = None
        tail = [] if then is None or not latch else [
            req for req in _stage_requests(then[0], then[1], latch=False, chunk=self.max_chunk)
            if req[0] == Cmd.WRITE_STAGED]
        last = len(reqs) - 1
        replies = self._exchange(reqs, deadline=deadline, latch_index=last if latch else None,
                                 check_crc=None if latch else image_crc, adopt=adopt,
                                 tail=tail, gate=gate)
        sent_behind, self._inflight = self._inflight, []  # kept only after a verified latch
        if gate is not None and replies[len(adopt)][0] == Nak.ACK:
            self.asked_active_crc = struct.unpack("<I", replies[len(adopt)][1][:4])[0]
        cmds = [r.cmd for r in adopt] + [c for c, _ in reqs]
        for k, (cmd, (status, _data)) in enumerate(zip(cmds[:-1], replies[:-1], strict=True)):
            if status != Nak.ACK and not (gate is not None and k == len(adopt)):
                # (an unanswerable ACTIVE_CRC only opened the gate: the latch decides)
                msg = f"{self.name}: {Cmd(cmd).name} refused: {_nak_name(status)}"
                raise StageError(msg, cause=NakError(msg, code=status, command=Cmd(cmd).name))
        status, data = replies[-1]
        if status == Nak.CRC_MISMATCH or (not latch and status == Nak.ACK and
                                          struct.unpack("<I", data[:4])[0] != image_crc):
            got = struct.unpack("<I", data[:4])[0]
            msg = (f"{self.name}: staged CRC {got:#010x} differs from the image's "
                   f"{image_crc:#010x}; not latched")
            raise StageError(msg, base_mismatch=True,
                             cause=ChecksumError(msg, expected=image_crc, actual=got))
        if status != Nak.ACK:
            msg = f"{self.name}: {Cmd(reqs[-1][0]).name} refused: {_nak_name(status)}"
            raise StageError(msg, cause=NakError(msg, code=status,
                                                 command=Cmd(reqs[-1][0]).name))
        active = struct.unpack("<I", data[:4])[0] if latch else None
        if sent_behind and then is not None and active == image_crc:
            self._inflight, self.prestaged_crc = sent_behind, then[1]
        return active

    def latch(self, image_crc: int) -> int:
        """LATCH with the expected staged CRC; returns the active CRC after it."""
        return struct.unpack("<I", self._one(Cmd.LATCH, struct.pack("<I", image_crc),
                                             latch=True)[:4])[0]

    def active_crc(self) -> int:
        """The board's active CRC-32, asked now (reconnecting within the deadline)."""
        try:
            return struct.unpack("<I", self._one(Cmd.ACTIVE_CRC)[:4])[0]
        except StageError as exc:
            if exc.session_lost:  # resynchronised (new session): ask once more
                return struct.unpack("<I", self._one(Cmd.ACTIVE_CRC)[:4])[0]
            raise

    def staged_crc(self) -> int:
        """CRC-32 of the board's staged image (STAGED_CRC).

        Raises
        ------
        StageError
            A NAK (``latch_sent=False``, the cause a :class:`NakError` with its code).
        DeviceError
            No valid reply within the operation deadline.
        """
        return struct.unpack("<I", self._one(Cmd.STAGED_CRC)[:4])[0]

    def status(self) -> dict[str, int]:
        """The board's STATUS reply.

        Returns
        -------
        dict
            ``staged_equals_active`` (0/1), ``active_crc`` and ``staged_crc`` (CRC-32),
            ``boot_id`` and ``boot_count`` of the board's current boot.

        Raises
        ------
        StageError, DeviceError
            As :meth:`staged_crc`.
        """
        clean, a, s = struct.unpack("<BII", self._one(Cmd.STATUS)[:9])
        return {"staged_equals_active": clean, "active_crc": a, "staged_crc": s,
                "boot_id": self._boot_id or 0, "boot_count": self.boot_count}

    def read_active(self) -> bytes:
        """Read the whole active image back from the board (never from a cache)."""
        info = self.info()
        reqs = []
        for bi, lay in enumerate(info.banks):
            for off in range(0, lay.nbytes, self.max_chunk):
                n = min(self.max_chunk, lay.nbytes - off)
                reqs.append((Cmd.READ_ACTIVE, struct.pack("<BHH", bi, off, n)))
        replies = self._exchange(reqs)
        for (_, p), (s, d) in zip(reqs, replies, strict=True):
            if s != Nak.ACK or len(d) != struct.unpack("<H", p[3:5])[0]:
                raise DeviceError(f"{self.name}: READ_ACTIVE refused or short: "
                                  f"{_nak_name(s)}, {len(d)} bytes")
        return b"".join(d for _, d in replies)

    def store_beam(self, slot: int) -> int:
        """Store the staged image in beam slot ``slot`` (BEAM_STORE).

        Returns
        -------
        int
            CRC-32 of the stored image.

        Raises
        ------
        StageError
            A NAK, e.g. a bad slot (``latch_sent=False``).
        DeviceError
            No valid reply within the operation deadline.
        """
        return struct.unpack("<I", self._one(Cmd.BEAM_STORE, bytes([slot]))[:4])[0]

    def select_beam(self, slot: int, expected_crc: int) -> int:
        """Make beam slot ``slot`` active if its CRC-32 is ``expected_crc``
        (BEAM_SELECT).

        Returns
        -------
        int
            CRC-32 of the active image after the select.

        Raises
        ------
        StageError
            A NAK, e.g. an empty slot or a CRC mismatch (``latch_sent=False``), or the
            select's outcome is uncertain (``latch_sent=True``).
        """
        data = self._one(Cmd.BEAM_SELECT, struct.pack("<BI", slot, expected_crc), latch=True)
        return struct.unpack("<I", data[:4])[0]

    def reset(self) -> None:
        """Reboot the board and open a new session (the active image survives in NVM).

        The host's copy of the active image is kept only if the board's CRC confirms it.
        """
        self._one(Cmd.RESET)
        self._resync(self._deadline(), "RESET command")

    def close(self) -> None:
        """End the session (BYE, so the next host need not wait for the lease) and close
        the link. Never raises."""
        try:
            self._exchange([(Cmd.BYE, b"")], deadline=self._now() + self.timeout,
                           recover=False)
        except Exception:  # closing must not raise
            log.debug("%s: BYE not answered", self.name)
        self.transport.close()

    def __enter__(self) -> RfctlBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nak_name(status: int) -> str:
    return Nak(status).name if status in Nak._value2member_map_ else f"status {status}"


def open_rfctl_board(profile: BoardProfile, *, url: str | None = None, firmware=None,
                     exclusive: bool = True, name: str | None = None,
                     session: int | None = None) -> RfctlBoard:
    """Entry point ``rfctl-serial``: open the board a profile describes.

    ``firmware=`` (an in-process simulated firmware, supplied by
    :func:`rfctl.hal.discovery.open_device` for ``sim://`` links) bypasses the serial port;
    anything else goes through pyserial's ``serial_for_url``, and a lost link is reopened
    within the operation deadline.

    Raises
    ------
    BusyError
        The port is locked, or the board is in a live session with another host.
    """
    transport, reopen = open_link(profile, url=url, firmware=firmware, exclusive=exclusive)
    with closed_on_error(transport):
        board = RfctlBoard(profile, transport, name=name, reopen=reopen, session=session)
        board.url = url or profile.link.url
        return board
