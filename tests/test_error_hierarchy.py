"""One exception hierarchy: every exception class that rfctl, its drivers or its
simulators define derives from rfctl.RfctlError (found by importing every module and
looking at what each defines), and the root exports the ones users catch."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import rfctl.drivers
import rfctl.sims

import rfctl
from rfctl.errors import RfctlError


def _modules():
    for pkg in (rfctl, rfctl.drivers, rfctl.sims):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            yield importlib.import_module(info.name)


def test_every_exception_class_is_an_rfctl_error() -> None:
    outside = []
    seen = 0
    for mod in _modules():
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == mod.__name__ and not name.startswith("_")):
                seen += 1
                if not issubclass(obj, RfctlError):
                    outside.append(f"{mod.__name__}.{name}")
    assert seen >= 10  # the walk really found the hierarchy
    # the one exception: a stop request (SIGTERM / SIGHUP), not an error — a
    # KeyboardInterrupt on purpose, so that it takes the path of Ctrl-C and no
    # `except RfctlError` / `except Exception` swallows it
    from rfctl.errors import Terminated

    assert issubclass(Terminated, KeyboardInterrupt) and not issubclass(Terminated, Exception)
    assert outside == ["rfctl.errors.Terminated"]


def test_the_root_exports_what_users_catch() -> None:
    for name in ("RfctlError", "ConfigError", "InfeasibleError", "HardwareConstraintError",
                 "DeviceError", "ProgramError", "OutputError"):
        assert issubclass(getattr(rfctl, name), RfctlError)
