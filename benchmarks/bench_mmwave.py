"""Benchmark: ADMM-RHB (issue 5).

* The seed's Fig. 7 setting: 14 × 14, K = N_RF = 4, 9 sensing targets on 0.5…0.7,
  Υ = 11, P = 7. Median time to convergence over realisations (fast F_m step).
* The ratio against the cvxpy reference F_m path, measured in the same run: the same
  ADMM with every F_m subproblem solved by the cvxpy formulation, on a few
  realisations. Same stopping rule.
* Scaling: 8×8, 14×14, 24×24 and 32×32 arrays with N_RF = 4 and 8 (K = 4).

Run: ``python benchmarks/bench_mmwave.py [--realisations N] [--reference M]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np

import rfctl.optimize.mmwave as mm
from rfctl.config import parse_config
from rfctl.optimize.mmwave_fm import fm_step_cvxpy

GRID = [0.5, 0.6, 0.7]
TARGETS = [{"theta": t, "phi": p} for p in GRID for t in GRID]


def scenario(size: int, n_rf: int, seed: int):
    return parse_config({
        "kind": "scenario", "name": "bench", "seed": seed,
        "dbraa": {"rows": size, "cols": size, "f_m": 30e9, "f_s": 5e9, "h_s": 6, "v_s": 6,
                  "n_sub6": 1, "n_rf": n_rf},
        "mmwave": {"users": 4, "paths": 3, "gain_threshold": 11.0, "power": 7.0,
                   "targets": TARGETS},
    })


def reference_fm(p, **_):
    F = fm_step_cvxpy(p)
    return F, {}


def timed(task, **kw) -> tuple[float, mm.MmwaveResult]:
    t0 = time.perf_counter()
    r = mm.admm_hybrid(task, "RHB", **kw)
    return time.perf_counter() - t0, r


def main() -> None:
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    ap = argparse.ArgumentParser()
    ap.add_argument("--realisations", type=int, default=20)
    ap.add_argument("--reference", type=int, default=2)
    a = ap.parse_args()
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cores")
    times, its, res = [], [], []
    for s in range(a.realisations):
        task = mm.task_from_scenario(scenario(14, 4, s))
        t, r = timed(task)
        times.append(t)
        its.append(r.iterations)
        res.append(r)
    med = statistics.median
    print(f"ADMM-RHB 14x14, K = N_RF = 4, 9 targets: median {med(times) * 1e3:.1f} ms to "
          f"convergence (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, "
          f"n = {len(times)}), median {med(its):.0f} iterations; min gain margin "
          f"{min(r.residuals['gain'] for r in res):+.3f}; scaled {sum(r.scaled for r in res)}"
          f"/{len(res)}  [target median <= 100 ms]")
    fast_step = mm.fm_step_fast
    ref_t, fast_t, diffs = [], [], []
    try:
        mm.fm_step_fast = reference_fm  # the same ADMM with the cvxpy F_m path
        for s in range(a.reference):
            task = mm.task_from_scenario(scenario(14, 4, s))
            t, r = timed(task)
            ref_t.append(t)
            diffs.append(abs(r.sum_rate - res[s].sum_rate) / res[s].sum_rate)
            fast_t.append(times[s])
    finally:
        mm.fm_step_fast = fast_step
    print(f"reference F_m path (cvxpy, rebuilt each iteration): median {med(ref_t):.2f} s "
          f"(n = {len(ref_t)}); sum-rate differs from the fast path by at most "
          f"{max(diffs):.1e} (relative); ratio {med(ref_t) / med(fast_t):.0f}x")
    print("scaling (median over 3 realisations): size, N_RF, ms, iterations")
    for size in (8, 14, 24, 32):
        for nrf in (4, 8):
            ts, it = [], []
            for s in range(3):
                t, r = timed(mm.task_from_scenario(scenario(size, nrf, 100 + s)))
                ts.append(t)
                it.append(r.iterations)
            print(f"  {size:2d}x{size:<2d} N_RF={nrf}: {med(ts) * 1e3:7.1f} ms, "
                  f"{med(it):.0f} iterations")


if __name__ == "__main__":
    main()
