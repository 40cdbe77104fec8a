"""Benchmark of measurement-driven configuration on the simulated one-bit 16 × 16 bench
(issue 13): dB from the true optimum against the measurement budget, per method, over
hidden-channel draws, with a weak and a strong direct path; and the loopback round trip
of one synchronised reading.

The readings here call the bench model directly (no sockets), so that many draws fit in
a few minutes; the end-to-end path (osris driver + SCPI analyzer) is exercised by the
tests and timed at the end.

Run: ``python benchmarks/bench_lab_onebit.py [draws]``; ``python
benchmarks/bench_lab_onebit.py held-out`` runs only the estimation on the held-out draws
200–209 (judging, not tuning); ``python benchmarks/bench_lab_onebit.py --cli`` times only
``rfctl lab optimize`` end to end (greedy, 300 readings) against ``rfctl sim-bench --board
osris-16x16`` in its own process, at 115200 baud and at 921600 baud in the same run.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
from rfctl.drivers.instruments import open_instrument
from rfctl.sims.onebit_bench import OneBitBench
from rfctl.sims.sim_bench import SimBench

from rfctl.lab import channel_estimation, conditional_sample_mean, greedy_flips

N = 256
METHODS = {
    "greedy": lambda m, b, r: greedy_flips(m, N, budget=b, rng=r),
    "csm": lambda m, b, r: conditional_sample_mean(m, N, budget=b, rng=r, groups=1),
    "csm-4groups": lambda m, b, r: conditional_sample_mean(m, N, budget=b, rng=r, groups=4),
    "estimate": lambda m, b, r: channel_estimation(m, N, budget=b, rng=r),
}


def gap(seed: int, dp: float, method: str, budget: int, noise: float, **kw) -> float:
    b = OneBitBench.random(None, seed=seed, direct_path=dp, noise=noise)
    g, d = b.affine()
    nr = np.random.default_rng(seed + 1000)

    def meas(x):
        return abs(g + x @ d + noise * (nr.standard_normal() + 1j * nr.standard_normal())
                   / np.sqrt(2)) ** 2

    if method == "estimate" and budget < 2 * (N + 16):
        return float("nan")
    rng = np.random.default_rng(seed + 2000)
    if kw:
        return b.gap_db(channel_estimation(meas, N, budget=budget, rng=rng, **kw).codes)
    return b.gap_db(METHODS[method](meas, budget, rng).codes)


def estimate_timing(seeds: list[int], reference: list[int]) -> None:
    """CPU (process time) and wall time of one 8N estimation run per draw, with the
    dense reference fit on the first draws in the same run, and the gaps of both."""
    for dp in (0.3, 3.0):
        rows = {}
        for label, kw, draws in (("structured", {}, seeds),
                                 ("dense reference", {"dense_fit": True}, reference)):
            cpu, wall, gaps = [], [], []
            for s in draws:
                c0, w0 = time.process_time(), time.perf_counter()
                gaps.append(gap(s, dp, "estimate", 8 * N, 1.0, starts=8, **kw))
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            rows[label] = gaps
            print(f"  8N estimate, direct path {dp}, {label} fit, draws {draws[0]}..{draws[-1]}:"
                  f" CPU median {statistics.median(cpu):.2f} s [max {max(cpu):.2f}], wall "
                  f"median {statistics.median(wall):.2f} s [max {max(wall):.2f}]; gap mean "
                  f"{np.mean(gaps):.3f} dB [max {np.max(gaps):.3f}]")
        same = rows["structured"][: len(reference)]
        print(f"  same draws, structured minus dense gap: "
              f"{np.max(np.abs(np.subtract(same, rows['dense reference']))):.2e} dB")


def held_out(first: int = 200, draws: int = 10) -> None:
    """The estimation at 4N and 8N on draws that were not used for tuning (seeds
    200–209; the method's settings were tuned on seeds 0–9)."""
    for mult in (4, 8):
        for dp in (0.3, 3.0):
            gs, cpu, wall = [], [], []
            for s in range(first, first + draws):
                c0, w0 = time.process_time(), time.perf_counter()
                gs.append(gap(s, dp, "estimate", mult * N, 1.0))
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            print(f"held-out draws {first}..{first + draws - 1}, estimate {mult}N, direct path "
                  f"{dp}: {np.mean(gs):.3f} dB mean [max {np.max(gs):.3f}]; per draw "
                  f"{np.round(gs, 2).tolist()}; CPU median {statistics.median(cpu):.2f} s, "
                  f"wall median {statistics.median(wall):.2f} s")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "held-out":
        held_out()
        return
    draws = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    noise = 1.0
    print("estimation run time (OpenBLAS threads as the environment sets them):")
    estimate_timing(list(range(draws)), list(range(min(3, draws))))
    print(f"one-bit bench N = {N}, receiver noise σ = {noise} (mean element amplitude 1), "
          f"{draws} hidden-channel draws (seeds 0..{draws - 1}); dB below the optimum, "
          "mean [max]")
    for dp in (0.3, 3.0):
        print(f"direct path {dp} x the RMS field of a random pattern")
        for method in METHODS:
            cells = []
            for mult in (1, 2, 4, 8):
                t0, c0 = time.perf_counter(), time.process_time()
                gs = [gap(s, dp, method, mult * N, noise) for s in range(draws)]
                dt = (time.perf_counter() - t0) / draws
                dc = (time.process_time() - c0) / draws
                cells.append(f"{mult}N: {np.mean(gs):5.2f} [{np.max(gs):5.2f}] ({dt:.2f} s, "
                             f"CPU {dc:.2f} s)")
            print(f"  {method:12s} " + "  ".join(cells))
    # synchronised reading round trip over loopback (pyvisa-py, one line per reading)
    from rfctl.sims.osris_firmware import OsrisFirmwareSim

    model = OneBitBench.random(OsrisFirmwareSim(), seed=0)
    with SimBench(model, freq_hz=model.f0) as bench:
        res = bench.start()
        for kind in ("power-meter", "spectrum-analyzer"):
            inst = open_instrument(kind, res[kind], visa_library="@py")
            inst.read_power()
            t = []
            for _ in range(200):
                t0 = time.perf_counter()
                inst.read_power()
                t.append(time.perf_counter() - t0)
            print(f"{kind}: synchronised reading (INIT;*OPC?;:read in one line) median "
                  f"{statistics.median(t) * 1e3:.3f} ms, p90 "
                  f"{sorted(t)[int(0.9 * len(t))] * 1e3:.3f} ms over loopback")
            inst.close()
    sweep_point()


def sweep_point() -> None:
    """A 41-point beam sweep on the one-bit board behind 115200-baud UART timing (the
    OpenSourceRIS line rate) with a spectrum analyzer: time per point against the line
    time of the bytes each point exchanges (the ASCII protocol waits for each reply, so
    both directions count)."""
    from rfctl.drivers.osris import open_osris
    from rfctl.sims.osris_firmware import OsrisFirmwareSim
    from rfctl.sims.simserver import SimServer

    from rfctl.config import load_config
    from rfctl.hal import compile_board
    from rfctl.lab import beam_sweep

    sys.setswitchinterval(1e-4)
    prof = load_config("osris-16x16")
    fw = OsrisFirmwareSim()
    model = OneBitBench.random(fw, seed=0)
    baud = 115200
    with SimBench(model, freq_hz=model.f0) as bench, SimServer(fw, baud=baud) as srv:
        res = bench.start()
        dev = open_osris(prof, url=srv.start_socket())
        sa = open_instrument("spectrum-analyzer", res["spectrum-analyzer"], visa_library="@py")
        angles = [(float(t), 0.0) for t in np.linspace(-1, 1, 41)]
        runs = []
        for _ in range(3):
            before = dev.stats.copy()
            data = beam_sweep(dev, compile_board(prof), sa, angles, rows=16, cols=16)
            used = dev.stats.since(before)
            per = data.elapsed_s / len(angles)
            bound = (used.bytes_tx + used.bytes_rx) / len(angles) * 10 / baud
            runs.append((per / bound, per, bound))
        dev.close()
        sa.close()
    ratio, per, bound = min(runs)
    print(f"one-bit 16x16 sweep at {baud} baud + spectrum analyzer: {per * 1e3:.2f} ms per "
          f"point; line-rate bound {bound * 1e3:.2f} ms; ratio {ratio:.3f}x (best of 3: "
          f"{sorted(round(r[0], 3) for r in runs)})")


def optimize_end_to_end(budget: int = 300, bauds: tuple[int, ...] = (115200, 921600)) -> None:
    """``rfctl lab optimize --method greedy --budget 300`` as a user runs it: the CLI in
    its own process against ``rfctl sim-bench --board osris-16x16 --baud B`` in another
    (spectrum analyzer). Per reading: the time the CLI prints (search and verification
    readings), the CLI process's CPU time, and the line time of the bytes each reading
    exchanges with the board (``link_stats`` of the run record): a floor, since the
    OpenSourceRIS protocol waits for each reply."""
    import json
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    for baud in bauds:
        bench = subprocess.Popen([sys.executable, "-m", "rfctl", "sim-bench", "--board",
                                  "osris-16x16", "--baud", str(baud), "--noise", "1.0",
                                  "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            lines = []
            for line in bench.stdout:
                lines.append(line)
                if line.startswith("(hidden"):
                    break
            url = lines[0].split(" at ")[1].strip()
            sa = next(x.split()[1] for x in lines if x.startswith("spectrum-analyzer"))
            with tempfile.TemporaryDirectory() as out:
                c0 = os.times()
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "rfctl", "lab", "optimize", "--board",
                     "osris-16x16", "--url", url, "--sensor", "spectrum-analyzer", "--meter",
                     sa, "--budget", str(budget), "--method", "greedy", "--out", out],
                    capture_output=True, text=True, check=True)
                wall = time.perf_counter() - t0
                c1 = os.times()
                (run,) = Path(out).glob("optimize-*")
                snap = json.loads((run / "snapshot.json").read_text())
                data = json.loads((run / "data.json").read_text())
        finally:
            bench.terminate()
            bench.wait(timeout=10)
        cpu = (c1.children_user - c0.children_user) + (c1.children_system
                                                       - c0.children_system)
        n = len(data["rows"]) + len(data["verified_w"])  # search + verification readings
        link = snap["link_stats"]
        per_bytes = (link["bytes_tx"] + link["bytes_rx"]) / n
        bound = per_bytes * 10 / baud
        printed = data["elapsed_s"]
        print(f"lab optimize greedy {budget} at {baud} baud: {printed:.2f} s printed "
              f"({printed / n * 1e3:.1f} ms per reading over {n} readings), command "
              f"{wall:.2f} s wall, CLI process CPU {cpu:.2f} s; link {link['bytes_tx'] / n:.0f} "
              f"B sent + {link['bytes_rx'] / n:.0f} B received per reading: line-rate "
              f"floor {bound * 1e3:.1f} ms per reading ({printed / n / bound:.2f}x); "
              f"{done.stdout.strip()[:60]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--cli"]:
        optimize_end_to_end()
    else:
        main()
