"""pyvisa-sim definitions of the simulated instruments (static readings, error queues),
speaking the generic SCPI dialects: ``INIT:CONT OFF`` once, then one line per reading
(``INIT;*OPC?;:<read>`` answered ``1;<value>`` in one message: the device's ``delimiter``
is set to a byte that never occurs, so pyvisa-sim matches each line whole)."""

from __future__ import annotations

from .scpi_instruments import MODELS

__all__ = ["sim_yaml"]

_MEASURE = {"power-meter": ("INIT;*OPC?;:FETC?", "1;{RANDOM(-41, -39, 1):.3f}"),
            "spectrum-analyzer": ("INIT;*OPC?;:CALC:MARK:MAX;:CALC:MARK:Y?",
                                  "1;{RANDOM(-41, -39, 1):.3f}"),
            "vna": ("INIT;*OPC?;:CALC:DATA? SDATA", "1;{RANDOM(0, 1, 1):.4f},0.0")}
_PROPS = {"power-meter": [("frequency", "SENS:FREQ", 1e9, 1e6, 110e9)],
          "spectrum-analyzer": [("frequency", "FREQ:CENT", 1e9, 1e6, 110e9),
                                ("span", "FREQ:SPAN", 1e6, 0.0, 1e10),
                                ("rbw", "BAND:RES", 1e3, 1.0, 1e7)],
          "vna": [("frequency", "SENS:FREQ:CW", 1e9, 1e6, 110e9)],
          "positioner": [("theta", "POS:THETA", 0.0, -1.0, 1.0),
                         ("phi", "POS:PHI", 0.0, -1.0, 1.0)]}
_AVER = {"power-meter": "SENS:AVER:COUN", "spectrum-analyzer": "AVER:COUN",
         "vna": "SENS:AVER:COUN"}


def sim_yaml(resources: dict[str, str]) -> str:
    """pyvisa-sim definitions of the instruments (static readings, error queues).

    Parameters
    ----------
    resources : dict of kind to VISA resource name
    """
    devs, res = [], []
    for kind, resource in resources.items():
        dialogues = [f'      - q: "*IDN?"\n        r: "RFCTL,{MODELS[kind]},0001,2.0"']
        if kind in _MEASURE:
            q, r = _MEASURE[kind]
            setup = "INIT:CONT OFF;:UNIT:POW DBM" if kind == "power-meter" else "INIT:CONT OFF"
            dialogues += [f'      - q: "{setup}"', f'      - q: "{q}"\n        r: "{r}"']
        props = list(_PROPS[kind])
        if kind in _AVER:
            props.append(("average", _AVER[kind], 1, 0, 1024))
        prop_txt = ""
        for name, head, default, lo, hi in props:
            fmt = "{:d}" if name == "average" else ("{:.6f}" if kind == "positioner"
                                                     else "{:.9e}")
            prop_txt += f"""        {name}:
          default: {default}
          getter:
            q: "{head}?"
            r: "{fmt}"
          setter:
            q: "{head} {fmt}"
          specs:
            min: {lo}
            max: {hi}
            type: {"int" if name == "average" else "float"}
"""
        devs.append(f"""  {kind}:
    delimiter: "\\x00"
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
