"""The device seam: what the HAL needs from a board driver, and what a driver reports.

A board holds an *active* image (what its outputs show) and, if it has a staged buffer,
a *staged* image that a latch copies to active in one step. Drivers implement
:class:`Device`; the transactions built on it (``program``, ``program_many``, beams) live
in :mod:`rfctl.hal.program`, the image layout and packing in :mod:`rfctl.hal.image`, and
the entry points that find drivers in :mod:`rfctl.hal.discovery`. The HAL never imports
a concrete driver.

Guarantees every driver gives (and the transactions rely on):

- **Session truth.** ``verified_active`` is an image the board confirmed *in this
  session*; the driver sets it to ``None`` whenever it cannot vouch for it any more
  (a detected reset or reboot, a session taken over, a link it could not resume).
- **Bounded operations.** Every method retries damaged or lost traffic, and reopens a
  lost link, within the link's operation deadline (``timeout_s × (retries + 1)``); a
  detected reset adds at most one more deadline to open a new session and re-identify.
- **Honest failures.** Methods raise :class:`~rfctl.errors.DeviceError` subclasses only;
  a failure that may have changed the active image is a :class:`StageError` with
  ``latch_sent=True``.
- **Honest capabilities.** :class:`Capabilities` says what the board has; a board
  without beam memory says ``beam_slots=0`` and refuses beams instead of emulating them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from rfctl.config import BoardProfile
from rfctl.errors import DeviceError
from rfctl.hal.banks import handler
from rfctl.hal.image import BankLayout, ImageLayout
from rfctl.hal.quantize import compile_board

__all__ = [
    "Capabilities",
    "Device",
    "DeviceInfo",
    "LinkStats",
    "StageError",
    "layout_from_profile",
    "operation_deadline",
]


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself (IDENT), with its image layout.

    Attributes
    ----------
    model : str
    firmware : str
    banks : tuple of BankLayout
    boot_id : int
        Changes at every (re)boot of the device (0 when the device cannot tell).
    boot_count : int
        Boots since the board's non-volatile memory was made (0 when unknown).
    serial : str
        Serial number, if the board reports one.
    slots : int
        Stored-beam slots (0 if the device has none).
    """

    model: str
    firmware: str
    banks: tuple[BankLayout, ...]
    boot_id: int = 0
    boot_count: int = 0
    serial: str = ""
    slots: int = 0

    @cached_property
    def layout(self) -> ImageLayout:
        """The image layout (model and banks) of :mod:`rfctl.hal.image`."""
        return ImageLayout(self.model, self.banks)

    @property
    def offsets(self) -> list[int]:
        """Byte offset of each bank in the image."""
        return self.layout.offsets

    @property
    def nbytes(self) -> int:
        """Whole-image size, bytes."""
        return self.layout.nbytes


@dataclass(frozen=True)
class Capabilities:
    """What a board can do, so that the HAL never fakes a missing feature.

    Attributes
    ----------
    staged_buffer : bool
        The board holds a staged image and checks its CRC-32 against the host's before
        latching (a wrong delta base is refused by the board, not latched).
    atomic_latch : bool
        All outputs change together (a board never shows a mixture of two images).
    beam_slots : int
        Stored-beam slots (0: ``store_beam``/``select_beam`` are refused).
    max_chunk : int
        Largest image payload per write, bytes.
    sessions : bool
        Replies are bound to this host session (no stale replies from an older one).
    pipelined : bool
        The driver's ``stage`` takes two pipelining options (boards with a staged buffer,
        whose latch checks the staged CRC): ``then=(writes, crc)`` sends the next
        image's staged writes right behind the latch and leaves them in flight, so that
        they cross the line while the host measures (the next ``stage`` of that image
        adopts them, as the driver's ``prestaged_crc`` says; any other call abandons
        them); ``ask_active=True`` asks ACTIVE_CRC ahead of the writes and sends the
        latch only if the board does not already show the image (``asked_active_crc``).
    """

    staged_buffer: bool
    atomic_latch: bool
    beam_slots: int
    max_chunk: int
    sessions: bool
    pipelined: bool = False


@dataclass
class LinkStats:
    """Counters a driver keeps (cumulative).

    Attributes
    ----------
    bytes_tx, bytes_rx : int
        Bytes written to / read from the link.
    frames_tx : int
        Requests (frames or lines) transmitted, retransmissions included.
    retries : int
        Retransmitted requests.
    timeouts : int
        Silences of ``timeout_s`` that ended a wait.
    reconnects : int
        Links reopened after a loss.
    resets_seen : int
        Board resets or reboots the driver detected.
    """

    bytes_tx: int = 0
    bytes_rx: int = 0
    frames_tx: int = 0
    retries: int = 0
    timeouts: int = 0
    reconnects: int = 0
    resets_seen: int = 0

    def copy(self) -> LinkStats:
        """An independent snapshot of the counters."""
        return LinkStats(**self.__dict__)

    def since(self, before: LinkStats) -> LinkStats:
        """Counter differences ``self − before`` (what happened since a :meth:`copy`)."""
        return LinkStats(**{k: getattr(self, k) - getattr(before, k) for k in self.__dict__})


class StageError(DeviceError):
    """A device operation failed; says whether the active image may have changed.

    Attributes
    ----------
    latch_sent : bool
        True if a latch (or beam select, or a set on a board without a staged buffer)
        may have executed, so the board may hold the new image; False means the board
        certainly kept its previous active image.
    base_mismatch : bool
        The board refused the latch because its staged image is not the one the host
        computed (the delta's base was wrong); nothing was latched.
    session_lost : bool
        The board rebooted or ended the session during the operation; the driver has
        already opened a new session (if it could) and forgotten its copy of the board.
    cause : BaseException or None
    """

    def __init__(self, message: str, *, latch_sent: bool = False, base_mismatch: bool = False,
                 session_lost: bool = False, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.latch_sent = latch_sent
        self.base_mismatch = base_mismatch
        self.session_lost = session_lost
        self.cause = cause


def operation_deadline(link: Any) -> float:
    """The bound of one device operation, s: ``timeout_s × (retries + 1)``.

    ``timeout_s`` is the silence after which outstanding requests are sent again;
    damaged frames are retried as soon as the damage is seen, as often as the deadline
    allows.
    """
    return float(link.timeout_s) * (int(link.retries) + 1)


@runtime_checkable
class Device(Protocol):
    """What the transactions of :mod:`rfctl.hal.program` need from a driver.

    Attributes
    ----------
    name : str
        Used in errors, logs and ``ProgramError.holds``.
    capabilities : Capabilities
    verified_active : bytes or None
        Whole-image bytes the board confirmed in this session (None when unknown). The
        HAL sets it after a verified latch; the driver clears it on a detected reset.
    staged_clean : bool
        The staged image is known (in this session) to equal the active one.
    stats : LinkStats
    """

    name: str
    capabilities: Capabilities
    verified_active: bytes | None
    staged_clean: bool
    stats: LinkStats

    def info(self) -> DeviceInfo:
        """The board's identity and layout (from IDENT or the profile).

        Raises
        ------
        DeviceError
            The board does not answer within the operation deadline.
        """
        ...

    def stage(self, writes: Sequence[tuple[int, int, bytes]], image_crc: int, *,
              sync: bool, latch: bool) -> int | None:
        """Write ``writes`` (bank index, byte offset in the bank, data) into the staged
        image, first copying active → staged if ``sync``; then either latch (the board
        checks that the staged image's CRC-32 is ``image_crc``; returns the active CRC-32
        after the latch) or only check the staged CRC-32 (returns None).

        A driver with ``capabilities.pipelined`` also takes the keywords ``then`` and
        ``ask_active`` (see :class:`Capabilities`); the HAL passes them to no other.

        Raises
        ------
        StageError
            Anything went wrong; ``latch_sent`` and ``base_mismatch`` say what the board
            may have done.
        """
        ...

    def latch(self, image_crc: int) -> int:
        """Latch the staged image if its CRC-32 is ``image_crc``; returns the active
        CRC-32 after the latch. Raises StageError (``latch_sent=True`` if the outcome is
        uncertain)."""
        ...

    def active_crc(self) -> int:
        """CRC-32 of the active image as the board reports it now (never a cache).
        Reconnects within the deadline if the link was lost. Raises DeviceError."""
        ...

    def read_active(self) -> bytes:
        """The whole active image read from the board (never a cache). Raises
        DeviceError."""
        ...

    def store_beam(self, slot: int) -> int:
        """Store the staged image in beam slot ``slot``; returns its CRC-32. The active
        image does not change. Raises StageError, or DeviceError without beam slots."""
        ...

    def select_beam(self, slot: int, expected_crc: int) -> int:
        """Make slot ``slot`` active if its CRC-32 is ``expected_crc``; returns the active
        CRC-32 after. Raises StageError (``latch_sent=True`` if uncertain)."""
        ...

    def close(self) -> None:
        """End the session and release the link (never raises)."""
        ...


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
