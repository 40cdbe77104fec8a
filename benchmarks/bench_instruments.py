"""What reading the instrument's error queue costs per reading (issue 13, trial finding
4): synchronised power-meter readings over loopback SCPI (pyvisa-py, rfctl's simulated
meter in this process) with the queue read after every reading (K = 1), every 100
(the default) and never during the readings (K = 0, the reference path), interleaved in
the same run; and the round trip of one empty-queue ``SYST:ERR?``.

Wall time per reading and process CPU time per reading (client and simulated server
together: both run in this process). The machine is shared with other jobs.

Run: ``python benchmarks/bench_instruments.py [readings] [repeats]``
"""

from __future__ import annotations

import statistics
import sys

from _bench import machine, timed
from rfctl.drivers.instruments import open_instrument
from rfctl.sims.sim_bench import BenchModel, SimBench
from rfctl.sims.simboard import SimBoardFirmware

from rfctl.config import load_config


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    profile = load_config("sim-lab-8x8")
    model = BenchModel.random(SimBoardFirmware.from_profile(profile), profile, 8, 8, seed=1,
                              noise=0.05)
    print(machine())
    with SimBench(model) as bench:
        res = bench.start()
        per: dict[str, list[tuple[float, float]]] = {}
        for _ in range(reps):
            for k in (0, 100, 1):
                pm = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                                     error_check_every=k)
                wall, cpu, _ = timed(lambda pm=pm: [pm.read_power() for _ in range(n)])
                per.setdefault(f"reading, K = {k}", []).append((wall / n, cpu / n))
                if k == 0:
                    wall, cpu, _ = timed(lambda pm=pm: [pm.poll_errors() for _ in range(n)])
                    per.setdefault("empty-queue SYST:ERR?", []).append((wall / n, cpu / n))
                pm.close()
    for what, v in per.items():
        w = [x[0] * 1e3 for x in v]
        c = [x[1] * 1e3 for x in v]
        print(f"{what:24s} wall median {statistics.median(w):.3f} ms (runs "
              f"{', '.join(f'{x:.3f}' for x in w)}); CPU median {statistics.median(c):.3f} ms")


if __name__ == "__main__":
    main()
