"""The bank-handler interface, the registry and checks shared by the handlers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from rfctl.config import BoardProfile, read_table_csv
from rfctl.errors import ConfigError, HardwareConstraintError
from rfctl.hal.image import BankImage
from rfctl.state import ArrayState

__all__ = ["BankHandler", "binary_image", "check_count", "check_finite", "load_code_table",
           "register", "registry"]

_REGISTRY: dict[str, BankHandler] = {}


class BankHandler(ABC):
    """What the HAL needs to know about one kind of actuator bank.

    Class attributes
    ----------------
    kind : str
        The config's ``kind`` literal (``"phase"``, ``"lorentzian"``, …).
    state_part : str
        The :class:`~rfctl.state.ArrayState` attribute that feeds this bank.
    binary : bool
        One bit per element with 1 = on (the report counts elements on).
    """

    kind: ClassVar[str]
    state_part: ClassVar[str]
    binary: ClassVar[bool] = False

    def compile(self, profile: BoardProfile, bank: Any) -> Any:
        """Load the bank's code book (tables, calibration), or ``None`` if it has none.

        Raises
        ------
        ConfigError
            A missing or malformed table or calibration file.
        """
        return None

    @abstractmethod
    def bits(self, bank: Any, codebook: Any = None) -> int:
        """Bits per code; ``-1`` when only a compiled code book knows (tables)."""

    @abstractmethod
    def quantize(self, bank: Any, state: ArrayState, codebook: Any) -> BankImage:
        """The codes for ``getattr(state, self.state_part)`` (not ``None``).

        Raises
        ------
        HardwareConstraintError
            Wrong sizes, non-finite values or anything else the board would refuse.
        """

    @abstractmethod
    def dequantize(self, image: BankImage, state: ArrayState) -> dict[str, Any]:
        """The state part(s) the codes realise, as ``{attribute: value}`` changes to
        ``state`` (empty when the realised value is already implied by another bank)."""


def register(cls: type[BankHandler]) -> type[BankHandler]:
    """Class decorator: register one instance of a handler under its ``kind`` (a handler
    that leaves a method of the interface out fails here, at import, with TypeError)."""
    if cls.kind in _REGISTRY:
        raise TypeError(f"bank kind {cls.kind!r} registered twice")
    _REGISTRY[cls.kind] = cls()
    return cls


def registry() -> dict[str, BankHandler]:
    """Kind → handler, for every registered kind."""
    return dict(_REGISTRY)


def check_count(bank: Any, got: int, what: str) -> None:
    """Refuse a state part whose element count differs from the bank's."""
    if got != bank.count:
        raise HardwareConstraintError(
            f"bank {bank.name!r} has {bank.count} elements but the state gives {got} {what}",
            bank=bank.name,
        )


def check_finite(bank: Any, values: np.ndarray) -> None:
    """Refuse non-finite values, naming the first offending element."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        k = int(np.argmax(bad))
        raise HardwareConstraintError(
            f"bank {bank.name!r}: element {k} has a non-finite value ({values[k]})",
            bank=bank.name, element=k,
        )


def binary_image(bank: Any, bits_on: np.ndarray) -> BankImage:
    """An exact one-bit image (switches, diodes)."""
    codes = bits_on.astype(np.int64)
    return BankImage(
        name=bank.name, kind=bank.kind, codes=codes, bits=1, target=bits_on,
        realised=bits_on.copy(), error=np.zeros(codes.size), unit="", binary=True,
    )


def load_code_table(profile: BoardProfile, bank: Any, cols: list[str]) -> np.ndarray:
    """A bank's code table (CSV ``code,<cols[0]>,<cols[1]>``) as complex entries.

    Returns
    -------
    ndarray, shape (codes,) complex
        ``cols[0] + 1j * cols[1]`` for codes 0, 1, …

    Raises
    ------
    ConfigError
        Unreadable file, or codes not 0, 1, … in order.
    """
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
