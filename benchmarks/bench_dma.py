"""Benchmark: the DMA alternating optimisation (issues 7 and 12).

The reference geometry is 4 waveguides × 8 elements (L = 32), M = 3 users, D = 3
directions, P_max = 1 W, σ² = 1e-12 W (k_B T B F for 100 MHz, F = 4 dB) with the
received-power channel scale and the default targets. Every design runs to the
alternation's own stopping test (cap 400 iterations); the stop reasons are printed.

Reported, each with its reference path in the same run (the machine is shared, so
ratios are the fair comparison):

1. one full design at L = 32 (native Clarabel SDR) and the same draws with the cvxpy
   SDR reference (``digital_backend="cvxpy"``);
2. one SDR solve, native vs cvxpy, on the same problems, and their agreement;
3. one P4 solve, Clarabel direct vs cvxpy;
4. L = 128 as 8 × 16 (N = 8 RF chains) and as 4 × 32 (N = 4);
5. the design for the ``sim-dma-4x8`` board: time and whether every constraint holds
   on the codes.

BLAS threads: the script pins OpenBLAS to one thread (``OPENBLAS_NUM_THREADS=1``, unless
already set) before NumPy loads. On the shared 2-core machine (load average ~5) a
multi-threaded OpenBLAS spin-waits on every 128 × 128 inverse: measured 104 ms per
inverse inside a design vs 0.9 ms alone, and 20.2 s vs 2.3 s for one L = 128 (4 × 32)
design. Run with ``OPENBLAS_NUM_THREADS=2`` to see the effect.

Run: ``python benchmarks/bench_dma.py [--draws N] [--ref-draws K] [--cli R ...]``
(``--cli 0 1 2 3 4 5 6 7``: the CLI's draws, ``method="newton"`` and ``"reduced"``).

Every design row of the default step (``method="newton"``) is followed by
``method="reduced"`` (the default before) on the same draws in the same run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import statistics
import time
import warnings

import numpy as np

import rfctl.optimize.dma as dm
from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.optimize.dma_digital import _solve, solve_digital, tightened

med = statistics.median


def task_for(spec, seed: int) -> dm.DmaTask:
    rng = np.random.default_rng(seed)
    m = DmaModel.from_spec(spec, origin=(0, 0, 10))
    users = np.column_stack([rng.uniform(-20, 20, 3), rng.uniform(20, 60, 3), np.full(3, 1.5)])
    return dm.DmaTask(m, users, np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944]), 1e-12,
                      1.0)


def designs(spec, seeds, **kw):
    out = []
    for s in seeds:
        task = task_for(spec, s)
        t0, c0 = time.perf_counter(), time.process_time()
        d = dm.design_dma(task, rng=np.random.default_rng(100 + s), **kw)
        out.append((time.perf_counter() - t0, d, task, time.process_time() - c0))
    return out


def cli_draws(realisations, **kw) -> None:
    """``rfctl optimize dma --scenario dma-4x8 --realisation R`` for each R: iterations,
    stop reason, χ, objective and CPU time."""
    sc = load_config("dma-4x8")
    for r in realisations:
        task, rng = dm.task_from_scenario(sc, r)
        c0 = time.process_time()
        d = dm.design_dma(task, rng=rng, **kw)
        print(f"  R = {r}: {d.iterations} iterations, {d.stop_reason.value}, chi "
              f"{d.stationarity:.1e}, objective {d.objective:.7f}, CPU "
              f"{time.process_time() - c0:.2f} s, feasible "
              f"{task.feasible(task.exact(d.b, d.B))}")


def summary(label: str, rows) -> str:
    t = [r[0] for r in rows]
    d = [r[1] for r in rows]
    conv = sum(x.outcome.converged for x in d)
    cpu = [r[3] for r in rows]
    return (f"{label}: median {med(t):.2f} s wall, {med(cpu):.2f} s CPU (min {min(t):.2f}, "
            f"max {max(t):.2f} wall, n = {len(t)}); digital "
            f"{med([x.digital_s for x in d]):.2f} s, analog "
            f"{med([x.analog_s for x in d]):.2f} s; iterations "
            f"{[x.iterations for x in d]}; converged {conv}/{len(d)}; objective gain "
            f"median {med([x.objective / x.trace[0] for x in d]):.2f}x; objectives "
            f"{[round(x.objective, 4) for x in d]}; all feasible "
            f"{all(task.feasible(task.exact(x.b, x.B)) for _, x, task, _ in rows)}")


def main() -> None:
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=7)
    ap.add_argument("--ref-draws", type=int, default=3)
    ap.add_argument("--big-draws", type=int, default=3)
    ap.add_argument("--cli", type=int, nargs="*", default=[],
                    help="also run these realisations of the CLI's dma-4x8 task, both steps")
    a = ap.parse_args()
    base = load_config("dma-4x8").dma
    print(f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    seeds = range(a.draws)
    fast = designs(base, seeds)
    print(summary("L = 32 (4 x 8), native SDR   ", fast))
    prev = designs(base, seeds, method="reduced")
    print(summary("L = 32, method=reduced (before)", prev))
    ref = designs(base, range(a.ref_draws), digital_backend="cvxpy")
    print(summary("L = 32 (4 x 8), cvxpy SDR ref", ref))
    ratio = med([r[0] for r in ref]) / med([f[0] for f in fast[:a.ref_draws]])
    print(f"  full-design ratio cvxpy/native on the same {a.ref_draws} draws: {ratio:.1f}x; "
          f"objectives {[round(f[1].objective, 4) for f in fast[:a.ref_draws]]} vs "
          f"{[round(r[1].objective, 4) for r in ref]}")
    p4 = designs(base, seeds, method="p4")
    print(summary("L = 32, the seed's P4 step    ", p4))
    # one SDR: native vs cvxpy on the same problems
    tn, tc, agree = [], [], []
    for s in seeds:
        task = task_for(base, s)
        b = np.random.default_rng(s).normal(0, 10, task.model.L)
        p = tightened(task.problem(b), 1e-3)
        t0 = time.perf_counter()
        st1, v1, *_ = _solve(p, "clarabel")
        tn.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st2, v2, *_ = _solve(p, "cvxpy")
        tc.append(time.perf_counter() - t0)
        if st1.startswith("optimal") and st2.startswith("optimal"):
            agree.append(abs(v1 - v2) / abs(v2))
    print(f"one SDR (N = 4): native {med(tn) * 1e3:.1f} ms, cvxpy {med(tc) * 1e3:.1f} ms "
          f"({med(tc) / med(tn):.1f}x); optima agree to max {max(agree):.1e} "
          f"({len(agree)} feasible draws)")
    # one P4: Clarabel direct vs cvxpy
    task = task_for(base, 0)
    b = min((np.random.default_rng(i).normal(0, 10, task.model.L) for i in range(50)),
            key=lambda x: dm._max_correlation(task, x))
    B = solve_digital(task.problem(b)).B
    *lm, Phi = dm._linear_model(task, b, B)
    delta = 1.0 / dm.spectral_norm(Phi)
    box = (np.full(b.size, -delta), np.full(b.size, delta))
    tf, tr = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        _, v1 = dm._solve_p4_clarabel(task, *lm, box)
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, v2 = dm._solve_p4_cvxpy(task, *lm, box)
        tr.append(time.perf_counter() - t0)
    print(f"one P4 (L = 32): Clarabel direct {med(tf) * 1e3:.1f} ms, cvxpy {med(tr) * 1e3:.1f} "
          f"ms ({med(tr) / med(tf):.1f}x); predicted gains agree to "
          f"{abs(v1 - v2) / abs(v2):.1e}")
    for N, Lm in ((8, 16), (4, 32)):
        spec = base.model_copy(update={"n_waveguides": N, "elements_per_waveguide": Lm})
        rows = designs(spec, range(a.big_draws))
        print(summary(f"L = 128 ({N} x {Lm})", rows))
        rows = designs(spec, range(a.big_draws), method="reduced")
        print(summary(f"L = 128 ({N} x {Lm}), method=reduced (before)", rows))
    # the board design
    from rfctl.studies import check_dma_state, design_dma_for_board

    tb, ok = [], []
    for s in seeds:
        task = task_for(base, s)
        t0 = time.perf_counter()
        bd = design_dma_for_board(task, "sim-dma-4x8", rng=np.random.default_rng(100 + s))
        tb.append(time.perf_counter() - t0)
        ok.append(bd.report["feasible"] and check_dma_state(bd.state, "sim-dma-4x8")[
            "feasible"])
    print(f"design for sim-dma-4x8 (L = 32): median {med(tb):.2f} s; every constraint met "
          f"on the board's codes (re-checked) in {sum(ok)}/{len(ok)} draws")
    for method in ("newton", "reduced") if a.cli else ():
        print(f"CLI draws, method={method}:")
        cli_draws(a.cli, method=method)


if __name__ == "__main__":
    main()
