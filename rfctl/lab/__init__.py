"""Lab routines: program → settle → measure, beam sweeps, beampatterns, phase calibration.

The routines take a board device (from :func:`rfctl.hal.device.open_device`) and
instruments (anything with the small protocols in :mod:`rfctl.lab.instruments`). They
never import a concrete driver; the CLI opens both through entry points.
"""

from rfctl.lab.calibration import CalibrationResult, phase_calibration, write_calibration
from rfctl.lab.instruments import PowerSensor, ProbePositioner
from rfctl.lab.records import RunRecord
from rfctl.lab.sweeps import (
    SweepData,
    SweepInterruptedError,
    beam_sweep,
    beampattern,
    steering_state,
)

__all__ = [
    "CalibrationResult",
    "PowerSensor",
    "ProbePositioner",
    "RunRecord",
    "SweepData",
    "SweepInterruptedError",
    "beam_sweep",
    "beampattern",
    "phase_calibration",
    "steering_state",
    "write_calibration",
]
