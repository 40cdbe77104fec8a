"""Programming boards atomically: the device interface and ``program``.

A board holds a *staged* and an *active* image, each the concatenation of its banks'
packed codes (bank order of the board; each bank packed MSB-first at its bit width and
padded to whole bytes). :func:`program` writes only the bytes that differ from the
image last verified on the board (the delta), has the board check the staged CRC-32
against the one the host computed, latches (staged → active in one step), and verifies
the active CRC-32 the board reports after the latch.

Failure semantics, which :class:`ProgramError` states in ``holds``:

- before the latch: the board keeps its previous active image (``holds="previous"``);
- after a latch whose outcome is uncertain (reply lost, verify failed): the HAL asks the
  board for its active CRC and reports ``"new"``, ``"previous"`` or ``"unknown"``.

Because the board latches all banks in one step, an active image is never a mixture.

Drivers implement :class:`Device`; the HAL never imports a concrete driver. Drivers are
found through the entry-point group ``rfctl.drivers`` (:func:`open_device`).
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rfctl.config import BoardProfile
from rfctl.errors import ConfigError, DeviceError, HardwareConstraintError, RfctlError
from rfctl.hal.banks import handler
from rfctl.hal.image import DeviceImage
from rfctl.hal.quantize import compile_board

__all__ = [
    "BankLayout",
    "Device",
    "DeviceInfo",
    "LinkStats",
    "ProgramError",
    "ProgramResult",
    "StageError",
    "check_layout",
    "delta_writes",
    "image_crc",
    "image_from_bytes",
    "layout_from_profile",
    "pack_codes",
    "pack_image",
    "program",
    "program_many",
    "select_beam",
    "store_beam",
    "unpack_codes",
    "unpack_image",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class BankLayout:
    """One bank as a device reports it (and as a profile declares it)."""

    name: str
    kind: str
    count: int
    bits: int

    @property
    def nbytes(self) -> int:
        """Packed size, bytes."""
        return math.ceil(self.count * self.bits / 8)


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself (IDENT).

    Attributes
    ----------
    model, firmware : str
    banks : tuple of BankLayout
    boot_id : int
        Changes at every (re)boot of the device.
    slots : int
        Stored-beam slots (0 if the device has none).
    """

    model: str
    firmware: str
    banks: tuple[BankLayout, ...]
    boot_id: int = 0
    slots: int = 0

    @cached_property
    def offsets(self) -> list[int]:
        """Byte offset of each bank in the image."""
        out, o = [], 0
        for b in self.banks:
            out.append(o)
            o += b.nbytes
        return out

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.banks)


def _bank_bits(bank: Any) -> int:
    return handler(bank.kind).bits(bank)  # -1: a table's width is known after compiling


def layout_from_profile(profile: BoardProfile, codebook_bits: dict[str, int] | None = None
                        ) -> tuple[BankLayout, ...]:
    """The bank layout a board with this profile must report.

    Parameters
    ----------
    profile : BoardProfile
    codebook_bits : dict, optional
        Bit widths of table-based banks (from :func:`rfctl.hal.compile_board`).
    """
    out = []
    for b in profile.banks:
        bits = _bank_bits(b)
        if bits < 0:
            if codebook_bits is None or b.name not in codebook_bits:
                codebook_bits = {k: v.bits for k, v in compile_board(profile).codebooks.items()}
            bits = codebook_bits[b.name]
        out.append(BankLayout(b.name, b.kind, int(b.count), int(bits)))
    return tuple(out)


# --------------------------------------------------------------------------- packing
def pack_codes(codes: NDArray[np.integer], bits: int) -> bytes:
    """Pack codes MSB-first at ``bits`` bits each, zero-padded to whole bytes."""
    c = np.asarray(codes)
    if c.size and np.any(c >> bits):  # also catches negative codes (arithmetic shift)
        raise HardwareConstraintError(f"a code does not fit in {bits} bits")
    if bits == 1:
        return np.packbits(c.astype(np.uint8)).tobytes()
    if bits <= 8:
        bitmat = np.unpackbits(c.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:]
    else:
        shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
        bitmat = ((c.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bitmat).tobytes()


def unpack_codes(data: bytes, bits: int, count: int) -> NDArray[np.int64]:
    """Inverse of :func:`pack_codes`."""
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return flat.reshape(count, bits).astype(np.int64) @ weights


def check_layout(image: DeviceImage, info: DeviceInfo) -> None:
    """Refuse an image that does not fit the device's bank layout.

    Raises
    ------
    HardwareConstraintError
        Naming the first mismatch (model, unknown bank, kind, count or bit width).
    """
    if image.model != info.model:
        raise HardwareConstraintError(
            f"image is for model {image.model!r}, the device reports {info.model!r}")
    by_name = {b.name: b for b in info.banks}
    for name, img in image.banks.items():
        lay = by_name.get(name)
        if lay is None:
            raise HardwareConstraintError(
                f"image bank {name!r} does not exist on the device (banks: "
                f"{', '.join(by_name)})", bank=name)
        if (lay.kind, lay.count, lay.bits) != (img.kind, img.count, img.bits):
            raise HardwareConstraintError(
                f"bank {name!r}: image is {img.kind}/{img.count} elements/{img.bits} bits, "
                f"device has {lay.kind}/{lay.count}/{lay.bits}", bank=name)


def pack_image(image: DeviceImage, info: DeviceInfo, base: bytes | None) -> bytes:
    """Whole-image bytes: the image's banks packed, other banks taken from ``base``.

    Raises
    ------
    HardwareConstraintError
        If the image does not fit the layout, or leaves banks out while ``base`` (the
        verified active image) is unknown.
    """
    check_layout(image, info)
    return _pack_checked(image, info, base)


def _pack_checked(image: DeviceImage, info: DeviceInfo, base: bytes | None) -> bytes:
    parts = []
    for lay, off in zip(info.banks, info.offsets, strict=True):
        bank = image.banks.get(lay.name)
        if bank is not None:
            parts.append(bank.packed)  # check_layout made sure bank.bits == lay.bits
        elif base is not None:
            parts.append(base[off: off + lay.nbytes])
        else:
            raise HardwareConstraintError(
                f"image leaves bank {lay.name!r} out and the board's active image is "
                "unknown; read it first or give every bank", bank=lay.name)
    return b"".join(parts)


def unpack_image(data: bytes, info: DeviceInfo) -> dict[str, NDArray[np.int64]]:
    """Codes per bank from whole-image bytes."""
    return {lay.name: unpack_codes(data[off: off + lay.nbytes], lay.bits, lay.count)
            for lay, off in zip(info.banks, info.offsets, strict=True)}


def image_from_bytes(data: bytes, info: DeviceInfo, board: str) -> DeviceImage:
    """A DeviceImage holding exactly the codes in ``data`` (e.g. read back from a board),
    so that it can be programmed again (restoring a board)."""
    from rfctl.hal.image import BankImage

    banks = {}
    for lay, codes in zip(info.banks, unpack_image(data, info).values(), strict=True):
        z = np.zeros(codes.size)
        banks[lay.name] = BankImage(lay.name, lay.kind, codes, lay.bits, codes, codes, z)
    return DeviceImage(board=board, model=info.model, banks=banks)


def image_crc(data: bytes) -> int:
    """CRC-32 (zlib) of whole-image bytes."""
    return zlib.crc32(data) & 0xFFFFFFFF


def delta_writes(old: bytes | None, new: bytes, info: DeviceInfo, *, chunk: int,
                 merge_gap: int = 12) -> list[tuple[int, int, bytes]]:
    """Writes that turn ``old`` into ``new``: (bank index, offset in bank, data).

    Runs of changed bytes closer than ``merge_gap`` are merged (a frame costs about
    that much overhead); runs longer than ``chunk`` are split.
    """
    offsets = info.offsets
    ends = [o + b.nbytes for o, b in zip(offsets, info.banks, strict=True)]
    if old is None:
        spans = [(bi, 0, e - o - 1) for bi, (o, e) in enumerate(zip(offsets, ends,
                                                                     strict=True)) if e > o]
        runs_by_bank = {bi: [(a, b)] for bi, a, b in spans}
    else:
        idx = np.flatnonzero(np.frombuffer(new, np.uint8) != np.frombuffer(old, np.uint8))
        runs_by_bank = {}
        if idx.size:
            # split the changed bytes at bank boundaries, then into runs per bank
            bank_of = np.searchsorted(np.asarray(ends), idx, side="right")
            cut = np.flatnonzero((np.diff(idx) > merge_gap) | (np.diff(bank_of) != 0))
            starts = np.concatenate([idx[:1], idx[cut + 1]]).tolist()
            stops = np.concatenate([idx[cut], idx[-1:]]).tolist()
            for a, b in zip(starts, stops, strict=True):
                bi = int(np.searchsorted(ends, a, side="right"))
                runs_by_bank.setdefault(bi, []).append((a - offsets[bi], b - offsets[bi]))
    writes: list[tuple[int, int, bytes]] = []
    for bi in sorted(runs_by_bank):
        base = offsets[bi]
        for a, b in runs_by_bank[bi]:
            for s in range(a, b + 1, chunk):
                e = min(b + 1, s + chunk)
                writes.append((bi, s, new[base + s: base + e]))
    return writes


# --------------------------------------------------------------------------- device API
@dataclass
class LinkStats:
    """Counters a driver keeps (cumulative)."""

    bytes_tx: int = 0
    bytes_rx: int = 0
    frames_tx: int = 0
    retries: int = 0
    timeouts: int = 0

    def copy(self) -> LinkStats:
        return LinkStats(**self.__dict__)

    def since(self, before: LinkStats) -> LinkStats:
        return LinkStats(**{k: getattr(self, k) - getattr(before, k) for k in self.__dict__})


class StageError(DeviceError):
    """A device operation failed; ``latch_sent`` tells whether a latch may have executed.

    Attributes
    ----------
    latch_sent : bool
        True if a LATCH (or beam select) request left the host, so the board may hold the
        new image; False means the board certainly kept its previous active image.
    """

    def __init__(self, message: str, *, latch_sent: bool = False,
                 cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.latch_sent = latch_sent
        self.cause = cause


@runtime_checkable
class Device(Protocol):
    """What :func:`program` needs from a driver.

    A driver keeps ``verified_active`` (the whole-image bytes last verified on the
    board, or ``None`` when unknown) and ``staged_clean`` (staged is known to equal
    active). It must set ``verified_active = None`` when it notices the board rebooted
    and cannot confirm the active image.
    """

    name: str
    verified_active: bytes | None
    staged_clean: bool
    stats: LinkStats

    def info(self) -> DeviceInfo: ...

    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None: ...

    def latch(self, image_crc: int) -> int: ...

    def active_crc(self) -> int: ...

    def read_active(self) -> bytes: ...

    def store_beam(self, slot: int) -> int: ...

    def select_beam(self, slot: int, expected_crc: int) -> int: ...


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ProgramResult:
    """What a successful program call did.

    Attributes
    ----------
    device : str
    crc : int
        CRC-32 of the active image now on the board.
    payload_bytes : int
        Image bytes written (the delta).
    full_bytes : int
        Size of the whole image.
    writes : int
        WRITE_STAGED frames.
    stats : LinkStats
        Bytes on the wire, retries and timeouts of this call.
    elapsed_s : float
    """

    device: str
    crc: int
    payload_bytes: int
    full_bytes: int
    writes: int
    stats: LinkStats
    elapsed_s: float


class ProgramError(DeviceError):
    """Programming failed; says which image each board holds.

    Attributes
    ----------
    holds : dict of str to str
        Per device name: ``"previous"``, ``"new"`` or ``"unknown"`` (with the reason in
        the message).
    """

    def __init__(self, message: str, *, holds: dict[str, str],
                 cause: BaseException | None = None) -> None:
        detail = ", ".join(f"{k} holds the {v} image" if v != "unknown" else
                           f"{k}: active image unknown" for k, v in holds.items())
        super().__init__(f"{message} ({detail})")
        self.holds = holds
        self.cause = cause


@dataclass
class _Plan:
    device: Any
    new: bytes
    crc: int
    prev: bytes | None
    writes: list[tuple[int, int, bytes]] = field(default_factory=list)


def _plan(device: Device, image: DeviceImage, chunk: int | None) -> _Plan:
    info = device.info()
    check_layout(image, info)  # before a single programming byte is sent
    prev = device.verified_active
    if prev is None and len(image.banks) < len(info.banks):
        # the image leaves banks as they are: read the board's image to keep them
        prev = device.read_active()
        device.verified_active = prev
    new = _pack_checked(image, info, prev)
    ck = chunk or getattr(device, "max_chunk", 256)
    return _Plan(device, new, image_crc(new), prev, delta_writes(prev, new, info, chunk=ck))


def _classify(device: Device, plan: _Plan) -> str:
    """After an uncertain latch: what does the board hold?"""
    try:
        crc = device.active_crc()
    except RfctlError as exc:
        log.warning("%s: cannot read the active CRC after a failed latch: %s", device.name, exc)
        return "unknown"
    if crc == plan.crc:
        return "new"
    if plan.prev is not None and crc == image_crc(plan.prev):
        return "previous"
    return "unknown"


def program(device: Device, image: DeviceImage, *, chunk: int | None = None) -> ProgramResult:
    """Program one board: delta-write staged, check staged CRC, latch, verify active CRC.

    Parameters
    ----------
    device : Device
        An open driver.
    image : DeviceImage
        From :func:`rfctl.hal.quantize` for this board's profile. Banks the image leaves
        out keep their current contents.
    chunk : int, optional
        Largest payload per WRITE_STAGED frame (default: the driver's).

    Returns
    -------
    ProgramResult

    Raises
    ------
    HardwareConstraintError
        The image does not fit the device's layout (nothing was sent).
    ProgramError
        The board holds the previous image (failure before the latch, or a latch that did
        not take), the new image (verified after an uncertain latch: then no error is
        raised), or an unknown one; ``holds`` says which.
    """
    t0 = time.perf_counter()
    before = device.stats.copy()
    plan = _plan(device, image, chunk)
    if plan.prev is not None and plan.prev == plan.new:
        return ProgramResult(device.name, plan.crc, 0, len(plan.new), 0,
                             device.stats.since(before), time.perf_counter() - t0)
    try:
        # a full write (previous image unknown) overwrites every staged byte: no sync
        sync = not device.staged_clean and plan.prev is not None
        active = device.stage(plan.writes, plan.crc, sync=sync, latch=True)
    except StageError as exc:
        holds = _classify(device, plan) if exc.latch_sent else "previous"
        if holds == "new":
            log.info("%s: latch outcome confirmed by active CRC after: %s", device.name, exc)
            device.verified_active = plan.new
            device.staged_clean = True
            active = plan.crc
        else:
            device.staged_clean = False
            if holds == "unknown":
                device.verified_active = None
            raise ProgramError(f"{device.name}: programming failed: {exc}",
                               holds={device.name: holds}, cause=exc) from exc
    if active != plan.crc:
        holds = "previous" if plan.prev is not None and active == image_crc(plan.prev) \
            else "unknown"
        device.staged_clean = False
        if holds == "unknown":
            device.verified_active = None
        raise ProgramError(
            f"{device.name}: latch did not take: active CRC {active:#010x}, expected "
            f"{plan.crc:#010x}", holds={device.name: holds})
    device.verified_active = plan.new
    device.staged_clean = True
    payload = sum(len(w[2]) for w in plan.writes)
    res = ProgramResult(device.name, plan.crc, payload, len(plan.new), len(plan.writes),
                        device.stats.since(before), time.perf_counter() - t0)
    log.info("%s: programmed %d of %d bytes in %d writes, %.2f ms, %d retries",
             device.name, payload, len(plan.new), len(plan.writes), res.elapsed_s * 1e3,
             res.stats.retries)
    return res


def program_many(pairs: Sequence[tuple[Device, DeviceImage]], *, chunk: int | None = None
                 ) -> list[ProgramResult]:
    """Program several boards: stage all, then latch all.

    If any board fails to stage, none is latched (all keep their previous images). If a
    latch fails, the error says which board holds which image.

    Raises
    ------
    ProgramError
        With ``holds`` for every board.
    """
    t0 = time.perf_counter()
    befores = [d.stats.copy() for d, _ in pairs]
    plans = [_plan(d, img, chunk) for d, img in pairs]
    for i, p in enumerate(plans):
        try:
            p.device.stage(p.writes, p.crc, sync=not p.device.staged_clean, latch=False)
        except StageError as exc:
            for q in plans[: i + 1]:
                q.device.staged_clean = False
            raise ProgramError(f"staging failed on {p.device.name}, nothing latched: {exc}",
                               holds={q.device.name: "previous" for q in plans},
                               cause=exc) from exc
    holds: dict[str, str] = {}
    errors = []
    for p in plans:
        try:
            active = p.device.latch(p.crc)
            h = "new" if active == p.crc else _classify(p.device, p)
        except StageError as exc:
            errors.append(f"{p.device.name}: {exc}")
            h = _classify(p.device, p) if exc.latch_sent else "previous"
        holds[p.device.name] = h
        if h == "new":
            p.device.verified_active = p.new
            p.device.staged_clean = True
        else:
            p.device.staged_clean = False
            if h == "unknown":
                p.device.verified_active = None
    if any(h != "new" for h in holds.values()):
        raise ProgramError("latch failed on some boards: " + "; ".join(errors or
                           ["active CRC differs after latch"]), holds=holds)
    return [ProgramResult(p.device.name, p.crc, sum(len(w[2]) for w in p.writes),
                          len(p.new), len(p.writes), p.device.stats.since(b),
                          time.perf_counter() - t0) for p, b in zip(plans, befores, strict=True)]


def store_beam(device: Device, slot: int, image: DeviceImage, *, chunk: int | None = None
               ) -> int:
    """Stage ``image`` and store it in beam slot ``slot`` (the active image is unchanged).

    Returns
    -------
    int
        CRC-32 of the stored image (verified against the board's).
    """
    plan = _plan(device, image, chunk)
    # a stored beam is a whole image: write everything that differs from the verified
    # active image (staged is synced to active first)
    try:
        device.stage(plan.writes, plan.crc, sync=not device.staged_clean, latch=False)
        crc = device.store_beam(slot)
    except StageError as exc:
        device.staged_clean = False
        raise ProgramError(f"{device.name}: storing beam {slot} failed: {exc}",
                           holds={device.name: "previous"}, cause=exc) from exc
    device.staged_clean = False  # staged now differs from active
    if crc != plan.crc:
        raise ProgramError(f"{device.name}: beam slot {slot} CRC {crc:#010x} != "
                           f"{plan.crc:#010x}", holds={device.name: "previous"})
    beams = getattr(device, "beams", None)
    if isinstance(beams, dict):
        beams[slot] = (plan.crc, plan.new)
    return crc


def select_beam(device: Device, slot: int, expected_crc: int | None = None) -> int:
    """Make stored beam ``slot`` active (the fast path), verified by CRC.

    Parameters
    ----------
    expected_crc : int, optional
        CRC of the stored image; defaults to the one recorded by :func:`store_beam`.

    Raises
    ------
    ConfigError
        No CRC is known for the slot.
    ProgramError
        The select failed; says which image the board holds.
    """
    beams = getattr(device, "beams", {}) or {}
    new = None
    if expected_crc is None:
        if slot not in beams:
            raise ConfigError(f"{device.name}: no image stored in beam slot {slot} by this "
                              "session; give expected_crc", field="slot", reason="unknown slot")
        expected_crc, new = beams[slot]
    prev = device.verified_active
    try:
        active = device.select_beam(slot, expected_crc)
    except StageError as exc:
        plan = _Plan(device, new or b"", expected_crc, prev)
        h = _classify(device, plan) if exc.latch_sent else "previous"
        if h != "new":
            device.verified_active = prev if h == "previous" else None
            raise ProgramError(f"{device.name}: selecting beam {slot} failed: {exc}",
                               holds={device.name: h}, cause=exc) from exc
        active = expected_crc
    if active != expected_crc:
        device.verified_active = None
        raise ProgramError(f"{device.name}: beam {slot} select: active CRC {active:#010x} "
                           f"!= {expected_crc:#010x}", holds={device.name: "unknown"})
    device.verified_active = new
    device.staged_clean = new is not None
    return active
