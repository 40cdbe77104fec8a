"""Quantization: ``ArrayState`` → ``DeviceImage`` for a board profile, and back.

``quantize`` is a pure function. It checks everything a board would refuse — wrong
element counts, non-finite values, spacing or overlap violations of the selection map,
out-of-range Lorentzian targets, safety limits on how many elements are on — and raises
:class:`~rfctl.errors.HardwareConstraintError` before any image exists, so nothing can be
sent. State parts the board has no bank for are refused too (never dropped silently).

Which state part feeds which bank kind:

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

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rfctl.config import (
    BoardProfile,
    FeedMuxBank,
    LorentzianBank,
    PhaseBank,
    PinLinkBank,
    SwitchMatrixBank,
    read_table_csv,
)
from rfctl.errors import ConfigError, HardwareConstraintError
from rfctl.hal.codebooks import (
    LorentzianCodebook,
    TablePhaseCodebook,
    UniformPhaseCodebook,
    lorentzian_arc_table,
)
from rfctl.hal.image import BankImage, DeviceImage
from rfctl.hal.pins import feed_codes, links_to_selection, selection_to_links
from rfctl.state import ArrayState, check_selection

__all__ = ["CompiledBoard", "compile_board", "dequantize", "quantize"]

log = logging.getLogger(__name__)

_STATE_PART = {
    "phase": "phases",
    "switch_matrix": "switch",
    "pin_links": "selection",
    "feed_mux": "selection",
    "lorentzian": "dma",
}


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


def _load_offsets(profile: BoardProfile, bank: PhaseBank) -> np.ndarray | None:
    if bank.calibration_file is None:
        return None
    path = profile.resolve(bank.calibration_file)
    src = f"{profile.name}: banks.{bank.name}.calibration_file"
    tab = read_table_csv(path, ["element", "phase_offset_rad"], source=src)
    idx = tab[:, 0].astype(int)
    if not np.array_equal(np.sort(idx), np.arange(bank.count)) or not np.all(idx == tab[:, 0]):
        raise ConfigError(
            f"{src}: {path}: must list every element 0..{bank.count - 1} exactly once",
            source=src, field=f"banks.{bank.name}.calibration_file", reason="incomplete",
        )
    off = np.empty(bank.count)
    off[idx] = tab[:, 1]
    return off


def _load_code_table(profile: BoardProfile, bank: Any, cols: list[str]) -> np.ndarray:
    path = profile.resolve(bank.table_file)
    src = f"{profile.name}: banks.{bank.name}.table_file"
    tab = read_table_csv(path, ["code", *cols], source=src)
    codes = tab[:, 0]
    if not np.array_equal(codes, np.arange(len(codes))):
        raise ConfigError(
            f"{src}: {path}: codes must be 0, 1, …, {len(codes) - 1} in order",
            source=src, field=f"banks.{bank.name}.table_file", reason="bad code column",
        )
    return tab[:, 1] + 1j * tab[:, 2]


def compile_board(profile: BoardProfile) -> CompiledBoard:
    """Load the code books of a profile.

    Raises
    ------
    ConfigError
        Missing or malformed table or calibration file.
    """
    books: dict[str, Any] = {}
    for bank in profile.banks:
        if isinstance(bank, PhaseBank):
            off = _load_offsets(profile, bank)
            if bank.bits is not None:
                books[bank.name] = UniformPhaseCodebook(bank.bits, bank.count, off)
            else:
                entries = _load_code_table(profile, bank, ["i", "q"])
                try:
                    books[bank.name] = TablePhaseCodebook(entries, bank.count, off)
                except ValueError as exc:
                    raise ConfigError(f"{profile.name}: banks.{bank.name}: {exc}",
                                      field=f"banks.{bank.name}.table_file",
                                      reason=str(exc)) from None
        elif isinstance(bank, LorentzianBank):
            if bank.arc is not None:
                table = lorentzian_arc_table(bank.arc.bits, bank.arc.psi_min, bank.arc.psi_max)
            else:
                table = _load_code_table(profile, bank, ["re", "im"])
            books[bank.name] = LorentzianCodebook(table, bank.count)
    return CompiledBoard(profile=profile, codebooks=books)


def _need(bank: Any, got: int, what: str) -> None:
    if got != bank.count:
        raise HardwareConstraintError(
            f"bank {bank.name!r} has {bank.count} elements but the state gives {got} {what}",
            bank=bank.name,
        )


def _check_finite(bank: Any, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if np.any(bad):
        k = int(np.argmax(bad))
        raise HardwareConstraintError(
            f"bank {bank.name!r}: element {k} has a non-finite value ({values[k]})",
            bank=bank.name, element=k,
        )


def _binary_image(bank: Any, bits_on: np.ndarray) -> BankImage:
    codes = bits_on.astype(np.int64)
    return BankImage(
        name=bank.name, kind=bank.kind, codes=codes, bits=1, target=bits_on,
        realised=bits_on.copy(), error=np.zeros(codes.size), unit="",
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
    kinds = {b.kind for b in profile.banks}
    for kind_needed, part in (("phase", "phases"), ("switch_matrix", "switch"),
                              ("lorentzian", "dma")):
        if getattr(state, part) is not None and kind_needed not in kinds:
            raise HardwareConstraintError(
                f"the state sets {part} but board {profile.name!r} has no {kind_needed} bank"
            )
    if state.selection is not None and not kinds & {"pin_links", "feed_mux"}:
        raise HardwareConstraintError(
            f"the state sets a selection map but board {profile.name!r} has no pin_links bank"
        )

    banks: dict[str, BankImage] = {}
    for bank in profile.banks:
        part = getattr(state, _STATE_PART[bank.kind])
        if part is None:
            continue
        if isinstance(bank, PhaseBank):
            phases = state.phases
            _need(bank, phases.size, "phases")
            _check_finite(bank, phases)
            codes, realised, err = cb.codebooks[bank.name].quantize(phases)
            img = BankImage(bank.name, bank.kind, codes, cb.codebooks[bank.name].bits,
                            phases, realised, err, unit="rad")
        elif isinstance(bank, SwitchMatrixBank):
            S = state.switch
            if S.shape != (bank.antennas, bank.rf_chains):
                raise HardwareConstraintError(
                    f"bank {bank.name!r} is {bank.antennas} × {bank.rf_chains} but the "
                    f"switch matrix is {S.shape[0]} × {S.shape[1]}", bank=bank.name,
                )
            img = _binary_image(bank, S.ravel())
        elif isinstance(bank, PinLinkBank):
            P = state.selection
            check_selection(P, h_s=bank.h_s, v_s=bank.v_s,
                            shape=(bank.rows - 1, bank.cols - 1), bank=bank.name)
            h, v = selection_to_links(P)
            img = _binary_image(bank, np.concatenate([h.ravel(), v.ravel()]))
        elif isinstance(bank, FeedMuxBank):
            P = state.selection
            if P.shape != (bank.rows - 1, bank.cols - 1):
                raise HardwareConstraintError(
                    f"bank {bank.name!r} serves a {bank.rows - 1} × {bank.cols - 1} "
                    f"candidate grid, the selection map is {P.shape}", bank=bank.name,
                )
            codes = feed_codes(P)
            if codes.size != bank.rf_chains:
                raise HardwareConstraintError(
                    f"bank {bank.name!r} routes {bank.rf_chains} sub-6G RF chains but the "
                    f"selection map selects {codes.size} antennas", bank=bank.name,
                )
            bits = max(1, int(np.ceil(np.log2(bank.n_inputs))))
            img = BankImage(bank.name, bank.kind, codes, bits, codes.copy(), codes.copy(),
                            np.zeros(codes.size), unit="")
        elif isinstance(bank, LorentzianBank):
            tuning = state.dma
            _need(bank, tuning.b.size, "DMA element tunings")
            _check_finite(bank, tuning.b)
            book: LorentzianCodebook = cb.codebooks[bank.name]
            q = tuning.response
            oor = book.out_of_range(q)
            n_oor = int(np.count_nonzero(oor))
            if n_oor and bank.out_of_range == "raise":
                k = int(np.argmax(oor))
                raise HardwareConstraintError(
                    f"bank {bank.name!r}: {n_oor} element(s) outside the tuning table's "
                    f"range, first element {k} (Im Y_s = {tuning.b[k]:.4g} S, "
                    f"ψ = {np.angle(2 * q[k] + 1j):.3f} rad)", bank=bank.name, element=k,
                )
            if n_oor:
                log.warning("bank %s: %d element(s) out of the table's range, nearest "
                            "entry used", bank.name, n_oor)
            codes, realised, err = book.quantize(q)
            img = BankImage(bank.name, bank.kind, codes, book.bits, q, realised, err,
                            unit="|Δq|", out_of_range=n_oor)
        else:  # pragma: no cover - the config union is closed
            raise HardwareConstraintError(f"unsupported bank kind {bank.kind!r}")
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
    h = v = None
    for img in image.banks.values():
        if img.kind == "phase":
            changes["phases"] = np.asarray(img.realised, dtype=float)
        elif img.kind == "switch_matrix":
            changes["switch"] = np.asarray(img.realised, bool).reshape(state.switch.shape)
        elif img.kind == "pin_links":
            rows, cols_m1 = state.selection.shape[0] + 1, state.selection.shape[1]
            n_h = rows * cols_m1
            h = img.realised[:n_h].reshape(rows, cols_m1)
            v = img.realised[n_h:].reshape(rows - 1, cols_m1 + 1)
            changes["selection"] = links_to_selection(h, v)
        elif img.kind == "lorentzian":
            changes["dma"] = state.dma.from_response(img.realised)
    return state.replace(**changes)
