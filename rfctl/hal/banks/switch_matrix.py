"""The RF switch network: ``ArrayState.switch`` (N_m × N_RF, bool) → one bit per switch,
row-major."""

from __future__ import annotations

from typing import Any

import numpy as np

from rfctl.config import SwitchMatrixBank
from rfctl.errors import HardwareConstraintError
from rfctl.hal.image import BankImage
from rfctl.state import ArrayState

from .base import BankHandler, binary_image, register


@register
class SwitchMatrixHandler(BankHandler):
    """RF switch networks: exact one-bit codes of S, row-major."""

    kind = "switch_matrix"
    state_part = "switch"
    binary = True

    def bits(self, bank: SwitchMatrixBank, codebook: Any = None) -> int:
        return 1

    def quantize(self, bank: SwitchMatrixBank, state: ArrayState, codebook: Any) -> BankImage:
        S = state.switch
        if S.shape != (bank.antennas, bank.rf_chains):
            raise HardwareConstraintError(
                f"bank {bank.name!r} is {bank.antennas} × {bank.rf_chains} but the "
                f"switch matrix is {S.shape[0]} × {S.shape[1]}", bank=bank.name,
            )
        return binary_image(bank, S.ravel())

    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        return {"switch": np.asarray(image.realised, bool).reshape(state.switch.shape)}
