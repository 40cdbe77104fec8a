"""Benchmark: quantize a full 32×32-element state, all banks (issue 2 target: median ≤ 1 ms).

The board holds every bank kind at 32×32 size: 1024 six-bit phase shifters, a 1024 × 4
switch matrix, the 32×32 panel's 1984 PIN-diode links, 8 sub-6G feed muxes and 1024
Lorentzian elements with an 8-bit (256-entry) tuning table. The reference path runs the
brute-force nearest-code searches of ``rfctl.hal.reference`` on the same inputs, in the
same run, so the printed ratio is machine-independent.

Run: ``python benchmarks/bench_quantize.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import rfctl
from rfctl.config import parse_config
from rfctl.hal import compile_board, quantize
from rfctl.hal.reference import nearest_complex, nearest_phase
from rfctl.state import ArrayState, DmaTuning

N = 32
NS = 8


def board_dict() -> dict:
    return {
        "kind": "board", "name": "bench-32x32", "banks": [
            {"name": "phase", "kind": "phase", "count": N * N, "bits": 6},
            {"name": "rf_switch", "kind": "switch_matrix", "antennas": N * N, "rf_chains": 4},
            {"name": "pin", "kind": "pin_links", "rows": N, "cols": N, "h_s": 6, "v_s": 6},
            {"name": "feed", "kind": "feed_mux", "rf_chains": NS, "rows": N, "cols": N},
            {"name": "tuning", "kind": "lorentzian", "count": N * N,
             "arc": {"bits": 8, "psi_min": -1.4, "psi_max": 4.5},
             "out_of_range": "nearest"},
        ],
    }


def make_state(rng: np.random.Generator) -> ArrayState:
    P = np.zeros((N - 1, N - 1), dtype=bool)
    for k, (r, c) in enumerate((r, c) for r in range(0, N - 1, 6) for c in range(0, N - 1, 6)):
        if k < NS:
            P[r, c] = True
    return ArrayState(
        phases=rng.uniform(-np.pi, np.pi, N * N),
        switch=rng.random((N * N, 4)) < 0.5,
        selection=P,
        dma=DmaTuning(b=rng.normal(0, 20, N * N), r0=1.0,
                      y_self=12.37 + 1j * rng.normal(0, 30, N * N)),
    )


def timeit(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    profile = parse_config(board_dict())
    board = compile_board(profile)
    st = make_state(rng)

    img = quantize(st, board)
    # the reference searches must pick codes at the same distance
    book_p, book_l = board.codebooks["phase"], board.codebooks["tuning"]
    _, d_ref = nearest_phase(2 * np.pi * np.arange(64) / 64, st.phases)
    assert np.allclose(np.abs(img.banks["phase"].error), d_ref, atol=1e-12)
    _, d_ref = nearest_complex(book_l.table, st.dma.response)
    assert np.allclose(img.banks["tuning"].error, d_ref, atol=1e-12)

    t_fast = timeit(lambda: quantize(st, board), args.repeat)
    t_uncompiled = timeit(lambda: quantize(st, profile), max(20, args.repeat // 10))

    def reference() -> None:
        nearest_phase(2 * np.pi * np.arange(64) / 64, st.phases)
        nearest_complex(book_l.table, st.dma.response)

    t_ref = timeit(reference, max(20, args.repeat // 10))
    t_fast_searches = timeit(lambda: (book_p.quantize(st.phases),
                                      book_l.quantize(st.dma.response)), args.repeat)
    med = statistics.median
    print(f"rfctl {rfctl.__version__}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, {platform.machine()}, {platform.processor() or '?'}")
    print(f"state: {N}x{N} elements; banks: " + ", ".join(
        f"{b.name}({b.count})" for b in img.banks.values()))
    print(f"quantize, compiled board      median {med(t_fast) * 1e3:8.3f} ms  "
          f"(p90 {np.percentile(t_fast, 90) * 1e3:.3f} ms, n={len(t_fast)})")
    print(f"quantize, profile (compiles)  median {med(t_uncompiled) * 1e3:8.3f} ms")
    print(f"nearest-code searches: fast   median {med(t_fast_searches) * 1e3:8.3f} ms")
    print(f"nearest-code searches: brute  median {med(t_ref) * 1e3:8.3f} ms  "
          f"(reference path; ratio {med(t_ref) / med(t_fast_searches):.1f}x)")
    ok = med(t_fast) <= 1e-3
    print(f"target median <= 1 ms: {'MET' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
