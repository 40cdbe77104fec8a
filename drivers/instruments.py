"""VISA instrument drivers for the lab loop: power meter, spectrum analyzer, VNA and
positioner. Everything is in SI: W, Hz, counts, and complex S21. Surrogate angles are
dimensionless.

Which commands an instrument understands comes from its **instrument profile**
(:mod:`rfctl.drivers.instrument_profiles`): the ``*IDN?`` reply picks the profile; a model
no profile claims gets the generic SCPI dialect of its kind with a warning (or is refused
with ``strict_model=True``).

Measurements are **synchronised**: the instrument is put in single-sweep mode once
(``INIT:CONT OFF``), and every reading is one line ``INIT;*OPC?;:<read>`` — the sweep
starts after the call (so after the board latched), ``*OPC?`` returns when it is complete,
and the marker/fetch reads that sweep. One write and one read per measurement (no
Nagle delay between separate small writes; TCP_NODELAY is also set on socket resources).

Readings are refused (:class:`~rfctl.errors.DeviceError` naming the instrument and its
raw reply) unless they are finite numbers: SCPI's 9.91E37 ("not a number") and ±9.9E37
(±infinity) sentinels in any unit, ``NAN``/``INF`` text, and dBm values whose conversion
to W overflows. ``*OPC?`` may answer ``1`` in any numeric spelling (``+1``, ``1.0``,
``+1.000E+00``). The instrument's error queue is read every ``error_check_every``
readings (the profile's field, 100 by default) and by :meth:`Instrument.poll_errors`
at the end of a run; errors found are logged as warnings and kept in
:attr:`Instrument.reported_errors`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

from rfctl.errors import ConfigError, DeviceError

from .instrument_profiles import (
    DEFAULT_TIMEOUT_S,
    InstrumentProfile,
    builtin_profiles,
    load_instrument_profile,
    match_profile,
)
from .scpi import ScpiInstrument, finite_number, open_visa

__all__ = [
    "Instrument",
    "Positioner",
    "PowerMeter",
    "SpectrumAnalyzer",
    "Vna",
    "dbm_to_w",
    "open_instrument",
]

log = logging.getLogger(__name__)


def dbm_to_w(dbm: float) -> float:
    """dBm → W (``inf`` when the power does not fit a float: a value no real
    instrument measures)."""
    try:
        return 10 ** (dbm / 10) * 1e-3
    except OverflowError:
        return math.inf


ERRORS_KEPT = 1000
"""Most instrument errors an :class:`Instrument` keeps for the run record (the rest are
counted in :attr:`Instrument.errors_dropped`)."""
ERRORS_PER_POLL = 256
"""Most error-queue entries one :meth:`Instrument.poll_errors` reads."""


def _is_one(text: str) -> bool:
    """Whether an ``*OPC?`` reply is numerically 1 (``1``, ``+1``, ``1.0``, ``+1.000E+00``)."""
    try:
        return float(text) == 1.0
    except ValueError:
        return False


class Instrument(ScpiInstrument):
    """A SCPI instrument driven by an :class:`InstrumentProfile`.

    Parameters
    ----------
    resource : pyvisa resource
    name : str
    profile : InstrumentProfile
        Chosen from the ``*IDN?`` reply by :func:`open_instrument`.
    """

    kind = "instrument"

    def __init__(self, resource, name: str, profile: InstrumentProfile, *,
                 idn: str | None = None, generic: bool = False,
                 error_check_every: int | None = None,
                 open_warnings: list[str] | None = None) -> None:
        self.open_warnings = list(open_warnings or [])
        self.profile = profile
        self.dialect = profile.dialect
        self.error_query = profile.dialect.errors
        #: whether the profile is the generic dialect of a model no profile claims
        self.generic = generic
        #: the error queue is read after every this many readings (0: never during a run)
        self.error_check_every = (profile.error_check_every if error_check_every is None
                                  else error_check_every)
        #: readings taken (synchronised measurements)
        self.readings = 0
        #: errors the instrument reported during this session, oldest first:
        #: ``{"reading": readings taken when read, "error": the queue entry}``
        self.reported_errors: list[dict] = []
        self.errors_dropped = 0
        # errors a previous session left in the queue (e.g. a command of another
        # dialect) are not this session's: read, logged and cleared at open
        super().__init__(resource, name, idn=idn, stale_errors="drain")
        if self.dialect.setup:
            self.set(";:".join(self.dialect.setup))

    # ----------------------------------------------------------------- settings
    def _command(self, key: str, value: float) -> str:
        spec = self.dialect.settings.get(key)
        if spec is None:
            raise ConfigError(f"{self.name}: profile {self.profile.name!r} has no setting "
                              f"{key!r} (has: {', '.join(self.dialect.settings) or 'none'})",
                              field=key, reason="not in the instrument's dialect")
        if not math.isfinite(value):
            raise ConfigError(f"{self.name}: {key} = {value} is not finite", field=key,
                              reason="not finite")
        if spec.min is not None and value < spec.min:
            raise ConfigError(f"{self.name}: {key} = {value:g} below the minimum {spec.min:g} "
                              f"of profile {self.profile.name!r}", field=key, reason="below min")
        if spec.max is not None and value > spec.max:
            raise ConfigError(f"{self.name}: {key} = {value:g} above the maximum {spec.max:g} "
                              f"of profile {self.profile.name!r}", field=key, reason="above max")
        if spec.integer:
            if value != int(value):
                raise ConfigError(f"{self.name}: {key} = {value} must be an integer",
                                  field=key, reason="not an integer")
            return spec.set.format(v=int(value))
        return spec.set.format(v=float(value))

    def configure(self, **settings: float | None) -> dict[str, float]:
        """Apply settings (SI; ``None`` = leave), check the error queue, read them back.

        Returns
        -------
        dict
            The settings as the instrument reports them (:meth:`settings`).

        Raises
        ------
        ConfigError
            A setting the profile lacks, or a value outside its limits (nothing sent).
        DeviceError
            The instrument reported an error.
        """
        cmds = [self._command(k, float(v)) for k, v in settings.items() if v is not None]
        if cmds:
            self.set(";:".join(cmds))
        return self.settings()

    def settings(self) -> dict[str, float]:
        """Every setting of the dialect that has a query, read back from the instrument."""
        out = {}
        for k, spec in self.dialect.settings.items():
            if spec.query:
                out[k] = self.query_float(spec.query)
        return out

    @property
    def timeout_s(self) -> float:
        """The read timeout in force, s."""
        return float(self.inst.timeout) / 1000

    def describe(self) -> dict:
        """Identity, profile (its name and full contents, and the file it came from),
        read timeout and settings read back (for run records)."""
        src = self.profile.source
        try:
            text = src.read_text(encoding="utf-8") if src is not None else None
        except OSError:
            text = None
        return {"name": self.name, "kind": self.kind, "idn": self.idn,
                "profile": self.profile.name, "profile_matched": self.profile.matches(self.idn),
                "profile_generic_fallback": self.generic,
                "profile_file": str(src) if src is not None else None,
                "profile_toml": text,
                "profile_contents": self.profile.model_dump(mode="json"),
                "timeout_s": self.timeout_s, "error_check_every": self.error_check_every,
                "settings": self.settings(), "link": self.stats.__dict__.copy()}

    def _generic_hint(self, exc: DeviceError) -> DeviceError:
        return type(exc)(f"{exc} (the model is in no instrument profile and was driven with "
                         f"the generic {self.kind} SCPI dialect: give its profile with "
                         "--instrument-profile FILE.toml)")

    def query(self, cmd: str) -> str:
        """:meth:`ScpiInstrument.query`; for a model on the generic dialect a failure
        says so (the usual cause of an unanswered command)."""
        try:
            return super().query(cmd)
        except DeviceError as exc:
            if not self.generic or "generic" in str(exc):
                raise
            raise self._generic_hint(exc) from None

    def set(self, cmd: str) -> None:
        """:meth:`ScpiInstrument.set`; for a model on the generic dialect an error it
        reports says that the generic dialect was used."""
        try:
            super().set(cmd)
        except DeviceError as exc:
            if not self.generic or "generic" in str(exc):
                raise
            raise self._generic_hint(exc) from None

    # ----------------------------------------------------------------- errors
    def poll_errors(self, limit: int = ERRORS_PER_POLL) -> list[str]:
        """Read the error queue (the dialect's ``errors`` query, until ``0,…``); log any
        errors as one warning and keep them in :attr:`reported_errors`.

        Returns
        -------
        list of str
            The entries read (empty when the queue was empty).

        Raises
        ------
        DeviceError
            The queue could not be read.
        """
        errs = self.drain_errors(limit)
        if not errs:
            return errs
        room = max(0, ERRORS_KEPT - len(self.reported_errors))
        self.reported_errors += [{"reading": self.readings, "error": e} for e in errs[:room]]
        self.errors_dropped += len(errs) - min(room, len(errs))
        counts = Counter(errs)
        listed = "; ".join(f"{n} × {e}" if n > 1 else e for e, n in counts.most_common(3))
        more = f"; and {len(counts) - 3} other kind(s)" if len(counts) > 3 else ""
        full = f" (queue not empty after {limit} reads)" if len(errs) == limit else ""
        log.warning("%s: the instrument reported %d error(s) by reading %d: %s%s%s",
                    self.name, len(errs), self.readings, listed, more, full)
        return errs

    # ----------------------------------------------------------------- reading
    def _measure(self) -> tuple[str, str]:
        """One synchronised measurement: the reading's text (last ``;`` field) and the
        whole reply."""
        reply = self.query(self.dialect.measure)
        parts = [p.strip() for p in reply.split(";")]
        if "*OPC?" in self.dialect.measure.upper() and (len(parts) < 2
                                                        or not _is_one(parts[0])):
            raise DeviceError(f"{self.name}: {self.dialect.measure!r} answered {reply!r}; "
                              "expected '1;<reading>' (operation complete, then the reading)")
        self.readings += 1
        if self.error_check_every and self.readings % self.error_check_every == 0:
            self.poll_errors()
        return parts[-1], reply

    def read_power(self) -> float:
        """Received power, W (a power ratio |S21|² for a VNA), after a complete sweep.

        Raises
        ------
        DeviceError
            No finite reading (see the module docstring), naming the raw reply.
        """
        text, reply = self._measure()
        if self.profile.reading == "complex":
            return abs(_complex(self.name, text, reply)) ** 2
        v = finite_number(self.name, text, reply)
        w = dbm_to_w(v) if self.profile.reading == "dbm" else v
        if not math.isfinite(w):
            raise DeviceError(f"{self.name}: reading {text!r} ({self.profile.reading}) is "
                              "too large for a float in W: not a power any instrument "
                              f"measures (reply {reply!r})")
        return w


def _complex(name: str, text: str, reply: str | None = None) -> complex:
    """``re,im`` → complex; both parts finite (see :func:`finite_number`)."""
    reply = text if reply is None else reply
    parts = text.split(",")
    if len(parts) != 2:
        raise DeviceError(f"{name}: S21 reply {text!r} is not 're,im' (reply {reply!r})")
    re, im = (finite_number(name, x.strip(), reply, "S21 part") for x in parts)
    return complex(re, im)


class PowerMeter(Instrument):
    """A power sensor: :meth:`read_power` in W."""

    kind = "power-meter"

    def set_frequency(self, hz: float) -> None:
        """Set the measurement frequency, Hz (checked against the profile's limits, read back)."""
        self.configure(frequency=hz)


class SpectrumAnalyzer(Instrument):
    """Centre, span, RBW, averaging and the marker peak, in W."""

    kind = "spectrum-analyzer"


class Vna(Instrument):
    """S21 at one frequency (complex, linear)."""

    kind = "vna"

    def set_frequency(self, hz: float) -> None:
        """Set the CW frequency of S21, Hz (checked against the profile's limits)."""
        self.configure(frequency=hz)

    def s21(self) -> complex:
        """One S21 reading from a sweep started after the board latched (complex)."""
        text, reply = self._measure()
        return _complex(self.name, text, reply)


class Positioner(Instrument):
    """Moves the probe to surrogate angles (θ, φ) ∈ [−1, 1]²."""

    kind = "positioner"

    def move(self, theta: float, phi: float) -> None:
        """Move the probe to the surrogate angles (θ, φ), each in [−1, 1]; waits until settled."""
        self.configure(theta=theta, phi=phi)

    def position(self) -> tuple[float, float]:
        """The probe's surrogate angles (θ, φ) as the positioner reports them."""
        s = self.settings()
        return s["theta"], s["phi"]

    def read_power(self) -> float:
        raise DeviceError(f"{self.name}: a positioner does not measure power")


_CLASSES = {c.kind: c for c in (PowerMeter, SpectrumAnalyzer, Vna, Positioner)}


def open_instrument(kind: str, resource: str, *, visa_library: str | None = None,
                    timeout_s: float | None = None, profile: str | Path | None = None,
                    strict_model: bool = False,
                    error_check_every: int | None = None) -> Instrument:
    """Entry point (group ``rfctl.instruments``): open an instrument of ``kind``.

    Parameters
    ----------
    kind : str
        ``power-meter``, ``spectrum-analyzer``, ``vna`` or ``positioner``.
    resource : str
        VISA resource (``TCPIP::host::5025::SOCKET``, ``USB0::…``, ``GPIB0::…``).
    visa_library : str, optional
        pyvisa backend (``"@py"``, ``"file.yaml@sim"``).
    timeout_s : float, optional
        Read timeout, s, in (0, 3600]. Default: the profile's ``timeout_s``, else 2 s.
    profile : str or path, optional
        An instrument profile (built-in name or TOML file) to use whatever ``*IDN?``
        says. Default: the built-in profile whose patterns match ``*IDN?``.
    strict_model : bool
        Refuse an instrument no profile claims (default: accept it with the generic
        dialect of its kind and a warning).
    error_check_every : int, optional
        Read the error queue after every this many readings (0: only when asked, e.g.
        at the end of a run). Default: the profile's ``error_check_every`` (100).

    Raises
    ------
    ConfigError
        Unknown kind, a profile of another kind, or a timeout out of range.
    DeviceError
        The resource cannot be opened, or (``strict_model``) the model is unknown.
    """
    from .instrument_profiles import MAX_TIMEOUT_S

    if timeout_s is not None and not (math.isfinite(timeout_s)
                                      and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise ConfigError(f"timeout_s = {timeout_s}: not a finite number of seconds in "
                          f"(0, {MAX_TIMEOUT_S:g}]", field="timeout_s", reason="out of range")
    if error_check_every is not None and error_check_every < 0:
        raise ConfigError(f"error_check_every = {error_check_every} is negative",
                          field="error_check_every", reason="negative")
    if kind not in _CLASSES:
        raise ConfigError(f"unknown instrument kind {kind!r} (known: {', '.join(_CLASSES)})",
                          field="kind", reason="unknown instrument kind")
    chosen = load_instrument_profile(profile) if profile is not None else None
    if chosen is not None and chosen.instrument != kind:
        raise ConfigError(f"instrument profile {chosen.name!r} is for a {chosen.instrument}, "
                          f"not a {kind}", field="profile", reason="wrong instrument kind")
    first = timeout_s if timeout_s is not None else (
        chosen.timeout_s if chosen is not None and chosen.timeout_s is not None
        else DEFAULT_TIMEOUT_S)
    inst = open_visa(resource, visa_library=visa_library, timeout_s=first)
    name = f"{kind}@{resource}"
    generic = False
    warned: list[str] = []
    try:
        idn = ScpiInstrument.ask_idn(inst, name)
        if chosen is None:
            chosen = match_profile(kind, idn)
            other = None if chosen is not None else next(
                (p for p in builtin_profiles() if p.instrument != kind and p.matches(idn)),
                None)
            if other is not None:
                raise ConfigError(
                    f"{name}: instrument says {idn!r}, which profile {other.name!r} claims "
                    f"as a {other.instrument}, not a {kind}: wrong --sensor or --meter?",
                    field="sensor", reason="instrument of another kind")
            if chosen is None:
                if strict_model:
                    raise DeviceError(
                        f"{name}: instrument says {idn!r}, which no {kind} profile claims "
                        "(--strict-model); give a profile (--instrument-profile FILE.toml) "
                        "or drop --strict-model to use the generic SCPI dialect")
                chosen = load_instrument_profile(f"generic-{kind}")
                generic = True
                warned.append(f"{name}: model {idn!r} is not in any instrument profile; "
                              f"using the generic {kind} SCPI dialect (give its profile "
                              "with --instrument-profile FILE.toml; --strict-model "
                              "refuses it)")
                log.warning("%s", warned[-1])
        if timeout_s is None and chosen.timeout_s is not None:
            inst.timeout = max(1, math.ceil(chosen.timeout_s * 1000))
        return _CLASSES[kind](inst, name, chosen, idn=idn, generic=generic,
                              error_check_every=error_check_every, open_warnings=warned)
    except Exception:
        inst.close()
        raise
