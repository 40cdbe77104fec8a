"""Sub-6 GHz feed switches: ``ArrayState.selection`` → per sub-6G RF chain, the index of
the candidate antenna it is routed to (row-major in the candidate grid)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rfctl.config import FeedMuxBank
from rfctl.errors import HardwareConstraintError
from rfctl.hal.image import BankImage
from rfctl.hal.pins import feed_codes
from rfctl.state import ArrayState

from .base import BankHandler, register


@register
class FeedMuxHandler(BankHandler):
    """Sub-6G feed switches: a candidate index per sub-6G RF chain."""

    kind = "feed_mux"
    state_part = "selection"

    def bits(self, bank: FeedMuxBank, codebook: Any = None) -> int:
        return max(1, math.ceil(math.log2(bank.n_inputs)))

    def quantize(self, bank: FeedMuxBank, state: ArrayState, codebook: Any) -> BankImage:
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
        return BankImage(bank.name, bank.kind, codes, self.bits(bank), codes.copy(),
                         codes.copy(), np.zeros(codes.size), unit="")

    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        return {}  # the selection it realises is the pin_links bank's (or the state's)
