"""Benchmarks of the lab loop (issue 6).

1. A 181-point beam sweep on the simulated bench: the board is served by
   ``rfctl sim-board``-style UART timing at 921600 baud on a loopback socket (in its own
   thread of this process), and the power meter by pyvisa-py over loopback SCPI. The
   time per point is compared with the link's lower bound per point, which is the line
   time of the bytes the program call sends plus its final reply.
2. Phase calibration of a 64-element (8 × 8) array with hidden offsets uniform on
   ±180° and ±10 % gain errors, at receiver noise σ = 0.05 (one element's field = 1):
   measurements needed and the residual RMS phase error (degrees, global phase removed),
   for 8 and 4 phase states per element.

Run: ``python benchmarks/bench_lab.py``
"""

from __future__ import annotations

import platform
import statistics
import sys

import numpy as np
from rfctl.drivers.instruments import open_instrument
from rfctl.drivers.protocol import Cmd, encode_frame, reply_payload
from rfctl.drivers.rfctl_board import open_rfctl_board
from rfctl.sims.sim_bench import BenchModel, SimBench
from rfctl.sims.simboard import SimBoardFirmware
from rfctl.sims.simserver import SimServer

from rfctl.config import load_config
from rfctl.hal import compile_board
from rfctl.lab import beam_sweep, phase_calibration

BAUD = 921_600
LATCH_REPLY = len(encode_frame(1, Cmd.LATCH | 0x80, reply_payload(0, 1, b"\0\0\0\0")))


def circular_rms_deg(est, truth) -> float:
    e = np.angle(np.exp(1j * (est - truth)))
    e = np.angle(np.exp(1j * (e - np.angle(np.mean(np.exp(1j * e))))))
    return float(np.degrees(np.sqrt(np.mean(e ** 2))))


def main() -> None:
    sys.setswitchinterval(1e-4)
    print(f"Python {platform.python_version()}, numpy {np.__version__}")
    prof = load_config("sim-lab-8x8")
    fw = SimBoardFirmware.from_profile(prof)
    model = BenchModel.random(fw, prof, 8, 8, seed=21, noise=0.05)
    with SimBench(model) as bench, SimServer(fw, baud=BAUD) as srv:
        res = bench.start()
        dev = open_rfctl_board(prof, url=srv.start_socket())
        pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
        angles = [(float(t), 0.0) for t in np.linspace(-1, 1, 181)]
        runs = []
        for _ in range(3):
            before = dev.stats.copy()
            data = beam_sweep(dev, compile_board(prof), pm, angles, rows=8, cols=8)
            used = dev.stats.since(before)
            per_point = data.elapsed_s / len(angles)
            bound = (used.bytes_tx / len(angles) + LATCH_REPLY) * 10 / BAUD
            prog = statistics.median(data.column("program_s"))
            runs.append((per_point, bound, prog, used.bytes_tx / len(angles)))
        dev.close()
        pm.close()
    per_point, bound, prog, b = min(runs)
    print(f"181-point beam sweep (8x8 board at {BAUD} baud + pyvisa-py power meter): "
          f"{per_point * 1e3:.2f} ms per point (best of 3 runs; "
          f"{sorted(r[0] * 1e3 for r in runs)} ms), of which programming {prog * 1e3:.2f} ms; "
          f"link lower bound {bound * 1e3:.2f} ms per point ({b:.0f} bytes sent per point); "
          f"ratio {per_point / bound:.2f}x (programming alone {prog / bound:.2f}x)")
    for states in (8, 4):
        fw = SimBoardFirmware.from_profile(prof)
        model = BenchModel.random(fw, prof, 8, 8, seed=22, noise=0.05)
        dev = open_rfctl_board(prof, firmware=fw)
        with SimBench(model) as bench:
            pm = open_instrument("power-meter", bench.start()["power-meter"],
                                 visa_library="@py")
            cal = phase_calibration(dev, prof, pm, rows=8, cols=8, states=states, passes=3)
            pm.close()
        per_pass = [round(circular_rms_deg(h, model.offsets), 2) for h in cal.passes]
        after_db = 10 * np.log10(cal.power_after_w / model.ideal_power_w())
        before_db = 10 * np.log10(cal.power_before_w / model.ideal_power_w())
        pred = np.degrees(model.noise / np.sqrt(states) * np.sqrt(np.mean(1 / model.gains ** 2)))
        print(f"calibration, 64 elements, {states} states x 3 passes: {cal.measurements} "
              f"measurements; residual RMS phase error per pass {per_pass} deg (before: "
              f"{circular_rms_deg(np.zeros(64), model.offsets):.1f} deg; noise prediction "
              f"{pred:.2f} deg); beam at the probe {after_db:+.3f} dB from ideal "
              f"(uncalibrated {before_db:+.2f} dB)")


if __name__ == "__main__":
    main()
