"""What the lab routines need from instruments (structural protocols, SI units)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["PowerSensor", "ProbePositioner"]


@runtime_checkable
class PowerSensor(Protocol):
    """Anything that reads a received power: a power meter, a spectrum-analyzer marker,
    or |S21|² from a VNA."""

    name: str
    idn: str

    def read_power(self) -> float:
        """Received power, W (or a power ratio for a VNA)."""
        ...


@runtime_checkable
class ProbePositioner(Protocol):
    """Moves the measurement probe to surrogate angles (θ, φ)."""

    name: str
    idn: str

    def move(self, theta: float, phi: float) -> None:
        """Move the probe to surrogate angles θ, φ ∈ [−1, 1] and wait until it settles."""
        ...
