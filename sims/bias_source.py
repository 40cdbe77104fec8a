"""A simulated multi-channel SCPI bias source (loopback socket for pyvisa-py, or a
pyvisa-sim YAML definition).

Its command set is declared here, from the instrument's manual conventions (IEEE 488.2
common commands, SCPI error queue, ``CHn:VOLT``), not imported from the driver, so a
mistake in the driver's dialect shows up as a failing exchange. ``*ESR?`` reports the
power-on bit (PON, 128) once after every power-up; ``*RST`` puts every channel back to
its power-on value (the lowest voltage) without setting PON.
"""

from __future__ import annotations

import re

import numpy as np

from .scpi_server import ScpiServer

DIALECT = {
    "idn": "*IDN?",
    "set": "CH{ch}:VOLT {v:.4f}",
    "get": "CH{ch}:VOLT?",
    "err": "SYST:ERR?",
    "esr": "*ESR?",
    "rst": "*RST",
    "no_error": '0,"No error"',
    "range_error": '-222,"Data out of range"',
    "command_error": '-100,"Command error"',
}

__all__ = ["BiasSourceSim", "bias_server", "sim_yaml"]


def sim_yaml(*, channels: int, v_min: float, v_max: float, resource: str,
             idn: str = "RFCTL,BIAS-SIM,0001,1.0") -> str:
    """A pyvisa-sim instrument definition of this dialect (same declaration)."""
    set_q = DIALECT["set"].replace("{ch}", "{ch_id}").replace("{v:.4f}", "{:.4f}")
    get_q = DIALECT["get"].replace("{ch}", "{ch_id}")
    ids = ", ".join(str(i) for i in range(1, channels + 1))
    return f"""spec: "1.1"
devices:
  bias:
    eom:
      TCPIP SOCKET:
        q: "\\n"
        r: "\\n"
      ASRL INSTR:
        q: "\\n"
        r: "\\n"
    error:
      error_queue:
        - q: '{DIALECT["err"]}'
          default: '{DIALECT["no_error"]}'
          command_error: '{DIALECT["range_error"]}'
    dialogues:
      - q: "{DIALECT["idn"]}"
        r: "{idn}"
      - q: "{DIALECT["esr"]}"
        r: "0"
    channels:
      channel:
        ids: [{ids}]
        can_select: True  # pyvisa-sim: channel id inline in each command
        properties:
          voltage:
            default: {v_min:.4f}
            getter:
              q: "{get_q}"
              r: "{{:.4f}}"
            setter:
              q: "{set_q}"
            specs:
              min: {v_min}
              max: {v_max}
              type: float
resources:
  {resource}:
    device: bias
"""


class BiasSourceSim:
    """A SCPI bias source on a loopback TCP socket, for pyvisa-py (TCPIP SOCKET).

    Parameters
    ----------
    channels : int
    v_min, v_max : float
        Allowed range; a setting outside it is refused and queued as an error.
    model : str
        Model field of ``*IDN?``.
    """

    def __init__(self, channels: int, v_min: float, v_max: float, *,
                 model: str = "BIAS-SIM", drop_sets: set[int] | None = None) -> None:
        self.volts = np.full(channels, float(v_min))
        self.v_min, self.v_max = v_min, v_max
        self.model = model
        self.errors: list[str] = []
        self.drop_sets = drop_sets or set()  # fault: these channels ignore sets
        self.pon = True  # power-on bit of *ESR?, cleared when read
        self._set_re = re.compile("^" + re.escape(DIALECT["set"]).replace(
            r"\{ch\}", r"(\d+)").replace(r"\{v:\.4f\}", r"([-+0-9.eE]+)") + "$", re.I)
        self._get_re = re.compile("^" + re.escape(DIALECT["get"]).replace(
            r"\{ch\}", r"(\d+)") + "$", re.I)
        self._server: ScpiServer | None = None

    def handle(self, line: str) -> str | None:
        """Execute one command line.

        Parameters
        ----------
        line : str
            One SCPI command, terminator optional.

        Returns
        -------
        str or None
            The reply of a query; None for a setting (errors go to the queue that
            ``SYST:ERR?`` drains).
        """
        line = line.strip()
        if line.upper() == DIALECT["idn"]:
            return f"RFCTL,{self.model},0001,1.0"
        if line.upper() == DIALECT["err"]:
            return self.errors.pop(0) if self.errors else DIALECT["no_error"]
        if line.upper() == DIALECT["esr"]:
            esr, self.pon = (128 if self.pon else 0), False
            return str(esr)
        if line.upper() == DIALECT["rst"]:
            self.volts[:] = self.v_min
            return None
        m = self._set_re.match(line)
        if m:
            ch, v = int(m.group(1)), float(m.group(2))
            if not 1 <= ch <= self.volts.size or not self.v_min <= v <= self.v_max:
                self.errors.append(DIALECT["range_error"])
            elif ch not in self.drop_sets:
                self.volts[ch - 1] = v
            return None
        m = self._get_re.match(line)
        if m and 1 <= int(m.group(1)) <= self.volts.size:
            return f"{self.volts[int(m.group(1)) - 1]:.4f}"
        self.errors.append(DIALECT["command_error"])
        return None

    def power_cycle(self) -> None:
        """Power down and up: channels to their power-on value, PON set, errors cleared."""
        self.volts[:] = self.v_min
        self.errors.clear()
        self.pon = True

    def start(self, port: int = 0) -> int:
        """Listen on 127.0.0.1 (``port``; 0: any free port); returns the port."""
        self._server = ScpiServer(self.handle)
        return self._server.start(port)

    def stop(self) -> None:
        """Stop the loopback server, if one was started."""
        if self._server is not None:
            self._server.stop()


def bias_server(profile) -> BiasSourceSim:
    """Entry point (group ``rfctl.sims``, name ``bias-server``): the simulated bias source
    of a ``visa-bias`` board profile (its Lorentzian bank's channel count and ``bias_v``
    range, its model in ``*IDN?``), not yet listening (:meth:`BiasSourceSim.start`)."""
    bank = profile.bank("lorentzian")
    lo, hi = bank.bias_v
    return BiasSourceSim(bank.count, lo, hi, model=profile.model)
