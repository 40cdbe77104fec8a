"""rfctl — hardware-in-the-loop control of reconfigurable antenna arrays.

Optimizers compute array settings (:class:`ArrayState`); the HAL quantizes them into a
:class:`~rfctl.hal.DeviceImage` for a board profile; drivers program boards. See the
README for the quick start and DESIGN notes for the layering.

The library logs through :mod:`logging` (logger names under ``rfctl``) and never
configures handlers or prints.
"""

import logging

from rfctl.config import BoardProfile, DbraaSpec, DmaSpec, Scenario, load_config
from rfctl.errors import (
    BusyError,
    ChecksumError,
    ConfigError,
    DeviceError,
    DeviceTimeoutError,
    HardwareConstraintError,
    InfeasibleError,
    NakError,
    OutputError,
    ProgramError,
    RfctlError,
)
from rfctl.state import ArrayState, DesignRecord, DmaTuning

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ArrayState",
    "BoardProfile",
    "BusyError",
    "ChecksumError",
    "ConfigError",
    "DbraaSpec",
    "DesignRecord",
    "DeviceError",
    "DeviceTimeoutError",
    "DmaSpec",
    "DmaTuning",
    "HardwareConstraintError",
    "InfeasibleError",
    "NakError",
    "OutputError",
    "ProgramError",
    "RfctlError",
    "Scenario",
    "__version__",
    "load_config",
]
