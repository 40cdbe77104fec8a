"""Hardware abstraction layer: quantize array states into device images (and, in later
layers, program them). The HAL knows banks and codes, never beamforming."""

from rfctl.hal.codebooks import (
    LorentzianCodebook,
    TablePhaseCodebook,
    UniformPhaseCodebook,
    lorentzian_arc_table,
    wrap_phase,
)
from rfctl.hal.image import BankImage, DeviceImage
from rfctl.hal.pins import feed_codes, links_to_selection, selection_to_links
from rfctl.hal.quantize import CompiledBoard, compile_board, dequantize, quantize

__all__ = [
    "BankImage",
    "CompiledBoard",
    "DeviceImage",
    "LorentzianCodebook",
    "TablePhaseCodebook",
    "UniformPhaseCodebook",
    "compile_board",
    "dequantize",
    "feed_codes",
    "links_to_selection",
    "lorentzian_arc_table",
    "quantize",
    "selection_to_links",
    "wrap_phase",
]
