"""Quantization: ``ArrayState`` → ``DeviceImage`` for a board profile, and back.

``quantize`` is a pure function. It checks everything a board would refuse — wrong
element counts, non-finite values, spacing or overlap violations of the selection map,
out-of-range Lorentzian targets, safety limits on how many elements are on — and raises
:class:`~rfctl.errors.HardwareConstraintError` before any image exists, so nothing can be
sent. State parts the board has no bank for are refused too (never dropped silently).

Each bank kind is a handler in :mod:`rfctl.hal.banks` (one module per kind); these
functions loop over them. Which state part feeds which bank kind:

=================  ==========================  ===================================
bank kind          state part                   codes
=================  ==========================  ===================================
``phase``          ``phases`` (rad)             uniform b-bit or table index
``switch_matrix``  ``switch`` (N_m × N_RF)      one bit per switch, row-major
``pin_links``      ``selection``                h links then v links, one bit each
``feed_mux``       ``selection``                candidate index per sub-6G chain
``lorentzian``     ``dma`` (Im Y_s → q)         table index (nearest complex q)
=================  ==========================  ===================================

Compile a profile once with :func:`compile_board` (reads tables and calibration files)
when quantizing in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rfctl.config import BoardProfile
from rfctl.errors import HardwareConstraintError
from rfctl.hal.banks import handler, registry
from rfctl.hal.image import BankImage, DeviceImage
from rfctl.state import ArrayState

__all__ = ["CompiledBoard", "compile_board", "dequantize", "quantize"]


@dataclass(frozen=True)
class CompiledBoard:
    """A board profile with its code books loaded (tables, calibration offsets).

    Attributes
    ----------
    profile : BoardProfile
    codebooks : dict of str to codebook
        For phase and Lorentzian banks, keyed by bank name.
    """

    profile: BoardProfile
    codebooks: dict[str, Any] = field(default_factory=dict)


def compile_board(profile: BoardProfile) -> CompiledBoard:
    """Load the code books of a profile (each bank kind's handler loads its own).

    Raises
    ------
    ConfigError
        Missing or malformed table or calibration file.
    """
    books: dict[str, Any] = {}
    for bank in profile.banks:
        book = handler(bank.kind).compile(profile, bank)
        if book is not None:
            books[bank.name] = book
    return CompiledBoard(profile=profile, codebooks=books)


def _check_parts_have_banks(state: ArrayState, profile: BoardProfile) -> None:
    """A state part that no bank of the board takes is refused, never dropped."""
    parts_held = {handler(b.kind).state_part for b in profile.banks}
    for part in sorted({h.state_part for h in registry().values()}):
        if getattr(state, part) is not None and part not in parts_held:
            kinds = sorted(k for k, h in registry().items() if h.state_part == part)
            raise HardwareConstraintError(
                f"the state sets {part} but board {profile.name!r} has no bank for it "
                f"(a {' or '.join(kinds)} bank)"
            )


def quantize(state: ArrayState, board: BoardProfile | CompiledBoard) -> DeviceImage:
    """Turn an array state into the codes a board holds.

    Parameters
    ----------
    state : ArrayState
        Continuous settings. Banks whose state part is absent are left out of the image
        (the board keeps what it has); a state part with no bank on the board raises.
    board : BoardProfile or CompiledBoard
        The target board (compile it once with :func:`compile_board` in loops).

    Returns
    -------
    DeviceImage
        Codes, realised values and per-element errors for each bank.

    Raises
    ------
    HardwareConstraintError
        Wrong sizes, non-finite values, selection spacing/overlap violations,
        out-of-range Lorentzian targets (policy ``raise``), or a safety limit breached.
    """
    cb = board if isinstance(board, CompiledBoard) else compile_board(board)
    profile = cb.profile
    _check_parts_have_banks(state, profile)
    banks: dict[str, BankImage] = {}
    for bank in profile.banks:
        h = handler(bank.kind)
        if getattr(state, h.state_part) is None:
            continue
        img = h.quantize(bank, state, cb.codebooks.get(bank.name))
        if bank.max_on is not None and img.n_on > bank.max_on:
            raise HardwareConstraintError(
                f"bank {bank.name!r}: {img.n_on} elements on exceeds the safety limit "
                f"max_on = {bank.max_on}", bank=bank.name,
            )
        banks[bank.name] = img
    if not banks:
        raise HardwareConstraintError(
            f"the state sets nothing that board {profile.name!r} holds"
        )
    return DeviceImage(board=profile.name, model=profile.model, banks=banks)


def dequantize(image: DeviceImage, state: ArrayState) -> ArrayState:
    """The state a board holding ``image`` realises.

    Parameters
    ----------
    image : DeviceImage
        Quantized image (as from :func:`quantize`).
    state : ArrayState
        The continuous state it came from: parts without a bank (digital beamformers,
        the design record) are carried over unchanged.

    Returns
    -------
    ArrayState
        Phases, switches, selection and DMA tunings replaced by what the codes realise.
    """
    changes: dict[str, Any] = {}
    for img in image.banks.values():
        changes.update(handler(img.kind).dequantize(img, state))
    return state.replace(**changes)
