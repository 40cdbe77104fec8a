"""Benchmark: the DMA alternating optimisation (issue 7).

The reference geometry is 4 waveguides × 8 elements (L = 32), M = 3 users, D = 3
directions, P_max = 1 W and σ² = 1e-12 W. The time of one full alternating optimisation
is split into its digital part (the SDR, cvxpy + Clarabel) and its analog part (P4,
Clarabel direct). Growth is measured for L = 16, 32, 64 and 128. The analog
subproblem's fast path is compared with its cvxpy reference in the same run.

Run: ``python benchmarks/bench_dma.py [--draws N]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import numpy as np

import rfctl.optimize.dma as dm
from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.optimize.dma_digital import solve_digital


def task_for(spec, seed: int) -> dm.DmaTask:
    rng = np.random.default_rng(seed)
    m = DmaModel.from_spec(spec, origin=(0, 0, 10))
    users = np.column_stack([rng.uniform(-20, 20, 3), rng.uniform(20, 60, 3), np.full(3, 1.5)])
    return dm.DmaTask(m, users, np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944]), 1e-12,
                      1.0)


def main() -> None:
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=5)
    a = ap.parse_args()
    base = load_config("dma-4x8").dma
    print(f"Python {platform.python_version()}, numpy {np.__version__}")
    rows = []
    for s in range(a.draws):
        task = task_for(base, s)
        t0 = time.perf_counter()
        d = dm.design_dma(task, rng=np.random.default_rng(100 + s))
        rows.append((time.perf_counter() - t0, d))
    med = statistics.median
    t = [r[0] for r in rows]
    print(f"L = 32 (4 x 8), M = 3, D = 3: median {med(t):.2f} s per alternating "
          f"optimisation (min {min(t):.2f}, max {max(t):.2f}, n = {len(t)}); digital "
          f"{med([r[1].digital_s for r in rows]):.2f} s, analog "
          f"{med([r[1].analog_s for r in rows]):.2f} s; objective gain "
          f"{med([r[1].objective / r[1].trace[0] for r in rows]):.2f}x; iterations "
          f"{[r[1].iterations for r in rows]}  [target median <= 5 s]")
    # P4 fast vs cvxpy reference on the same linearisation
    task = task_for(base, 0)
    b = np.random.default_rng(1).normal(0, 10, task.model.L)
    b = min((np.random.default_rng(i).normal(0, 10, task.model.L) for i in range(50)),
            key=lambda x: dm._max_correlation(task, x))
    B = solve_digital(task.problem(b)).B
    *lm, Phi = dm._linear_model(task, b, B)
    delta = 1.0 / np.linalg.norm(Phi, 2)
    tf, tr = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        _, v1 = dm._solve_p4_clarabel(task, *lm, delta)
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, v2 = dm._solve_p4_cvxpy(task, *lm, delta)
        tr.append(time.perf_counter() - t0)
    print(f"analog subproblem P4: Clarabel direct {med(tf) * 1e3:.1f} ms, cvxpy reference "
          f"{med(tr) * 1e3:.1f} ms ({med(tr) / med(tf):.1f}x); predicted gains agree to "
          f"{abs(v1 - v2) / abs(v2):.1e}")
    print("growth (one draw each): L, waveguides x elements, total s, digital s, analog s, "
          "iterations")
    for N, Lm in ((2, 8), (4, 8), (4, 16), (8, 16)):
        spec = base.model_copy(update={"n_waveguides": N, "elements_per_waveguide": Lm})
        task = task_for(spec, 7)
        t0 = time.perf_counter()
        d = dm.design_dma(task, rng=np.random.default_rng(7))
        print(f"  L = {N * Lm:3d} ({N} x {Lm:2d}): {time.perf_counter() - t0:6.2f} s "
              f"(digital {d.digital_s:5.2f}, analog {d.analog_s:5.2f}), {d.iterations} it., "
              f"objective {d.trace[0]:.3g} -> {d.objective:.3g}")


if __name__ == "__main__":
    main()
