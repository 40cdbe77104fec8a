"""PIN-diode pixel links: ``ArrayState.selection`` → one bit per diode joining two
neighbouring pixels (horizontal links row-major, then vertical links row-major). The
spacing and overlap rules are checked before any code exists."""

from __future__ import annotations

from typing import Any

import numpy as np

from rfctl.config import PinLinkBank
from rfctl.hal.image import BankImage
from rfctl.hal.pins import links_to_selection, selection_to_links
from rfctl.state import ArrayState, check_selection

from .base import BankHandler, binary_image, register


@register
class PinLinkHandler(BankHandler):
    """PIN-diode pixel links: the selection map as h then v link bits."""

    kind = "pin_links"
    state_part = "selection"
    binary = True

    def bits(self, bank: PinLinkBank, codebook: Any = None) -> int:
        return 1

    def quantize(self, bank: PinLinkBank, state: ArrayState, codebook: Any) -> BankImage:
        P = state.selection
        check_selection(P, h_s=bank.h_s, v_s=bank.v_s,
                        shape=(bank.rows - 1, bank.cols - 1), bank=bank.name)
        h, v = selection_to_links(P)
        return binary_image(bank, np.concatenate([h.ravel(), v.ravel()]))

    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        rows, cols_m1 = state.selection.shape[0] + 1, state.selection.shape[1]
        n_h = rows * cols_m1
        h = image.realised[:n_h].reshape(rows, cols_m1)
        v = image.realised[n_h:].reshape(rows - 1, cols_m1 + 1)
        return {"selection": links_to_selection(h, v)}
