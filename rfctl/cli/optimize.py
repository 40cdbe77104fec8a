"""``rfctl optimize sub6g|mmwave|dual-band|dma``: run an optimizer on a scenario and write
the designed state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl.config import Scenario, load_config
from rfctl.errors import RfctlError
from rfctl.state import DesignRecord

from .argtypes import check_output_file, int_at_least
from .common import db, deg


def _print_bits_table(rows: list[dict], out: TextIO) -> None:
    """The phase-bits study (SI rows) as a table; gains in dB and phase errors in degrees."""
    print("  phase bits   sum-rate   loss (bit/s/Hz)   min gain (dB)   worst gain loss (dB)"
          "   max phase error (°)   gain/Υ   power/P   feasible", file=out)
    for r in rows:
        b = "continuous" if r["bits"] is None else f"{r['bits']:>10d}"
        print(f"  {b:>10}   {r['sum_rate']:8.3f}   {r['rate_loss']:15.3f}   "
              f"{db(r['min_gain']):13.2f}   {db(r['gain_loss_ratio']):20.2f}   "
              f"{deg(r['max_phase_error']):19.2f}   {r['sensing_margin']:6.4f}   "
              f"{r['power_margin']:7.4f}   "
              f"{'yes' if r['feasible'] else 'NO: ' + r['fails']}", file=out)


def _optimize_sub6g(scenario: Scenario, args: argparse.Namespace, out: TextIO):
    from rfctl.optimize.sub6g import design_sub6g

    rng = np.random.default_rng(args.seed)
    res = design_sub6g(scenario, args.realisation, init=args.init, rng=rng)
    print(f"sub-6G design for {scenario.name}, realisation {args.realisation} (FS-JBAS, "
          f"init {args.init}): power {res.power:.4g} W "
          f"({db(res.power):.2f} dBW)", file=out)
    print(f"  antennas (row, col): {', '.join(str(p) for p in res.positions)}", file=out)
    print(f"  SINR (dB): {np.round(db(res.sinr), 2).tolist()}; sensing gains (dB): "
          f"{np.round(db(res.gains), 2).tolist()}", file=out)
    print(f"  {res.outcome.iterations} iterations, stop: {res.outcome.stop_reason}; "
          f"{res.n_exact} selections solved, {res.n_pruned} pruned; {res.elapsed_s:.2f} s",
          file=out)
    margins = res.outcome.residuals
    print(_feasibility(res.feasible, {"SINR": margins["sinr_margin_rel"],
                                      "gain": margins["gain_margin_rel"]}), file=out)
    if scenario.total_power is not None:
        over = res.power > scenario.total_power * (1 + 1e-6)
        print(f"  power {res.power:.4g} W vs the scenario's total budget "
              f"{scenario.total_power:.4g} W: "
              + ("EXCEEDS it — NOT feasible for the dual-band budget (nothing left for "
                 "mmWave)" if over else
                 f"within it ({scenario.total_power - res.power:.4g} W left for mmWave)"),
              file=out)
    return res.state()


def _feasibility(feasible: bool, margins: dict[str, float]) -> str:
    """One line: the design meets its constraints, or it does not, with the margins."""
    m = ", ".join(f"{k} {v:+.2e}" for k, v in margins.items())
    return (f"  feasible: constraints met (relative margins {m})" if feasible else
            f"  INFEASIBLE: the returned design misses its constraints (margins {m})")


def _optimize_mmwave(scenario: Scenario, args: argparse.Namespace, out: TextIO):
    from rfctl.optimize import mmwave
    from rfctl.optimize.dual_band import design_dual_band
    from rfctl.studies import phase_bits_study

    if args.problem == "dual-band":
        db_res = design_dual_band(scenario, args.realisation, structure=args.structure)
        mm, state = db_res.mmwave, db_res.state
        print(f"dual-band design for {scenario.name}, realisation {args.realisation}: "
              f"sub-6G power {db_res.sub6.power:.4g} W at antennas "
              f"{', '.join(str(p) for p in db_res.sub6.positions)}; mmWave gets "
              f"P_m = {db_res.mmwave_power:.4g} W", file=out)
        task = mmwave.task_from_scenario(scenario, args.realisation, power=db_res.mmwave_power)
    else:
        task = mmwave.task_from_scenario(scenario, args.realisation)
        mm = mmwave.admm_hybrid(task, args.structure)
        mm.record = DesignRecord(scenario=scenario.model_dump(mode="json"),
                                 seed=scenario.seed, realisation=args.realisation,
                                 channels={"mmwave": task.H},
                                 notes={"design": f"ADMM-{args.structure}"})
        state = mm.state()
    print(f"mmWave {args.structure}: sum-rate {mm.sum_rate:.3f} bit/s/Hz; SINR (dB) "
          f"{np.round(db(mm.sinr), 2).tolist()}; min sensing gain "
          f"{db(mm.gains.min()):.2f} dB (Υ {db(task.upsilon.min()):.2f} dB); "
          f"hybrid residual {mm.outcome.residuals['hybrid_residual_rel']:.2e}"
          + ("; F_BB scaled down to P_m" if mm.scaled else ""), file=out)
    bb = "" if mm.baseband is None else (
        f"; final F_BB step: {mm.baseband.stop_reason} after {mm.baseband.iterations}")
    print(f"  {mm.outcome.iterations} ADMM iterations, stop: {mm.outcome.stop_reason}{bb}; "
          f"{mm.elapsed_s * 1e3:.0f} ms", file=out)
    print(_feasibility(mm.feasible, {"gain": mm.outcome.residuals["gain_margin_rel"],
                                     "power": -mm.outcome.residuals["power_margin_rel"]}),
          file=out)
    print("after quantization of the phase shifters:", file=out)
    _print_bits_table(phase_bits_study(mm, task), out)
    return state


# options that apply to some problems only: given to another, they are a usage error
# (exit 2), never silently ignored
_APPLIES = (("--init", ("sub6g",), ""), ("--seed", ("sub6g",), ""),
            ("--structure", ("mmwave", "dual-band"), ""),
            ("--board", ("dma",), "; quantize a DBRAA state with rfctl quantize --board"))


def cmd_optimize(args: argparse.Namespace, out: TextIO) -> int:
    """Run an optimizer on a scenario and save the designed state."""
    for opt, problems, hint in _APPLIES:
        if getattr(args, opt[2:]) is not None and args.problem not in problems:
            print(f"rfctl optimize: error: {opt} applies to {' and '.join(problems)} only "
                  f"(not {args.problem}{hint})", file=sys.stderr)
            return 2
    args.init = args.init or "abas"
    args.seed = args.seed if args.seed is not None else 0
    args.structure = args.structure or "RHB"
    scenario = load_config(args.scenario)
    if not isinstance(scenario, Scenario):
        raise RfctlError(f"{args.scenario}: is a board profile; --scenario needs a scenario")
    check_output_file(args.out, "--out")
    if args.problem == "dma":
        from .dma import optimize_dma

        return optimize_dma(scenario, args, out)
    if args.problem == "sub6g":
        state = _optimize_sub6g(scenario, args, out)
    else:
        state = _optimize_mmwave(scenario, args, out)
    state.save(args.out)
    print(f"state written to {args.out}", file=out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    op = sub.add_parser("optimize", help="run an optimizer on a scenario, write STATE.json")
    op.add_argument("problem", choices=["sub6g", "mmwave", "dual-band", "dma"],
                    help="sub6g: antenna selection + beamforming (FS-JBAS); mmwave: hybrid "
                    "beamforming (ADMM); dual-band: sub6g, then mmwave with P_t − P_s; "
                    "dma: DMA digital SDR + analog tuning, alternated")
    op.add_argument("--scenario", required=True, help="scenario (name or TOML file)")
    op.add_argument("--realisation", type=int_at_least(0, 10**9), default=0,
                    help="channel realisation index")
    op.add_argument("--init", choices=["abas", "random", "fixed"], default=None,
                    help="sub6g: FS-JBAS start (default abas)")
    op.add_argument("--seed", type=int_at_least(0), default=None,
                    help="sub6g: seed for --init random (default 0)")
    op.add_argument("--structure", choices=["RHB", "DHB", "PCHB"], default=None,
                    help="mmwave, dual-band: hybrid structure (default RHB)")
    op.add_argument("--board", help="dma: design for this board's Lorentzian codes "
                    "(within its arc, quantized, B re-optimised, checked)")
    op.add_argument("--out", type=Path, required=True, help="STATE.json to write")
    op.set_defaults(func=cmd_optimize)
    from .dma import register_check

    register_check(sub)
