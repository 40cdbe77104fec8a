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
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from rfctl.errors import ConfigError, DeviceError

from .instrument_profiles import (
    InstrumentProfile,
    builtin_profiles,
    load_instrument_profile,
    match_profile,
)
from .scpi import ScpiInstrument, open_visa

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
    """dBm → W."""
    return 10 ** (dbm / 10) * 1e-3


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
                 idn: str | None = None) -> None:
        self.profile = profile
        self.dialect = profile.dialect
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

    def describe(self) -> dict:
        """Identity, profile and settings read back (for run records)."""
        return {"name": self.name, "kind": self.kind, "idn": self.idn,
                "profile": self.profile.name, "profile_matched": self.profile.matches(self.idn),
                "settings": self.settings(), "link": self.stats.__dict__.copy()}

    # ----------------------------------------------------------------- reading
    def _measure(self) -> str:
        """One synchronised measurement; the reading's text (last ``;`` field)."""
        reply = self.query(self.dialect.measure)
        parts = [p.strip() for p in reply.split(";")]
        if "*OPC?" in self.dialect.measure.upper() and (len(parts) < 2 or parts[0] != "1"):
            raise DeviceError(f"{self.name}: {self.dialect.measure!r} answered {reply!r}; "
                              "expected '1;<reading>' (operation complete, then the reading)")
        return parts[-1]

    def read_power(self) -> float:
        """Received power, W (a power ratio |S21|² for a VNA), after a complete sweep."""
        text = self._measure()
        if self.profile.reading == "complex":
            return abs(_complex(self.name, text)) ** 2
        try:
            v = float(text)
        except ValueError:
            raise DeviceError(f"{self.name}: reading {text!r} is not a number") from None
        return dbm_to_w(v) if self.profile.reading == "dbm" else v


def _complex(name: str, text: str) -> complex:
    try:
        re, im = (float(x) for x in text.split(","))
    except ValueError:
        raise DeviceError(f"{name}: S21 reply {text!r} is not 're,im'") from None
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
        return _complex(self.name, self._measure())


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
                    timeout_s: float = 2.0, profile: str | Path | None = None,
                    strict_model: bool = False) -> Instrument:
    """Entry point (group ``rfctl.instruments``): open an instrument of ``kind``.

    Parameters
    ----------
    kind : str
        ``power-meter``, ``spectrum-analyzer``, ``vna`` or ``positioner``.
    resource : str
        VISA resource (``TCPIP::host::5025::SOCKET``, ``USB0::…``, ``GPIB0::…``).
    visa_library : str, optional
        pyvisa backend (``"@py"``, ``"file.yaml@sim"``).
    timeout_s : float
        Read timeout, s.
    profile : str or path, optional
        An instrument profile (built-in name or TOML file) to use whatever ``*IDN?``
        says. Default: the built-in profile whose patterns match ``*IDN?``.
    strict_model : bool
        Refuse an instrument no profile claims (default: accept it with the generic
        dialect of its kind and a warning).

    Raises
    ------
    ConfigError
        Unknown kind, or a profile of another kind.
    DeviceError
        The resource cannot be opened, or (``strict_model``) the model is unknown.
    """
    if kind not in _CLASSES:
        raise ConfigError(f"unknown instrument kind {kind!r} (known: {', '.join(_CLASSES)})",
                          field="kind", reason="unknown instrument kind")
    chosen = load_instrument_profile(profile) if profile is not None else None
    if chosen is not None and chosen.instrument != kind:
        raise ConfigError(f"instrument profile {chosen.name!r} is for a {chosen.instrument}, "
                          f"not a {kind}", field="profile", reason="wrong instrument kind")
    inst = open_visa(resource, visa_library=visa_library, timeout_s=timeout_s)
    name = f"{kind}@{resource}"
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
                log.warning("%s: model %r is not in any instrument profile; using the "
                            "generic %s dialect", name, idn, kind)
        return _CLASSES[kind](inst, name, chosen, idn=idn)
    except Exception:
        inst.close()
        raise
