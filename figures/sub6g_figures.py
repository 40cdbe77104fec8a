"""Reproduce the DBRAA seed's sub-6 GHz figures (Figs. 10–12) by Monte Carlo.

    python figures/sub6g_figures.py fig10 [--quick] [--out out/] [--workers N]
    python figures/sub6g_figures.py all --quick [--no-plot]

- Fig. 10: transmit power vs N_row = N_col for RAS (FS-JBAS), RAS (RS), CAS and the fixed
  array; N_s = 4, K_s = 4 (the seed does not state K_s for Fig. 10; 4 is the value of
  Fig. 12), two sensing targets, Γ = Υ = 10, H_s = V_s = 6.
- Fig. 11: power vs number of users K_s = 1…5; N_s = 5, 14 × 14.
- Fig. 12: FS-JBAS convergence (power vs iteration) for ABAS, random and fixed
  initialisation; K_s = N_s = 4, 14 × 14.

Each point averages the powers over channel realisations (the sweep's seeds); a
realisation that is infeasible for a method is counted and left out of that method's
mean. Conventions as in rfctl.optimize.sub6g (unnormalised steering, squared gains, box
spacing rule). Writes ``figNN.json`` (all records) and ``figNN.png`` (``--no-plot``: the
JSON only, what the tests judge).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from _plot import line_plot
from _script import parse_figure_args

from rfctl.config import parse_config
from rfctl.errors import InfeasibleError
from rfctl.optimize.sub6g import cas, fixed_array, fs_jbas, random_selection, task_from_scenario
from rfctl.sweep import ProgressBar, sweep

TARGETS = [{"theta": -0.45, "phi": 0.2}, {"theta": 0.35, "phi": -0.25}]


def scenario(size: int, users: int, n_sub6: int, seed: int):
    return parse_config({
        "kind": "scenario", "name": f"fig-{size}-{users}-{n_sub6}", "seed": seed,
        "dbraa": {"rows": size, "cols": size, "f_m": 30e9, "f_s": 5e9, "h_s": 6, "v_s": 6,
                  "n_sub6": n_sub6, "n_rf": 4},
        "sub6g": {"users": users, "paths": 5, "sinr_threshold": 10.0, "gain_threshold": 10.0,
                  "targets": TARGETS},
    })


def _power(fn, *args) -> float:
    """Power of a design; NaN if none exists or the returned one is flagged infeasible."""
    try:
        r = fn(*args)
    except InfeasibleError:
        return float("nan")
    return float(r.power) if r.feasible else float("nan")


def job_methods(size: int, users: int, n_sub6: int, seed: int) -> dict:
    """Powers of the four sub-6G structures on one channel realisation."""
    sc = scenario(size, users, n_sub6, seed)
    rng = np.random.default_rng(seed + 10_000)
    return {
        "RAS (FS-JBAS)": _power(lambda: fs_jbas(task_from_scenario(sc))),
        "RAS (RS)": _power(lambda: random_selection(task_from_scenario(sc), rng)),
        "CAS": _power(lambda: cas(task_from_scenario(sc))),
        "Fixed array": _power(lambda: fixed_array(task_from_scenario(sc))),
    }


def job_convergence(size: int, users: int, n_sub6: int, seed: int) -> dict:
    """FS-JBAS power traces for the three initialisations."""
    sc = scenario(size, users, n_sub6, seed)
    out: dict = {}
    for init in ("abas", "random", "fixed"):
        try:
            r = fs_jbas(task_from_scenario(sc), init=init,
                        rng=np.random.default_rng(seed + 20_000))
            out[init] = r.trace
            if init == "abas":
                out["abas_start"] = r.start  # "abas", or "cas" if CAS was the better start
        except InfeasibleError:
            out[init] = []
    return out


def _mean_db(values: list[float]) -> tuple[float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)])
    return (float(10 * np.log10(np.mean(v))) if v.size else float("nan"), int(v.size))


def fig_methods(name: str, grid: dict, xkey: str, xlabel: str, seeds, out: Path,
                workers: int | None, plot: bool = True) -> dict:
    res = sweep(job_methods, grid, seeds, workers=workers,
                progress=ProgressBar(sys.stderr, label=name))
    methods = ["RAS (FS-JBAS)", "RAS (RS)", "CAS", "Fixed array"]
    xs = list(grid[xkey])
    summary = {m: [] for m in methods}
    counts = {m: [] for m in methods}
    for x in xs:
        recs = [r for r in res.records if r[xkey] == x and "error" not in r]
        for m in methods:
            mean, n = _mean_db([r[m] for r in recs])
            summary[m].append(mean)
            counts[m].append(n)
    data = {"figure": name, "x": xs, "xlabel": xlabel, "power_dbw": summary,
            "feasible_realisations": counts, "records": res.records}
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
    if plot:
        line_plot(out / f"{name}.png", xs, summary, xlabel=xlabel,
                  ylabel="mean transmit power (dBW)", title=f"{name}: sub-6G power, Γ = Υ = 10")
    return data


def fig12(seeds, out: Path, workers: int | None, size: int = 14, plot: bool = True) -> dict:
    res = sweep(job_convergence, {"size": [size], "users": [4], "n_sub6": [4]}, seeds,
                workers=workers, progress=ProgressBar(sys.stderr, label="fig12"))
    curves = {}
    for init in ("abas", "random", "fixed"):
        traces = [r[init] for r in res.records if "error" not in r and r[init]]
        n = max((len(t) for t in traces), default=0)
        padded = np.array([t + [t[-1]] * (n - len(t)) for t in traces]) if traces else None
        curves[init] = ([] if padded is None else
                        (10 * np.log10(padded.mean(axis=0))).tolist())
    ok = [r for r in res.records if "error" not in r and all(r[k] for k in curves)]
    best = {k: float(np.mean([r[k][-1] <= min(r[j][-1] for j in curves) * (1 + 1e-9)
                              for r in ok])) if ok else float("nan") for k in curves}
    data = {"figure": "fig12", "curves_dbw": curves, "records": res.records,
            "final_best_fraction": best,
            "abas_start_used_fraction": float(np.mean([r.get("abas_start") == "abas"
                                                       for r in ok])) if ok else float("nan")}
    (out / "fig12.json").write_text(json.dumps(data, indent=1, default=str))
    if plot:
        n = max(len(c) for c in curves.values())
        series = {f"{k.upper() if k == 'abas' else k} init": c + [c[-1]] * (n - len(c))
                  for k, c in curves.items() if c}
        line_plot(out / "fig12.png", list(range(n)), series, xlabel="FS-JBAS iteration i",
                  ylabel="mean power P̂_s (dBW)", title="fig12: convergence, K_s = N_s = 4")
    return data


def main(argv: list[str] | None = None) -> int:
    run = parse_figure_args(__doc__, ["fig10", "fig11", "fig12"], realisations=50,
                            quick_realisations=2, argv=argv)
    if "fig10" in run.figures:
        sizes = [8, 14] if run.quick else [8, 10, 12, 13, 14, 16]
        fig_methods("fig10", {"size": sizes, "users": [4], "n_sub6": [4]}, "size",
                    "N_row = N_col", run.seeds, run.out, run.workers, run.plot)
    if "fig11" in run.figures:
        users = [2, 5] if run.quick else [1, 2, 3, 4, 5]
        fig_methods("fig11", {"size": [14], "users": users, "n_sub6": [5]}, "users",
                    "number of sub-6G users K_s", run.seeds, run.out, run.workers, run.plot)
    if "fig12" in run.figures:  # the paper's array in every mode
        fig12(run.seeds, run.out, run.workers, size=14, plot=run.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
