"""pyvisa-sim definitions of the simulated instruments (static readings, error queues)."""

from __future__ import annotations

from rfctl.drivers.instruments import DIALECTS

__all__ = ["sim_yaml"]


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
