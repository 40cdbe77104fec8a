"""VISA instrument drivers for the lab loop: power meter, spectrum analyzer, VNA and
positioner. Everything is in SI: W, Hz, and complex S21. Surrogate angles are
dimensionless.

The SCPI dialect is declared once in :data:`DIALECTS`. The drivers, the pyvisa-sim YAML
(:func:`sim_yaml`) and the loopback bench (:mod:`sim_bench`) all use that declaration.
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
    "sim_yaml",
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


def sim_yaml(resources: dict[str, str]) -> str:
    """pyvisa-sim definitions of the instruments (static readings, error queues).

    Parameters
    ----------
    resources : dict of kind to VISA resource name
    """

    def q(s: str) -> str:
        return s.split(" ")[0]

    devs, res = [], []
    for kind, resource in resources.items():
        d = DIALECTS[kind]
        props = []
        dialogues = [f'      - q: "*IDN?"\n        r: "RFCTL,{d["model"]},0001,1.0"']
        if kind == "power-meter":
            dialogues.append(f'      - q: "{d["power"]}"\n        r: "{{RANDOM(-41, -39, 1):.3f}}"')
            props.append(("freq", d["freq"], 1e9, 1e6, 110e9))
        elif kind == "spectrum-analyzer":
            dialogues.append(f'      - q: "{d["peak"]}"')
            dialogues.append(
                f'      - q: "{d["marker"]}"\n        r: "{{RANDOM(-41, -39, 1):.3f}}"')
            props += [("center", d["center"], 1e9, 1e6, 110e9),
                      ("span", d["span"], 1e6, 1.0, 1e10), ("rbw", d["rbw"], 1e3, 1.0, 1e7)]
        elif kind == "vna":
            dialogues.append(f'      - q: "{d["s21"]}"\n        r: "{{RANDOM(0, 1, 1):.4f}},0.0"')
            props.append(("freq", d["freq"], 1e9, 1e6, 110e9))
        else:
            props += [("theta", d["theta"], 0.0, -1.0, 1.0), ("phi", d["phi"], 0.0, -1.0, 1.0)]
        prop_txt = ""
        for name, cmd, default, lo, hi in props:
            fmt = cmd.split(" ", 1)[1].replace("{v:", "{:")
            getter = f'''          getter:
            q: "{q(cmd)}?"
            r: "{fmt}"''' if kind == "positioner" else ""
            prop_txt += f"""        {name}:
          default: {default}
{getter}
          setter:
            q: "{q(cmd)} {fmt}"
          specs:
            min: {lo}
            max: {hi}
            type: float
"""
        devs.append(f"""  {kind}:
    eom:
      TCPIP SOCKET:
        q: "\\n"
        r: "\\n"
    error:
      error_queue:
        - q: 'SYST:ERR?'
          default: '0,"No error"'
          command_error: '-222,"Data out of range"'
    dialogues:
{chr(10).join(dialogues)}
    properties:
{prop_txt}""")
        res.append(f"  {resource}:\n    device: {kind}")
    return 'spec: "1.1"\ndevices:\n' + "\n".join(devs) + "\nresources:\n" + "\n".join(res) + "\n"


def dbm(w: float) -> float:
    return 10 * math.log10(max(w, 1e-30)) + 30
