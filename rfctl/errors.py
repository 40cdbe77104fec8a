"""The rfctl exception hierarchy, rooted at :class:`RfctlError`.

Every error the library raises on purpose derives from :class:`RfctlError`, so a lab
script can catch one type. The subclasses carry the facts a user needs to act: the
field and the reason for configuration errors, the violated bound and its value for
infeasible problems, the bank and element for hardware constraints.
"""

from __future__ import annotations

import signal

__all__ = [
    "BusyError",
    "ChecksumError",
    "ConfigError",
    "DeviceError",
    "DeviceTimeoutError",
    "HardwareConstraintError",
    "InfeasibleError",
    "NakError",
    "OutputError",
    "ProgramError",
    "RfctlError",
    "Terminated",
    "interruption",
    "stop_phrase",
    "stop_status",
]


class RfctlError(Exception):
    """Root of every error rfctl raises deliberately."""


class ConfigError(RfctlError, ValueError):
    """A configuration (file or object) is invalid.

    Parameters
    ----------
    message : str
        Full human-readable message.
    source : str, optional
        The file (or built-in name) the configuration came from.
    field : str, optional
        Dotted path of the offending field, e.g. ``banks.0.bits``.
    reason : str, optional
        Why the value is refused.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.field = field
        self.reason = reason


class InfeasibleError(RfctlError):
    """An optimization problem has no feasible point.

    Parameters
    ----------
    message : str
        Human-readable explanation.
    bound : str, optional
        Name of the violated bound, e.g. ``"interference-free SINR"``.
    value : float, optional
        The value of that bound (e.g. the largest reachable SINR target).
    """

    def __init__(self, message: str, *, bound: str | None = None, value: float | None = None):
        super().__init__(message)
        self.bound = bound
        self.value = value


class HardwareConstraintError(RfctlError, ValueError):
    """A setting cannot be realised by the board (range, spacing, overlap, safety limit).

    Raised by the HAL before anything could be sent to a device.

    Parameters
    ----------
    message : str
        Human-readable explanation.
    bank : str, optional
        Name of the actuator bank concerned.
    element : int, optional
        Index of the first offending element in that bank.
    """

    def __init__(self, message: str, *, bank: str | None = None, element: int | None = None):
        super().__init__(message)
        self.bank = bank
        self.element = element


class DeviceError(RfctlError):
    """A device did not do what was asked (base of the link errors)."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """No (complete) reply within the configured timeout and retries."""


class ChecksumError(DeviceError):
    """An image checksum did not match: the board's staged (or stored) image is not the
    one the host computed, so the board refused to latch it.

    Parameters
    ----------
    message : str
    expected, actual : int, optional
        The host's CRC-32 and the one the board reported.
    """

    def __init__(self, message: str, *, expected: int | None = None,
                 actual: int | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class NakError(DeviceError):
    """The device refused a command (negative acknowledgement).

    Parameters
    ----------
    message : str
    code : int, optional
        The board's status code (see drivers/PROTOCOL.md, "Replies").
    command : str, optional
        Name of the refused command.
    """

    def __init__(self, message: str, *, code: int | None = None,
                 command: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.command = command


class BusyError(DeviceError):
    """The device or port is in use by someone else (another host's session)."""


class ProgramError(DeviceError):
    """Programming (program, program_many, store/select beam) failed; says, per board,
    which image the board holds.

    Parameters
    ----------
    message : str
    holds : dict of str to str
        Per device name: ``"previous"`` (the image it held before the call), ``"new"``
        (the requested one) or ``"unknown"`` (only when the board could not be asked
        within the link's bound; the message says why).
    cause : BaseException, optional
        The device error that ended the attempt.
    """

    HOLDS = ("previous", "new", "unknown")

    def __init__(self, message: str, *, holds: dict[str, str],
                 cause: BaseException | None = None) -> None:
        bad = [v for v in holds.values() if v not in self.HOLDS]
        if bad:
            raise ValueError(f"holds values must be one of {self.HOLDS}, got {bad}")
        detail = ", ".join(f"{k} holds the {v} image" if v != "unknown" else
                           f"{k}: active image unknown" for k, v in holds.items())
        super().__init__(f"{message} ({detail})")
        self.holds = dict(holds)
        self.cause = cause


class OutputError(RfctlError):
    """An output file cannot be written (a directory, a missing parent, no permission).

    Parameters
    ----------
    message : str
        Full message, naming the path.
    path : str, optional
        The path that could not be written.
    reason : str, optional
        Why.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal other than Ctrl-C: SIGTERM (``timeout``,
    a job scheduler, ``kill``) or SIGHUP (the terminal or SSH session went away).

    Raised by the signal handlers of the ``rfctl`` command (:func:`rfctl.cli.main`). It
    *is* a KeyboardInterrupt, so every path that handles Ctrl-C (putting the board back
    on its image from before a run, writing the run's records) handles it unchanged; the
    command then exits ``128 + signum`` (143 for SIGTERM, 129 for SIGHUP).

    Parameters
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(int(signum))
        self.signum = int(signum)

    @property
    def signame(self) -> str:
        """The signal's name, e.g. ``"SIGTERM"``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def __str__(self) -> str:
        return f"terminated ({self.signame})"


def interruption(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The first KeyboardInterrupt (a Ctrl-C or a :class:`Terminated`) in the chain of
    causes of ``exc`` (``exc`` itself included), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


def stop_phrase(exc: BaseException | None) -> str:
    """``"terminated (SIGTERM)"`` (or SIGHUP) when the chain of causes of ``exc`` holds a
    :class:`Terminated`, else ``"interrupted (Ctrl-C)"``."""
    ki = interruption(exc)
    return str(ki) if isinstance(ki, Terminated) else "interrupted (Ctrl-C)"


def stop_status(exc: BaseException | None) -> int:
    """The exit status of a command stopped by ``exc``: ``128 + signum`` for a
    :class:`Terminated` in its chain of causes, else 130 (Ctrl-C)."""
    ki = interruption(exc)
    return 128 + ki.signum if isinstance(ki, Terminated) else 130
