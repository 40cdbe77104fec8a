"""DMA element tunings: ``ArrayState.dma`` (Im Y_s → Lorentzian response q) → the index of
the nearest entry (complex distance) of a measured or generated tuning table."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rfctl.config import BoardProfile, LorentzianBank
from rfctl.errors import HardwareConstraintError
from rfctl.hal.codebooks import LorentzianCodebook, lorentzian_arc_table
from rfctl.hal.image import BankImage
from rfctl.state import ArrayState

from .base import BankHandler, check_count, check_finite, load_code_table, register

log = logging.getLogger(__name__)


@register
class LorentzianHandler(BankHandler):
    """DMA Lorentzian tunings: nearest entry of a tuning table (complex distance)."""

    kind = "lorentzian"
    state_part = "dma"

    def compile(self, profile: BoardProfile, bank: LorentzianBank) -> LorentzianCodebook:
        if bank.arc is not None:
            table = lorentzian_arc_table(bank.arc.bits, bank.arc.psi_min, bank.arc.psi_max)
        else:
            table = load_code_table(profile, bank, ["re", "im"])
        return LorentzianCodebook(table, bank.count)

    def bits(self, bank: LorentzianBank, codebook: Any = None) -> int:
        if codebook is not None:
            return int(codebook.bits)
        return bank.arc.bits if bank.arc is not None else -1

    def quantize(self, bank: LorentzianBank, state: ArrayState,
                 codebook: LorentzianCodebook) -> BankImage:
        tuning = state.dma
        check_count(bank, tuning.b.size, "DMA element tunings")
        check_finite(bank, tuning.b)
        q = tuning.response
        oor = codebook.out_of_range(q)
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
        codes, realised, err = codebook.quantize(q)
        return BankImage(bank.name, bank.kind, codes, codebook.bits, q, realised, err,
                         unit="|Δq|", out_of_range=n_oor)

    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        return {"dma": state.dma.from_response(image.realised)}
