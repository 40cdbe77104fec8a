"""Lab routines: program → settle → measure, beam sweeps, beampatterns, phase calibration
(rotating element for few-bit and finer banks, channel estimation for one-bit banks),
and measurement-driven configuration (``optimize_board``).

The routines take a board device (from :func:`rfctl.hal.discovery.open_device`) and
instruments (anything with the small protocols in :mod:`rfctl.lab.instruments`). They
never import a concrete driver; the CLI opens both through entry points. Results are in
SI units (W, Hz, s, rad).
"""

from rfctl.lab.blind import (
    BlindResult,
    MeasurementLog,
    best_onebit,
    channel_estimation,
    conditional_sample_mean,
    greedy_flips,
)
from rfctl.lab.calibration import (
    CalibrationInterruptedError,
    CalibrationResult,
    onebit_calibration,
    phase_calibration,
    write_calibration,
)
from rfctl.lab.instruments import PowerSensor, ProbePositioner
from rfctl.lab.optimize import (
    METHODS,
    OptimizeInterruptedError,
    OptimizeResult,
    codes_image,
    optimize_board,
    restore_board,
)
from rfctl.lab.records import RunRecord, load_run, plot_run
from rfctl.lab.sweeps import (
    SweepData,
    SweepInterruptedError,
    beam_sweep,
    beampattern,
    has_switch,
    steering_state,
)

__all__ = [
    "METHODS",
    "BlindResult",
    "CalibrationInterruptedError",
    "CalibrationResult",
    "MeasurementLog",
    "OptimizeInterruptedError",
    "OptimizeResult",
    "PowerSensor",
    "ProbePositioner",
    "RunRecord",
    "SweepData",
    "SweepInterruptedError",
    "beam_sweep",
    "beampattern",
    "best_onebit",
    "channel_estimation",
    "codes_image",
    "conditional_sample_mean",
    "greedy_flips",
    "has_switch",
    "load_run",
    "onebit_calibration",
    "optimize_board",
    "phase_calibration",
    "plot_run",
    "restore_board",
    "steering_state",
    "write_calibration",
]
