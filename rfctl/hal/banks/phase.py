"""Phase shifters: ``ArrayState.phases`` (rad) → a uniform b-bit code or an I/Q-table
index per element, with optional per-element calibration offsets."""

from __future__ import annotations

from typing import Any

import numpy as np

from rfctl.config import BoardProfile, PhaseBank, read_table_csv
from rfctl.errors import ConfigError
from rfctl.hal.codebooks import TablePhaseCodebook, UniformPhaseCodebook
from rfctl.hal.image import BankImage
from rfctl.state import ArrayState

from .base import BankHandler, check_count, check_finite, load_code_table, register


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


@register
class PhaseHandler(BankHandler):
    """Phase-shifter banks (uniform or I/Q-table code books, optional calibration)."""

    kind = "phase"
    state_part = "phases"

    def compile(self, profile: BoardProfile, bank: PhaseBank) -> Any:
        off = _load_offsets(profile, bank)
        if bank.bits is not None:
            return UniformPhaseCodebook(bank.bits, bank.count, off)
        entries = load_code_table(profile, bank, ["i", "q"])
        try:
            return TablePhaseCodebook(entries, bank.count, off)
        except ValueError as exc:
            raise ConfigError(f"{profile.name}: banks.{bank.name}: {exc}",
                              field=f"banks.{bank.name}.table_file",
                              reason=str(exc)) from None

    def bits(self, bank: PhaseBank, codebook: Any = None) -> int:
        if codebook is not None:
            return int(codebook.bits)
        return bank.bits if bank.bits is not None else -1

    def quantize(self, bank: PhaseBank, state: ArrayState, codebook: Any) -> BankImage:
        phases = state.phases
        check_count(bank, phases.size, "phases")
        check_finite(bank, phases)
        codes, realised, err = codebook.quantize(phases)
        return BankImage(bank.name, bank.kind, codes, codebook.bits, phases, realised, err,
                         unit="rad")

    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        return {"phases": np.asarray(image.realised, dtype=float)}
