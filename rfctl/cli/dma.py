"""The DMA commands: ``rfctl optimize dma [--board B]`` (dispatched from :mod:`.optimize`),
``rfctl check STATE [--board B]``, and the DMA part of ``rfctl quantize``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl.config import Scenario
from rfctl.errors import InfeasibleError
from rfctl.state import ArrayState, DesignRecord

from .common import board_profile, db


def _row(label: str, r: dict) -> str:
    """One report row: objective, min SINR/Γ, P_d against [β, β_max], P_t against P_max."""
    bp = np.asarray(r["beampattern"])
    return (f"  {label:>12}  {r['objective']:9.4g}  {r['min_sinr_ratio']:10.3f}  "
            f"[{bp.min():.4g}, {bp.max():.4g}] in [{np.min(r['beta']):.4g}, "
            f"{r['beta_max']:.4g}]  {r['power']:.4g}/{r['p_max']:.4g} W  "
            f"{'yes' if r['feasible'] else 'NO'}")


def print_dma_rows(rows: list[tuple[str, dict]], out: TextIO) -> None:
    """The report table; every infeasible row is followed by the constraints it fails."""
    from rfctl.optimize.dma import describe_violations

    print("           row  objective  min SINR/Γ  P_d range in [β, β_max]  "
          "P_t/P_max  feasible", file=out)
    for label, r in rows:
        print(_row(label, r), file=out)
        if not r["feasible"]:
            print(f"{'':16}fails: {describe_violations(r)}", file=out)


def optimize_dma(scenario: Scenario, args: argparse.Namespace, out: TextIO) -> int:
    """Design a DMA (continuous, or for a board's codes with ``--board``), save the state."""
    from rfctl.optimize.dma import design_dma, task_from_scenario, tuning_state
    from rfctl.studies import design_dma_for_board, lorentzian_bits_study

    # Γ, β, β_max fixed here, the same with and without --board (the board's design
    # solves the continuous design's task)
    task, rng = task_from_scenario(scenario, args.realisation)
    board = getattr(args, "board", None)
    if board:
        try:
            bd = design_dma_for_board(task, board_profile(board), rng=rng)
        except InfeasibleError as exc:
            raise InfeasibleError(
                f"board {board} cannot meet the task of {scenario.name} realisation "
                f"{args.realisation} (Γ (dB) {np.round(db(task.gamma), 2).tolist()}, "
                f"β {np.min(task.beta):.4g}, β_max {task.beta_max:.4g}, P_max "
                f"{task.p_max:.4g} W; the same task as without --board): {exc}; "
                "no state written", bound=exc.bound, value=exc.value) from exc
        res, state = bd.continuous, bd.state
    else:
        res = design_dma(task, rng=rng)
        state = tuning_state(task, res)
    print(f"DMA design for {scenario.name}{f' on board {board}' if board else ''}: mean "
          f"beampattern gain {res.trace[0]:.4g} → {res.objective:.4g}; {res.iterations} "
          f"iterations, stop: {res.stop_reason} (stationarity {res.stationarity:.1e}); "
          f"digital {res.digital_s:.2f} s, analog {res.analog_s:.2f} s", file=out)
    print(f"  Γ (dB): {np.round(db(task.gamma), 2).tolist()}; σ² "
          f"{task.sigma2:.3g} W; P_max {task.p_max:.4g} W", file=out)
    rows = lorentzian_bits_study(res, task, boards=[board_profile(board)] if board else ())
    cont = "continuous"
    if board:
        cont += (" (in the board's arc)" if bd.path == "arc" else
                 " (unconfined: the arc design failed)")
    table = [(cont if r["bits"] is None and r["board"] is None else
              f"{r['bits']} bit" if r["bits"] is not None else r["board"], r)
             for r in rows]
    if board:
        table.append((f"{board} (final)", bd.report))
    print("every constraint, exact model (B re-optimised after quantization; ψ' arc "
          "±0.7π around resonance for the bit widths):", file=out)
    print_dma_rows(table, out)
    if board and not bd.report["feasible"]:
        from rfctl.optimize.dma import describe_violations

        raise InfeasibleError(
            f"board {board} cannot meet the task of {scenario.name} realisation "
            f"{args.realisation} on its codes ({describe_violations(bd.report)}); "
            "no state written", bound=bd.report["violations"][0]["constraint"]
            if bd.report["violations"] else None)
    state = state.replace(record=DesignRecord(
        scenario=scenario.model_dump(mode="json"), seed=scenario.seed,
        realisation=args.realisation, notes={
            "design": "rfctl.studies.design_dma_for_board" if board
            else "rfctl.optimize.dma.design_dma", "board": board,
            "board_design_path": bd.path if board else None,
            "stop_reason": str(res.stop_reason), "iterations": res.iterations}))
    state.save(args.out)
    print(f"state written to {args.out}", file=out)
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    """Re-check a saved DMA design with the model; 1 if a constraint fails."""
    from rfctl.studies import check_dma_state

    state = ArrayState.load(args.state)
    board = board_profile(args.board) if args.board else None
    rep = check_dma_state(state, board)
    if args.json:
        print(json.dumps({"feasible": rep["feasible"], "objective": rep["objective"],
                          "min_sinr_ratio": rep["min_sinr_ratio"], "power_w": rep["power"],
                          "violations": rep["violations"]}), file=out)
    else:
        where = f"on board {board.name} (B kept)" if board else "as saved"
        print(f"{args.state}: DMA design checked with the model {where}", file=out)
        print_dma_rows([("check", rep)], out)
    return 0 if rep["feasible"] else 1


def quantize_report(state: ArrayState, board, out: TextIO | None) -> dict | None:
    """The DMA part of ``rfctl quantize``: every constraint after quantization (B kept
    and B re-optimised); None for a state without a DMA task."""
    from rfctl.optimize.dma import DmaTask, describe_violations
    from rfctl.studies import realised_on_board

    if state.dma is None or state.dma_b is None or state.dma_task is None:
        return None
    task = DmaTask.from_record(state.dma_task)
    r = realised_on_board(task, state, board)
    if out is not None:
        print("\nDMA constraints after quantization (exact model):", file=out)
        print_dma_rows([("as saved", task.report(task.exact(None, state.dma_b,
                                                           loads=state.dma.load))),
                        ("B kept", r["kept"]),
                        ("B re-opt." if "reoptimise_error" not in r["report"] else
                         "B re-opt. FAILED (B kept)", r["report"])], out)
        if "reoptimise_error" in r["report"]:
            print(f"B could not be re-optimised for the quantized loads: "
                  f"{r['report']['reoptimise_error']}", file=out)
        if not r["kept"]["feasible"]:
            print(f"INFEASIBLE on the board's codes (as saved, B kept): "
                  f"{describe_violations(r['kept'])} (rfctl check --board gates; "
                  "rfctl program refuses it)", file=out)
    reopt = _json_report(r["report"])
    if "reoptimise_error" in r["report"]:
        reopt["reoptimise_error"] = r["report"]["reoptimise_error"]
    return {"kept": _json_report(r["kept"]), "reoptimised": reopt}


def program_gate(state: ArrayState, board, allow_infeasible: bool, out: TextIO) -> bool:
    """Before ``rfctl program``: a state that records its DMA task is checked on the
    board's codes (B kept: what programming realises). True to go on; when it fails
    and ``allow_infeasible`` is not set, an InfeasibleError naming the failed
    constraints (the CLI's ``rfctl: error:`` line on stderr, exit 1)."""
    from rfctl.optimize.dma import describe_violations
    from rfctl.studies import check_dma_state

    if state.dma is None or state.dma_b is None or state.dma_task is None:
        return True
    rep = check_dma_state(state, board)
    if rep["feasible"]:
        print(f"DMA constraints on {board.name}'s codes: all met", file=out)
        return True
    print(f"DMA design INFEASIBLE on {board.name}'s codes: {describe_violations(rep)}",
          file=out)
    if allow_infeasible:
        print("programming anyway (--allow-infeasible)", file=out)
        return True
    raise InfeasibleError(
        f"refusing to program: the DMA design is INFEASIBLE on {board.name}'s codes "
        f"({describe_violations(rep)}); the board was not opened and keeps its image. Pass "
        "--allow-infeasible to program it anyway, or design for the board with rfctl "
        "optimize dma --board", bound=rep["violations"][0]["constraint"]
        if rep["violations"] else None)


def _json_report(r: dict) -> dict:
    return {"feasible": r["feasible"], "objective": r["objective"],
            "min_sinr_ratio": r["min_sinr_ratio"], "power_w": r["power"],
            "beampattern": np.asarray(r["beampattern"]).tolist(),
            "violations": r["violations"]}


def register_check(sub: argparse._SubParsersAction) -> None:
    """Add ``rfctl check``."""
    c = sub.add_parser("check", help="re-check a saved DMA design with the model "
                       "(exit 1 if a constraint fails)")
    c.add_argument("state", type=Path, help="STATE.json written by rfctl optimize dma")
    c.add_argument("--board", help="quantize to this board's codes first (B kept)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmd_check)
