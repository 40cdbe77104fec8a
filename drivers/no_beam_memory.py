"""The beam-memory part of the Device protocol for boards that have none."""

from __future__ import annotations

from rfctl.errors import DeviceError

__all__ = ["NoBeamMemory"]


class NoBeamMemory:
    """Mixin for a driver whose device stores no beams (``capabilities.beam_slots == 0``).

    The class sets ``no_beams_reason``: why (named in the error); the instance has a
    ``name``.
    """

    name: str
    no_beams_reason = "the device has no beam memory"

    def store_beam(self, slot: int) -> int:
        """Not supported.

        Raises
        ------
        DeviceError
            Always, naming the device and the reason.
        """
        raise DeviceError(f"{self.name}: {self.no_beams_reason}")

    def select_beam(self, slot: int, expected_crc: int) -> int:
        """Not supported.

        Raises
        ------
        DeviceError
            Always, naming the device and the reason.
        """
        raise DeviceError(f"{self.name}: {self.no_beams_reason}")
