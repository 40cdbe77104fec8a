"""VISA instrument drivers for the lab loop: power meter, spectrum analyzer, VNA and
positioner. Everything is in SI: W, Hz, and complex S21. Surrogate angles are
dimensionless.

The SCPI dialect is declared once in :data:`DIALECTS`. The drivers, the pyvisa-sim YAML
(``rfctl.sims.instrument_yaml``) and the simulated bench (``rfctl.sims.sim_bench``) use it.
Every setting is followed by a ``SYST:ERR?`` check.
"""

from __future__ import annotations

import math

from .scpi import ScpiInstrument, open_visa

__all__ = [
    "DIALECTS",
    "Positioner",
    "PowerMeter",
    "SpectrumAnalyzer",
    "Vna",
    "open_instrument",
]

DIALECTS: dict[str, dict[str, str]] = {
    "power-meter": {"model": "PM-SIM", "freq": "SENS:FREQ {v:.6e}", "power": "MEAS:POW?"},
    "spectrum-analyzer": {"model": "SA-SIM", "center": "FREQ:CENT {v:.6e}",
                          "span": "FREQ:SPAN {v:.6e}", "rbw": "BAND:RES {v:.6e}",
                          "peak": "CALC:MARK:MAX", "marker": "CALC:MARK:Y?"},
    "vna": {"model": "VNA-SIM", "freq": "SENS:FREQ:CW {v:.6e}", "s21": "CALC:DATA:S21?"},
    "positioner": {"model": "POS-SIM", "theta": "POS:THETA {v:.6f}", "phi": "POS:PHI {v:.6f}",
                   "theta?": "POS:THETA?", "phi?": "POS:PHI?"},
}
"""SCPI commands per instrument kind (``{v}`` is the value, in SI)."""


def dbm_to_w(dbm: float) -> float:
    return 10 ** (dbm / 10) * 1e-3


class PowerMeter(ScpiInstrument):
    """A power sensor: :meth:`read_power` in W."""

    kind = "power-meter"

    def set_frequency(self, hz: float) -> None:
        self.set(DIALECTS[self.kind]["freq"].format(v=hz))

    def read_power(self) -> float:
        """Measured power, W (the instrument reports dBm)."""
        return dbm_to_w(self.query_float(DIALECTS[self.kind]["power"]))


class SpectrumAnalyzer(ScpiInstrument):
    """Centre, span, RBW and the marker peak, in W."""

    kind = "spectrum-analyzer"

    def configure(self, center_hz: float, span_hz: float, rbw_hz: float) -> None:
        d = DIALECTS[self.kind]
        for cmd in (d["center"].format(v=center_hz), d["span"].format(v=span_hz),
                    d["rbw"].format(v=rbw_hz)):
            self.set(cmd)

    def read_power(self) -> float:
        """Marker-peak power, W."""
        self.write(DIALECTS[self.kind]["peak"])
        return dbm_to_w(self.query_float(DIALECTS[self.kind]["marker"]))


class Vna(ScpiInstrument):
    """S21 at one frequency (complex, linear)."""

    kind = "vna"

    def set_frequency(self, hz: float) -> None:
        self.set(DIALECTS[self.kind]["freq"].format(v=hz))

    def s21(self) -> complex:
        r = self.query(DIALECTS[self.kind]["s21"])
        try:
            re, im = (float(x) for x in r.split(","))
        except ValueError:
            from rfctl.errors import DeviceError

            raise DeviceError(f"{self.name}: S21 reply {r!r} is not 're,im'") from None
        return complex(re, im)

    def read_power(self) -> float:
        """|S21|² (a power ratio, usable wherever a power sensor is)."""
        return abs(self.s21()) ** 2


class Positioner(ScpiInstrument):
    """Moves the probe to surrogate angles (θ, φ) ∈ [−1, 1]²."""

    kind = "positioner"

    def move(self, theta: float, phi: float) -> None:
        d = DIALECTS[self.kind]
        self.set(d["theta"].format(v=theta))
        self.set(d["phi"].format(v=phi))

    def position(self) -> tuple[float, float]:
        d = DIALECTS[self.kind]
        return self.query_float(d["theta?"]), self.query_float(d["phi?"])


_CLASSES = {c.kind: c for c in (PowerMeter, SpectrumAnalyzer, Vna, Positioner)}


def open_instrument(kind: str, resource: str, *, visa_library: str | None = None,
                    timeout_s: float = 2.0, check_model: bool = True):
    """Entry point (group ``rfctl.instruments``): open an instrument of ``kind``."""
    cls = _CLASSES[kind]
    inst = open_visa(resource, visa_library=visa_library, timeout_s=timeout_s)
    try:
        return cls(inst, f"{kind}@{resource}",
                   DIALECTS[kind]["model"] if check_model else None)
    except Exception:
        inst.close()
        raise


def dbm(w: float) -> float:
    return 10 * math.log10(max(w, 1e-30)) + 30
