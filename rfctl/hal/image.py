"""Device images: per bank, the integer codes for a board and what they realise."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

__all__ = ["BankImage", "DeviceImage"]


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
        from rfctl.hal.device import pack_codes

        return pack_codes(self.codes, self.bits)

    @property
    def count(self) -> int:
        return int(self.codes.size)

    @property
    def max_error(self) -> float:
        return float(np.max(np.abs(self.error))) if self.error.size else 0.0

    @property
    def rms_error(self) -> float:
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
