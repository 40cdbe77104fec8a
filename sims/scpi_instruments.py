"""Simulated SCPI instruments (power meter, spectrum analyzer, VNA, positioner) that
measure a bench model, written from the generic SCPI conventions (not from the drivers).

Behaviour that matters for the lab loop:

- **Sweeps.** In continuous mode (the power-on default, ``INIT:CONT ON``) the trace is
  refreshed only once per ``sweep_time_s``; a marker query returns the trace the
  instrument holds, which may predate the last change of the board. With
  ``INIT:CONT OFF``, ``INIT`` (or ``INIT:IMM``) takes a sweep now and ``*OPC?`` answers
  ``1`` once it is complete.
- Several commands may share one line, separated by ``;`` (a leading ``:`` restarts at
  the root); the replies of the queries in a line are joined by ``;``.
- Settings have ranges; a value out of range, a malformed number or an unknown header
  queues an error for ``SYST:ERR?`` and changes nothing.
- ``AVER:COUN n`` averages n independent noisy readings (power averaging).
- ``UNIT:POW DBM`` (the default) or ``UNIT:POW W`` sets the unit of power readings.

**Fault injection** (attributes a test sets): after ``fault_after`` readings every
reading is replaced by ``fault_reply`` (e.g. SCPI's "not a number" ``+9.91000000E+37``,
``NAN``) when that is set, and ``fault_error`` (e.g. ``-231,"Data questionable"``) is
queued for ``SYST:ERR?`` with each reading when that is set; ``opc_reply`` is what
``*OPC?`` answers (``1``; some makes say ``+1``) and ``opc_delay_s`` how long it takes
(a slow sweep); ``silent`` stops all replies.

The bench model supplies ``field(freq_hz) -> complex`` (in units of one element's field),
``element_power_w`` and, for a positioner, a writable ``probe`` (θ, φ).
"""

from __future__ import annotations

import math
import time

__all__ = ["K_BOLTZMANN", "MODELS", "SimInstrument"]

K_BOLTZMANN = 1.380649e-23
MODELS = {"power-meter": "PM-SIM", "spectrum-analyzer": "SA-SIM", "vna": "VNA-SIM",
          "positioner": "POS-SIM"}
"""The model field of each simulated instrument's ``*IDN?``."""

# header → (setting key, min, max); per instrument kind
_SETTINGS = {
    "power-meter": {"SENS:FREQ": ("freq", 1e6, 110e9), "SENS:AVER:COUN": ("avg", 1, 1024)},
    "spectrum-analyzer": {"FREQ:CENT": ("freq", 1e6, 110e9), "FREQ:SPAN": ("span", 0.0, 1e10),
                          "BAND:RES": ("rbw", 1.0, 1e7), "AVER:COUN": ("avg", 0, 1024)},
    "vna": {"SENS:FREQ:CW": ("freq", 1e6, 110e9), "SENS:AVER:COUN": ("avg", 1, 1024)},
    "positioner": {"POS:THETA": ("theta", -1.0, 1.0), "POS:PHI": ("phi", -1.0, 1.0)},
}
_READ = {"power-meter": ("FETC?", "MEAS:POW?"), "spectrum-analyzer": ("CALC:MARK:Y?",),
         "vna": ("CALC:DATA? SDATA", "CALC:DATA:S21?")}


def _dbm(w: float) -> float:
    return 10 * math.log10(max(w, 1e-30)) + 30


class SimInstrument:
    """SCPI line handler (``str -> str | None``) of one simulated instrument.

    Parameters
    ----------
    kind : str
    bench : object
        The bench model (see the module docstring).
    sweep_time_s : float
        Sweep period in continuous mode, s.
    """

    def __init__(self, kind: str, bench, *, sweep_time_s: float = 0.02,
                 freq_hz: float = 30e9) -> None:
        self.kind = kind
        self.bench = bench
        self.errors: list[str] = []
        self.values: dict[str, float] = {"freq": freq_hz, "span": 1e6, "rbw": 1e3, "avg": 1,
                                         "theta": 0.0, "phi": 0.0}
        self.continuous = True
        self.sweep_time_s = sweep_time_s
        self._trace: float | complex | None = None
        self._trace_t = -math.inf
        self.sweeps = 0
        self.silent = False  # fault: never answer queries
        self.unit = "DBM"
        self.readings = 0  # marker/fetch readings answered
        self.fault_after: int | None = None
        self.fault_reply: str | None = None
        self.fault_error: str | None = None
        self.opc_reply = "1"
        self.opc_delay_s = 0.0
        self.model = MODELS[kind]  # the *IDN? model field (a test may pose as another make)

    # ---------------------------------------------------------------- physics
    def _sweep(self) -> None:
        b = self.bench
        n = max(1, int(self.values["avg"]))
        if self.kind == "vna":
            ys = [b.field(self.values["freq"]) for _ in range(n)]
            self._trace = sum(ys) / n * math.sqrt(b.element_power_w)
        else:
            p = sum(abs(b.field(self.values["freq"])) ** 2 for _ in range(n)) / n
            p *= b.element_power_w
            if self.kind == "spectrum-analyzer":
                p += K_BOLTZMANN * 290 * self.values["rbw"] * 10  # NF = 10 dB
            self._trace = p
        self._trace_t = time.perf_counter()
        self.sweeps += 1

    def _reading(self) -> str:
        if self.continuous and time.perf_counter() - self._trace_t >= self.sweep_time_s:
            self._sweep()
        if self._trace is None:
            self._sweep()
        t = self._trace
        self.readings += 1
        if self.fault_after is not None and self.readings > self.fault_after:
            if self.fault_error is not None:
                self.errors.append(self.fault_error)
            if self.fault_reply is not None:
                return self.fault_reply
        if isinstance(t, complex):
            return f"{t.real:.9e},{t.imag:.9e}"
        if self.unit == "W":
            return f"{float(t):+.8E}"
        return f"{_dbm(float(t)):.4f}"

    # ---------------------------------------------------------------- SCPI
    def _set(self, key: str, arg: str, lo: float, hi: float) -> None:
        try:
            v = float(arg)
        except ValueError:
            self.errors.append('-104,"Data type error"')
            return
        if not lo <= v <= hi:
            self.errors.append('-222,"Data out of range"')
            return
        self.values[key] = v
        if self.kind == "positioner":
            self.bench.probe = (self.values["theta"], self.values["phi"])

    def _one(self, cmd: str) -> str | None:
        up = cmd.upper()
        if up == "*IDN?":
            return f"RFCTL,{self.model},0001,2.0"
        if up == "SYST:ERR?":
            return self.errors.pop(0) if self.errors else '0,"No error"'
        if up in ("*OPC?",):
            if self.opc_delay_s > 0:
                time.sleep(self.opc_delay_s)
            return self.opc_reply
        if up in ("UNIT:POW DBM", "UNIT:POW W"):
            self.unit = up.rsplit(" ", 1)[1]
            return None
        if up in ("*WAI", "*CLS", "CALC:MARK:MAX"):
            if up == "*CLS":
                self.errors.clear()
            return None
        if up in ("INIT", "INIT:IMM"):
            self._sweep()
            return None
        head, _, arg = cmd.partition(" ")
        if head.upper() == "INIT:CONT":
            if arg.strip().upper() in ("ON", "1", "OFF", "0"):
                self.continuous = arg.strip().upper() in ("ON", "1")
            else:
                self.errors.append('-224,"Illegal parameter value"')
            return None
        table = _SETTINGS[self.kind]
        if head.upper() in table and arg:
            key, lo, hi = table[head.upper()]
            self._set(key, arg, lo, hi)
            return None
        if up.endswith("?") and up[:-1] in table:
            v = self.values[table[up[:-1]][0]]
            return f"{v:.9e}" if self.kind != "positioner" else f"{v:.6f}"
        if up in _READ.get(self.kind, ()):
            if up == "MEAS:POW?" or up == "CALC:DATA:S21?":
                self._sweep()  # MEASure = INIT + FETCh
            return self._reading()
        self.errors.append('-113,"Undefined header"')
        return None

    def __call__(self, line: str) -> str | None:
        if self.silent:
            return None
        replies = []
        for part in line.split(";"):
            cmd = part.strip().lstrip(":").strip()
            if not cmd:
                continue
            r = self._one(cmd)
            if r is not None:
                replies.append(r)
        return ";".join(replies) if replies else None
