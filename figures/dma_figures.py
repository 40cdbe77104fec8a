"""DMA ISAC studies (the DMA seed gives no figures; these are the issue's studies).

    python figures/dma_figures.py all [--quick] [--out out/]

- ``dma_beampattern``: beampattern P(θ, φ) in dB over the half space, at the decorrelating
  start and after the alternating optimisation (the directions marked).
- ``dma_convergence``: the exact objective after every accepted step, until the
  alternation's own stopping test (or the cap, which the JSON records).
- ``dma_tradeoff``: the mean sensing gain reached for SINR targets 40, 30, 25 and 20 dB
  below the interference-free SINR.
- ``dma_quantization``: the objective after 1/2/3/4/8-bit Lorentzian tables (ψ' arc
  centred on resonance) and the ``sim-dma-4x8`` board, with B kept and re-optimised;
  infeasible rows marked. The JSON names the failed constraints of every row.

The reference geometry is 4 × 8 elements, 3 users and 3 directions (``dma-4x8``).
PNG + JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.errors import InfeasibleError
from rfctl.optimize.dma import DmaTask, design_dma
from rfctl.studies import lorentzian_bits_study


def make_task(seed: int, gamma_below_db: float = 30.0) -> DmaTask:
    sc = load_config("dma-4x8")
    rng = np.random.default_rng(seed)
    m = DmaModel.from_spec(sc.dma, origin=(0, 0, 10))
    users = np.column_stack([rng.uniform(-20, 20, 3), rng.uniform(20, 60, 3), np.full(3, 1.5)])
    d = np.asarray(sc.dma_task.directions)
    return DmaTask(m, users, d[:, 0], d[:, 1], 1e-12, 1.0, gamma_below_db=gamma_below_db)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figure", choices=["all"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("out"))
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    iters = 15 if a.quick else 100
    from _plot import line_plot
    from matplotlib.figure import Figure

    task = make_task(7)
    d = design_dma(task, rng=np.random.default_rng(7), max_iter=iters)
    # beampatterns before / after
    n = 45 if a.quick else 121
    th = np.linspace(0, np.pi / 2, n)
    ph = np.linspace(0, 2 * np.pi, 2 * n)
    TH, PH = np.meshgrid(th, ph, indexing="ij")
    m = task.model
    maps = {}
    for name, b, B in (("start", d.b0, d.B0), ("after", d.b, d.B)):
        ys = m.spec.r0_siemens + 1j * b
        maps[name] = 10 * np.log10(np.maximum(m.beampattern(ys, B, TH, PH), 1e-12))
    fig = Figure(figsize=(6 * len(maps), 4), layout="tight")
    axs = fig.subplots(1, len(maps), squeeze=False)
    for ax, (name, M) in zip(axs[0], maps.items(), strict=True):
        im = ax.imshow(M, origin="lower", aspect="auto", extent=(0, 360, 0, 90),
                       vmin=M.max() - 40, vmax=M.max())
        ax.scatter(np.degrees(task.phi), np.degrees(task.theta), c="r", marker="x")
        ax.set_xlabel("φ (deg)")
        ax.set_ylabel("θ (deg)")
        ax.set_title(f"beampattern {name} (dB)")
        fig.colorbar(im, ax=ax)
    fig.savefig(a.out / "dma_beampattern.png", dpi=110)
    line_plot(a.out / "dma_convergence.png", range(len(d.trace)),
              {"mean beampattern gain (exact)": d.trace},
              xlabel=f"accepted step (stop: {d.stop_reason} after {d.iterations} iterations)",
              ylabel="mean beampattern gain", title="DMA alternation")
    # trade-off
    offs = [40.0, 25.0] if a.quick else [40.0, 30.0, 25.0, 20.0]
    trade = []
    for off in offs:
        t = make_task(7, gamma_below_db=off)
        try:
            r = design_dma(t, rng=np.random.default_rng(7), max_iter=iters)
            trade.append({"gamma_below_db": off, "objective": r.objective,
                          "stop_reason": str(r.stop_reason), "iterations": r.iterations})
        except InfeasibleError as exc:
            trade.append({"gamma_below_db": off, "objective": None, "infeasible": str(exc)})
    done = [t for t in trade if t["objective"] is not None]
    line_plot(a.out / "dma_tradeoff.png", [-t["gamma_below_db"] for t in done],
              {"feasible designs": [t["objective"] for t in done]},
              xlabel="SINR target relative to the interference-free SINR (dB)",
              ylabel="mean sensing beampattern gain", title="sensing/communication trade-off")
    # quantization
    rows = lorentzian_bits_study(d, task, boards=["sim-dma-4x8"])
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.add_subplot()
    q = [r for r in rows if r["bits"] is not None]
    x = [r["bits"] for r in q]
    kept = [r["kept"] for r in q]
    ax.plot(x, [k["objective"] for k in kept], marker="o", label="B kept")
    ax.plot(x, [r["objective"] for r in q], marker="s", label="B re-optimised")
    bad = [(xx, k["objective"]) for xx, k in zip(x, kept, strict=True) if not k["feasible"]]
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=120, facecolors="none", edgecolors="r",
                   label="infeasible")
    ax.axhline(rows[0]["objective"], color="k", ls="--", label="continuous")
    brd = [r for r in rows if r["board"] is not None]
    for r in brd:
        ax.axhline(r["objective"], color="g", ls=":", label=f"{r['board']} (B re-opt.)")
    ax.set_xlabel("tuning-table bits")
    ax.set_ylabel("mean beampattern gain")
    ax.legend()
    ax.grid(True, alpha=0.4)
    fig.savefig(a.out / "dma_quantization.png", dpi=110)
    data = {"trace": d.trace, "objective": d.objective, "stop_reason": str(d.stop_reason),
            "iterations": d.iterations, "stationarity": d.stationarity, "tradeoff": trade,
            "quantization": [{k: v for k, v in r.items() if k != "kept"}
                             | {"kept_feasible": r["kept"]["feasible"],
                                "kept_violations": r["kept"]["violations"]} for r in rows],
            "digital_s": d.digital_s, "analog_s": d.analog_s}
    (a.out / "dma.json").write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
