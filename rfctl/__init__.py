"""rfctl — hardware-in-the-loop control of reconfigurable antenna arrays.

Optimizers compute array settings (:class:`ArrayState`); the HAL quantizes them into a
:class:`~rfctl.hal.DeviceImage` for a board profile; drivers program boards. See the
README for the quick start and DESIGN notes for the layering.

The library logs through :mod:`logging` (logger names under ``rfctl``) and never
configures handlers or prints.
"""

import importlib
import logging

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

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# The configs and states need numpy and pydantic (~1 s to import): they are loaded on
# first use, so `import rfctl` (and the `rfctl` command's start-up, where a Ctrl-C must
# not print a traceback) stays cheap.
_LAZY = {
    "BoardProfile": "rfctl.config", "DbraaSpec": "rfctl.config", "DmaSpec": "rfctl.config",
    "Scenario": "rfctl.config", "load_config": "rfctl.config",
    "ArrayState": "rfctl.state", "DesignRecord": "rfctl.state", "DmaTuning": "rfctl.state",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rfctl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
