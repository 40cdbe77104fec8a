"""SCPI plumbing shared by the VISA instrument drivers.

:class:`ScpiInstrument` wraps a pyvisa resource: explicit terminations, every
command and reply logged on ``rfctl.wire``, the error queue drained after settings,
and timeouts turned into :class:`~rfctl.errors.DeviceTimeoutError`.
"""

from __future__ import annotations

import logging
import math

from rfctl.errors import ConfigError, DeviceError, DeviceTimeoutError

__all__ = ["SCPI_INF", "SCPI_NAN", "ScpiInstrument", "finite_number", "open_visa"]

log = logging.getLogger(__name__)
wire_log = logging.getLogger("rfctl.wire")

SCPI_NAN = 9.91e37
"""SCPI's "not a number" (IEEE 488.2 / SCPI-99 §7.2.1.5): no valid measurement."""
SCPI_INF = 9.9e37
"""SCPI's +infinity (−9.9E37 is −infinity): e.g. an overload or an empty trace."""


def finite_number(name: str, text: str, reply: str, what: str = "reading") -> float:
    """A number of an instrument's reply, refused unless it is a real finite value.

    Parameters
    ----------
    name : str
        The instrument (named in the error).
    text : str
        The field of the reply that holds the number.
    reply : str
        The whole reply line (named in the error).
    what : str
        What the number is (``reading``, a query's header).

    Returns
    -------
    float

    Raises
    ------
    DeviceError
        Not a number; NaN or ±infinity written out; or SCPI's NaN (9.91E37) or ±INF
        (±9.9E37) sentinel, which instruments send in any unit when they have no valid
        value (an overload, an uncalibrated or empty trace).
    """
    try:
        v = float(text)
    except ValueError:
        raise DeviceError(f"{name}: {what} {text!r} is not a number (reply {reply!r})"
                          ) from None
    if math.isnan(v) or abs(v) >= SCPI_INF * (1 - 1e-6):
        kind = ("SCPI 'not a number' (no valid measurement)" if math.isnan(v)
                or abs(v - SCPI_NAN) <= SCPI_NAN * 1e-6 else
                f"SCPI {'-' if v < 0 else '+'}infinity (overload or no valid measurement)")
        raise DeviceError(f"{name}: {what} {text!r} is {kind}, not a measured value "
                          f"(reply {reply!r})")
    return v


def open_visa(resource: str, *, visa_library: str | None = None, timeout_s: float = 2.0):
    """Open a VISA resource with explicit "\\n" terminations.

    Raises
    ------
    ConfigError
        ``resource`` is a URL (``socket://…``) rather than a VISA resource string, or
        the VISA backend cannot be loaded (install ``rfctl[sim]`` for pyvisa-sim).
    DeviceError
        The resource cannot be opened.
    """
    import pyvisa

    if "://" in resource:
        raise ConfigError(f"{resource!r} is a URL, not a VISA resource: a SCPI instrument "
                          "or bias source is addressed like TCPIP::127.0.0.1::5025::SOCKET "
                          "or ASRL/dev/ttyUSB0::INSTR", field="url", reason="not a VISA resource")
    if "::" not in resource and not resource.upper().startswith(("ASRL", "GPIB", "USB")):
        raise ConfigError(f"{resource!r} is not a VISA resource string (e.g. "
                          "TCPIP::127.0.0.1::5025::SOCKET, TCPIP::HOST::INSTR, "
                          "ASRL/dev/ttyUSB0::INSTR)", field="resource",
                          reason="not a VISA resource")

    try:
        rm = pyvisa.ResourceManager(visa_library) if visa_library else pyvisa.ResourceManager()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load VISA library {visa_library!r}: {exc}; for simulated "
                          "instruments install rfctl[sim]", field="visa_library") from None
    try:
        inst = rm.open_resource(resource, read_termination="\n", write_termination="\n",
                                timeout=max(1, math.ceil(timeout_s * 1000)))
    except Exception as exc:
        raise DeviceError(f"cannot open VISA resource {resource!r}: {exc}") from None
    if resource.upper().endswith("::SOCKET"):
        # a reading is one write then one read; NODELAY keeps Nagle from holding the write
        try:
            from pyvisa.constants import ResourceAttribute

            inst.set_visa_attribute(ResourceAttribute.tcpip_nodelay, True)
        except Exception:  # not every backend supports it; the combined write still helps
            log.debug("TCP_NODELAY not settable on %s", resource, exc_info=True)
    return inst


class ScpiInstrument:
    """A SCPI instrument behind a pyvisa resource.

    Parameters
    ----------
    resource : pyvisa resource
        Opened with explicit terminations (see :func:`open_visa`).
    name : str
        Used in errors and the traffic log.
    expect_model : str, optional
        The model field of ``*IDN?`` that must match.
    idn : str, optional
        The ``*IDN?`` reply if already read (see :meth:`ask_idn`).
    """

    def __init__(self, resource, name: str, expect_model: str | None = None, *,
                 idn: str | None = None, stale_errors: str = "raise") -> None:
        from rfctl.hal.device import LinkStats

        self.inst = resource
        self.name = name
        self.stats = LinkStats()
        #: whether the last query went unanswered (then the error queue is not asked at
        #: the end of a run: a late reply could be taken for its answer)
        self.unanswered = False
        #: warnings logged while the instrument was opened (a run record made later
        #: lists them too)
        self.open_warnings: list[str] = getattr(self, "open_warnings", [])
        self.idn = idn if idn is not None else self.query("*IDN?")
        fields = [f.strip() for f in self.idn.split(",")]
        if expect_model is not None and (len(fields) < 2 or fields[1] != expect_model):
            raise DeviceError(f"{name}: instrument says {self.idn!r}, expected model "
                              f"{expect_model!r}")
        if stale_errors == "drain":
            stale = self.drain_errors()
            if stale:
                msg = (f"{name}: cleared {len(stale)} error(s) left in the queue before this "
                       f"session: {'; '.join(stale)}")
                self.open_warnings.append(msg)
                log.warning("%s", msg)
        else:
            self.check_errors()

    @staticmethod
    def ask_idn(resource, name: str) -> str:
        """``*IDN?`` on a freshly opened resource (before a driver class is chosen)."""
        probe = ScpiInstrument.__new__(ScpiInstrument)
        from rfctl.hal.device import LinkStats

        probe.inst, probe.name, probe.stats = resource, name, LinkStats()
        probe.unanswered = False
        return probe.query("*IDN?")

    def write(self, cmd: str) -> None:
        """Send one SCPI line (logged on ``rfctl.wire``); DeviceError on a link failure."""
        wire_log.debug("tx %s %s", self.name, cmd)
        self.stats.bytes_tx += len(cmd) + 1
        self.stats.frames_tx += 1
        try:
            self.inst.write(cmd)
        except Exception as exc:  # pyvisa raises VisaIOError and OSError subclasses
            raise DeviceError(f"{self.name}: write {cmd!r} failed: {exc}") from None

    def query(self, cmd: str) -> str:
        """Send a query and return its reply line; DeviceTimeoutError if none arrives in time."""
        self.write(cmd)
        try:
            reply = self.inst.read().strip()
        except Exception as exc:
            self.unanswered = True
            if "timeout" in str(exc).lower() or "TMO" in str(exc):
                self.stats.timeouts += 1
                raise DeviceTimeoutError(
                    f"{self.name}: no reply to {cmd!r} within {self.inst.timeout} ms (a "
                    "slower sweep needs a longer timeout: the instrument profile's "
                    "timeout_s, or rfctl lab --meter-timeout)") from None
            raise DeviceError(f"{self.name}: reading the reply to {cmd!r} failed: "
                              f"{exc}") from None
        self.unanswered = False
        wire_log.debug("rx %s %s", self.name, reply)
        self.stats.bytes_rx += len(reply) + 1
        return reply

    def query_float(self, cmd: str) -> float:
        """A query whose reply is one number; DeviceError unless it is a finite number
        (SCPI's NaN/INF sentinels refused, see :func:`finite_number`)."""
        r = self.query(cmd)
        return finite_number(self.name, r, r, f"{cmd!r} answered")

    def check_errors(self) -> None:
        """Drain ``SYST:ERR?``; raise the first error.

        Raises
        ------
        DeviceError
            With the instrument's code and message.
        """
        errs = self.drain_errors()
        if errs:
            raise DeviceError(f"{self.name}: instrument error(s): {'; '.join(errs)}")

    def drain_errors(self, limit: int = 32) -> list[str]:
        """Read the error queue (``SYST:ERR?``, or the ``error_query`` attribute of a
        subclass) until ``0,…``/``+0,…``, at most ``limit`` entries; return the errors
        read.

        Raises
        ------
        DeviceError
            A reply that is not an SCPI error entry.
        """
        errs = []
        q = getattr(self, "error_query", "SYST:ERR?")
        for _ in range(limit):
            r = self.query(q)
            try:
                code = int(float(r.split(",", 1)[0]))
            except ValueError:
                raise DeviceError(f"{self.name}: malformed {q} reply {r!r}") from None
            if code == 0:
                break
            errs.append(r)
        return errs

    def set(self, cmd: str) -> None:
        """Write a setting and check the error queue."""
        self.write(cmd)
        self.check_errors()

    def close(self) -> None:
        """Close the VISA resource (never raises)."""
        try:
            self.inst.close()
        except Exception:  # closing must not raise
            log.debug("error closing %s", self.name, exc_info=True)


