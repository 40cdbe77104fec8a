"""Device images: per bank, the integer codes for a board and what they realise; the
bank layout of a board's memory, the packing of codes into bytes, and the image CRC.

Pure: no I/O, and nothing from :mod:`rfctl.hal.device` (the device seam builds on this
module, never the other way round).

An image on a board is the concatenation of its banks in board order. Each bank is its
codes packed MSB-first at the bank's bit width, zero-padded to a whole byte. The image
checksum is CRC-32 (``zlib.crc32``) over the whole image.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rfctl.errors import HardwareConstraintError

__all__ = [
    "BankImage",
    "BankLayout",
    "DeviceImage",
    "ImageLayout",
    "LayoutLike",
    "check_layout",
    "delta_writes",
    "image_crc",
    "image_from_bytes",
    "pack_codes",
    "pack_image",
    "unpack_codes",
    "unpack_image",
]


@dataclass(frozen=True)
class BankImage:
    """The codes of one actuator bank and the quantization they cost.

    Attributes
    ----------
    name, kind : str
        Bank name and kind (as in the board profile).
    codes : ndarray, shape (count,) int
        One code per element, each in ``[0, 2**bits)``.
    bits : int
        Code width.
    target : ndarray, shape (count,)
        Requested value per element (rad for phases, complex q for Lorentzian, 0/1 for
        binary banks, candidate index for the feed mux).
    realised : ndarray, shape (count,)
        Value the code realises, same unit.
    error : ndarray, shape (count,) float
        Per-element error: signed wrapped phase error (rad) for phase banks, complex
        distance for Lorentzian banks, 0 for exact (binary, index) banks.
    unit : str
        Unit of ``error``.
    out_of_range : int
        Elements whose target lay outside the bank's range (only possible with an
        explicit "nearest" policy; otherwise quantizing raised).
    binary : bool
        One bit per element with 1 = on (switches, diodes): the report counts them.
    """

    name: str
    kind: str
    codes: NDArray[np.int64]
    bits: int
    target: NDArray
    realised: NDArray
    error: NDArray[np.float64]
    unit: str = ""
    out_of_range: int = 0
    binary: bool = False

    def __post_init__(self) -> None:
        # an image is a value: freeze the code array so cached packings stay true
        codes = np.array(self.codes, dtype=np.int64)
        codes.flags.writeable = False
        object.__setattr__(self, "codes", codes)

    @cached_property
    def packed(self) -> bytes:
        """The codes packed MSB-first at ``bits`` bits each (the bank's bytes on a board)."""
        return pack_codes(self.codes, self.bits)

    @property
    def count(self) -> int:
        """Number of elements (codes) in the bank."""
        return int(self.codes.size)

    @property
    def max_error(self) -> float:
        """Largest ``|realised − target|`` over the bank, in the bank's ``unit`` (0 when
        empty)."""
        return float(np.max(np.abs(self.error))) if self.error.size else 0.0

    @property
    def rms_error(self) -> float:
        """Root-mean-square ``|realised − target|`` over the bank, in the bank's ``unit``
        (0 when empty)."""
        return float(np.sqrt(np.mean(np.abs(self.error) ** 2))) if self.error.size else 0.0

    @property
    def n_on(self) -> int:
        """Elements with a non-zero code."""
        return int(np.count_nonzero(self.codes))


@dataclass(frozen=True)
class DeviceImage:
    """Everything one board must hold: a :class:`BankImage` per programmed bank.

    Attributes
    ----------
    board : str
        Board profile name.
    model : str
        Board model the image is meant for.
    banks : dict of str to BankImage
        In profile order.
    """

    board: str
    model: str
    banks: dict[str, BankImage] = field(default_factory=dict)

    def report(self) -> list[dict[str, object]]:
        """One row per bank: name, kind, count, bits, max and RMS error, unit, and for
        binary banks the number of elements on (``None`` otherwise)."""
        return [
            {
                "bank": b.name,
                "kind": b.kind,
                "count": b.count,
                "bits": b.bits,
                "max_error": b.max_error,
                "rms_error": b.rms_error,
                "unit": b.unit,
                "on": b.n_on if b.binary else None,
                "out_of_range": b.out_of_range,
            }
            for b in self.banks.values()
        ]


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class BankLayout:
    """One bank as a device reports it (and as a profile declares it).

    Attributes
    ----------
    name, kind : str
    count : int
        Elements.
    bits : int
        Code width per element.
    """

    name: str
    kind: str
    count: int
    bits: int

    @property
    def nbytes(self) -> int:
        """Packed size, bytes."""
        return math.ceil(self.count * self.bits / 8)


@dataclass(frozen=True)
class ImageLayout:
    """The memory layout of one board model: its banks in board order.

    Attributes
    ----------
    model : str
    banks : tuple of BankLayout
    """

    model: str
    banks: tuple[BankLayout, ...]

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
        """Whole-image size, bytes."""
        return sum(b.nbytes for b in self.banks)


class LayoutLike(Protocol):
    """Anything with a model, banks in board order and their byte offsets (an
    :class:`ImageLayout`, or the ``DeviceInfo`` a device reports)."""

    @property
    def model(self) -> str:
        """Board model name."""
        ...

    @property
    def banks(self) -> tuple[BankLayout, ...]:
        """Bank layouts in board order."""
        ...

    @property
    def offsets(self) -> list[int]:
        """Byte offset of each bank in the whole image, then the image size (length
        ``len(banks) + 1``)."""
        ...

    @property
    def nbytes(self) -> int:
        """Whole-image size, bytes."""
        ...


# --------------------------------------------------------------------------- packing
def pack_codes(codes: NDArray[np.integer], bits: int) -> bytes:
    """Pack codes MSB-first at ``bits`` bits each, zero-padded to whole bytes.

    Raises
    ------
    HardwareConstraintError
        A code is negative or does not fit in ``bits`` bits.
    """
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
    """Inverse of :func:`pack_codes`: ``count`` codes of ``bits`` bits, shape (count,)."""
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    return flat.reshape(count, bits).astype(np.int64) @ weights


def check_layout(image: DeviceImage, layout: LayoutLike) -> None:
    """Refuse an image that does not fit a bank layout.

    Raises
    ------
    HardwareConstraintError
        Naming the first mismatch (model, unknown bank, kind, count or bit width).
    """
    if image.model != layout.model:
        raise HardwareConstraintError(
            f"image is for model {image.model!r}, the device reports {layout.model!r}")
    by_name = {b.name: b for b in layout.banks}
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


def pack_image(image: DeviceImage, layout: LayoutLike, base: bytes | None) -> bytes:
    """Whole-image bytes: the image's banks packed, other banks taken from ``base``.

    Parameters
    ----------
    image : DeviceImage
    layout : ImageLayout
        Of the board (a :class:`rfctl.hal.device.DeviceInfo` is one).
    base : bytes or None
        Whole-image bytes the board holds (for banks the image leaves out).

    Raises
    ------
    HardwareConstraintError
        If the image does not fit the layout, or leaves banks out while ``base`` is
        unknown.
    """
    check_layout(image, layout)
    parts = []
    for lay, off in zip(layout.banks, layout.offsets, strict=True):
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


def unpack_image(data: bytes, layout: LayoutLike) -> dict[str, NDArray[np.int64]]:
    """Codes per bank from whole-image bytes.

    Parameters
    ----------
    data : bytes
        Whole-image bytes, ``layout.nbytes`` long.
    layout : LayoutLike
        The board's banks and offsets.

    Returns
    -------
    dict of str to ndarray of int, shape (count,) each
        In board order.

    Raises
    ------
    HardwareConstraintError
        ``data`` is not ``layout.nbytes`` long.
    """
    if len(data) != layout.nbytes:
        raise HardwareConstraintError(
            f"{len(data)} image bytes for a layout of {layout.nbytes} bytes "
            f"(model {layout.model!r})")
    return {lay.name: unpack_codes(data[off: off + lay.nbytes], lay.bits, lay.count)
            for lay, off in zip(layout.banks, layout.offsets, strict=True)}


def image_from_bytes(data: bytes, layout: LayoutLike, board: str) -> DeviceImage:
    """A DeviceImage holding exactly the codes in ``data`` (e.g. read back from a board),
    so that it can be programmed again (restoring a board).

    Parameters
    ----------
    data : bytes
        Whole-image bytes, ``layout.nbytes`` long.
    layout : LayoutLike
        The board's banks and offsets (a ``DeviceInfo`` is one).
    board : str
        Board profile name recorded in the image.

    Returns
    -------
    DeviceImage
        Every bank of the layout; per bank the codes, with target and realised equal to
        the codes and zero error (the physical values are not known from bytes).

    Raises
    ------
    HardwareConstraintError
        ``data`` is not ``layout.nbytes`` long.
    """
    banks = {}
    for lay, codes in zip(layout.banks, unpack_image(data, layout).values(), strict=True):
        z = np.zeros(codes.size)
        banks[lay.name] = BankImage(lay.name, lay.kind, codes, lay.bits, codes, codes, z)
    return DeviceImage(board=board, model=layout.model, banks=banks)


def image_crc(data: bytes) -> int:
    """CRC-32 (zlib) of whole-image bytes."""
    return zlib.crc32(data) & 0xFFFFFFFF


def delta_writes(old: bytes | None, new: bytes, layout: LayoutLike, *, chunk: int,
                 merge_gap: int = 12) -> list[tuple[int, int, bytes]]:
    """Writes that turn ``old`` into ``new``: (bank index, offset in bank, data).

    Runs of changed bytes closer than ``merge_gap`` are merged (a frame costs about
    that much overhead); runs longer than ``chunk`` are split. ``old=None`` writes every
    byte.

    Raises
    ------
    HardwareConstraintError
        ``old`` or ``new`` is not a whole image of this layout.
    """
    n = layout.nbytes
    if len(new) != n or (old is not None and len(old) != n):
        raise HardwareConstraintError(
            f"delta between images of {None if old is None else len(old)} and {len(new)} "
            f"bytes: the layout has {n}")
    offsets = layout.offsets
    ends = [o + b.nbytes for o, b in zip(offsets, layout.banks, strict=True)]
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
