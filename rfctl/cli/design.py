"""``rfctl demo`` (scenario → design → quantized image → programmed simulated board) and
``rfctl quantize``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl import __version__
from rfctl.config import BoardProfile, Scenario, check_board_for_scenario, load_config
from rfctl.errors import RfctlError
from rfctl.hal import compile_board, dequantize, quantize
from rfctl.hal.discovery import open_device, open_sim
from rfctl.hal.image import DeviceImage, unpack_image
from rfctl.hal.program import program
from rfctl.optimize.steering import evaluate_dbraa, steering_design
from rfctl.state import ArrayState

from .argtypes import check_output_file, int_at_least
from .common import board_profile, close_quietly, db, print_image_report
from .dma import quantize_report


def cmd_quantize(args: argparse.Namespace, out: TextIO) -> int:
    """Quantize a saved state for a board and report the errors per bank."""
    state = ArrayState.load(args.state)
    board = board_profile(args.board)
    image = quantize(state, board)
    if args.json:
        print(json.dumps({"board": image.board, "banks": image.report(),
                          "codes": {k: b.codes.tolist() for k, b in image.banks.items()},
                          "dma": quantize_report(state, board, None),
                          "mmwave": _mmwave_json(state, board)}), file=out)
    else:
        print_image_report(image, out)
        quantize_report(state, board, out)
        _print_mmwave_quantize(state, board, out)
    return 0


def _mmwave_json(state: ArrayState, board: BoardProfile) -> dict | None:
    """The hybrid design's metrics before and after quantization (SI, linear), as the
    text report prints them; None for a state without a recorded mmWave task."""
    from rfctl.studies import mmwave_state_report

    rep = mmwave_state_report(state, board)
    if rep is None:
        return None
    return {"upsilon": rep["upsilon"].tolist(), "p_max_w": rep["p_max"],
            **{label: {"sum_rate_bps_hz": float(r["sum_rate"]), "min_sinr": r["min_sinr"],
                       "min_gain": r["min_gain"], "gain_over_upsilon": r["sensing_margin"],
                       "power_w": float(r["power"]), "feasible": bool(r["feasible"]),
                       "fails": r["fails"]}
               for label, r in (("before", rep["before"]), ("after", rep["after"]))}}


def _print_mmwave_quantize(state: ArrayState, board: BoardProfile, out: TextIO) -> None:
    """The mmWave constraints of a hybrid state before and after quantization."""
    from rfctl.studies import mmwave_state_report

    rep = mmwave_state_report(state, board)
    if rep is None:
        return
    print(f"\nmmWave design before and after quantization (recorded channel; Υ "
          f"{db(rep['upsilon'].min()):.2f} dB, P_m {rep['p_max']:.4g} W):", file=out)
    print("             sum-rate   min SINR (dB)   min gain (dB)   gain/Υ   power (W)"
          "   feasible", file=out)
    for label in ("before", "after"):
        r = rep[label]
        print(f"  {label:>9}   {r['sum_rate']:8.3f}   {db(r['min_sinr']):13.2f}   "
              f"{db(r['min_gain']):13.2f}   {r['sensing_margin']:6.4f}   "
              f"{r['power']:9.4g}   {'yes' if r['feasible'] else 'NO: ' + r['fails']}",
              file=out)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Scenario → closed-form design → quantized image → simulated board."""
    scenario = load_config(args.scenario)
    board = load_config(args.board)
    if not isinstance(scenario, Scenario) or not isinstance(board, BoardProfile) \
            or scenario.dbraa is None:
        raise RfctlError("demo needs a DBRAA scenario (--scenario) and a board (--board)")
    check_board_for_scenario(board, scenario)
    check_output_file(args.out, "--out")
    print(f"rfctl {__version__} demo: scenario {scenario.name}, board {board.name}", file=out)
    res = steering_design(scenario, realisation=args.realisation)
    spec = scenario.dbraa
    assert spec is not None
    sel = np.argwhere(res.state.selection)
    print(f"design: closed-form steering on a {spec.rows}×{spec.cols} DBRAA; sub-6G "
          f"antennas at (row, col) {', '.join(str(tuple(map(int, s))) for s in sel)}",
          file=out)
    image = quantize(res.state, compile_board(board))
    print_image_report(image, out)
    q = evaluate_dbraa(dequantize(image, res.state), scenario)
    _print_demo_table(res, q, scenario, out)
    if args.out:
        res.state.save(args.out)
        print(f"state written to {args.out}", file=out)
    if board.driver == "rfctl-serial" and not args.no_board:
        return _demo_program(board, image, out)
    return 0


def _demo_checks(r, scenario: Scenario) -> list[str]:
    """The scenario's constraints a steering design misses (SINR ≥ Γ_s, gains ≥ Υ_s/Υ_m,
    sub-6G power within the total budget, mmWave power within P_m), named."""
    fails = []
    s6, mm = scenario.sub6g, scenario.mmwave
    tol = 1e-6
    if s6 is not None:
        if r.sub6_sinr.min() < s6.sinr_threshold * (1 - tol):
            fails.append(f"sub-6G SINR {db(r.sub6_sinr.min()):.2f} dB < Γ_s "
                         f"{db(s6.sinr_threshold):.2f} dB")
        if r.sub6_gain.min() < s6.gain_threshold * (1 - tol):
            fails.append(f"sub-6G sensing gain {db(r.sub6_gain.min()):.2f} dB < Υ_s "
                         f"{db(s6.gain_threshold):.2f} dB")
    if mm is not None:
        if r.mmwave_gain.min() < mm.gain_threshold * (1 - tol):
            fails.append(f"mmWave sensing gain {db(r.mmwave_gain.min()):.2f} dB < Υ_m "
                         f"{db(mm.gain_threshold):.2f} dB")
        if r.mmwave_power > mm.power * (1 + tol):
            fails.append(f"mmWave power {r.mmwave_power:.4g} W > P_m {mm.power:.4g} W")
    if scenario.total_power is not None and r.sub6_power > scenario.total_power * (1 + tol):
        fails.append(f"sub-6G power {r.sub6_power:.4g} W > total budget "
                     f"{scenario.total_power:.4g} W")
    return fails


def _print_demo_table(res, q, scenario: Scenario, out: TextIO) -> None:
    """Continuous and quantized metrics beside the scenario's bounds, then the misses."""
    s6, mm = scenario.sub6g, scenario.mmwave
    ups_m = f"≥ {db(mm.gain_threshold):.2f} (Υ_m)" if mm else ""
    gam_s = f"≥ {db(s6.sinr_threshold):.2f} (Γ_s)" if s6 else ""
    ups_s = f"≥ {db(s6.gain_threshold):.2f} (Υ_s)" if s6 else ""
    p_tot = f"≤ {scenario.total_power:.4g} (total)" if scenario.total_power else ""
    rows = [
        ("mmWave sum-rate (bit/s/Hz)", np.sum(np.log2(1 + res.mmwave_sinr)),
         np.sum(np.log2(1 + q.mmwave_sinr)), "", "3f"),
        ("mmWave min SINR (dB)", db(res.mmwave_sinr.min()), db(q.mmwave_sinr.min()), "",
         "2f"),
        ("mmWave min sensing gain (dB)", db(res.mmwave_gain.min()),
         db(q.mmwave_gain.min()), ups_m, "2f"),
        ("sub-6G min SINR (dB)", db(res.sub6_sinr.min()), db(q.sub6_sinr.min()), gam_s,
         "2f"),
        ("sub-6G min sensing gain (dB)", db(res.sub6_gain.min()), db(q.sub6_gain.min()),
         ups_s, "2f"),
        ("sub-6G power (W)", res.sub6_power, q.sub6_power, p_tot, "3f"),
    ]
    print("\nmetric                         continuous    quantized   bound", file=out)
    for name, a, b, bound, f in rows:
        print(f"{name:<30} {a:>11.{f}} {b:>12.{f}}   {bound}", file=out)
    for label, r in (("continuous", res), ("quantized", q)):
        fails = _demo_checks(r, scenario)
        print(f"{label}: " + ("meets the scenario's constraints" if not fails else
                              "the closed-form steering baseline (not an optimised design) "
                              "does NOT meet: " + "; ".join(fails)), file=out)


def _demo_program(profile: BoardProfile, image: DeviceImage, out: TextIO) -> int:
    """Program a simulated board behind a loopback socket, through pyserial, and read
    every code back."""
    server = open_sim("board-server", profile, baud=profile.link.baud)
    url = server.start_socket()
    try:
        dev = open_device(profile, url=url)
        try:
            res = program(dev, image)
            back = unpack_image(dev.read_active(), dev.info())
        finally:
            close_quietly(dev)
    finally:
        server.stop()
    same = all(np.array_equal(back[name], b.codes) for name, b in image.banks.items())
    print(f"\nprogrammed simulated board at {url} through pyserial "
          f"({profile.link.baud} baud): {res.payload_bytes} image bytes, "
          f"{res.stats.bytes_tx} bytes sent, {res.elapsed_s * 1e3:.2f} ms, "
          f"active CRC {res.crc:#010x}", file=out)
    print(f"read-back of every bank: {'all codes match' if same else 'MISMATCH'}", file=out)
    return 0 if same else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    q = sub.add_parser("quantize", help="quantize a saved state for a board")
    q.add_argument("state", help="STATE.json written by rfctl")
    q.add_argument("--board", required=True, help="board profile (name or TOML file)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_quantize)

    d = sub.add_parser("demo", help="scenario → design → quantized image → report")
    d.add_argument("--scenario", default="dbraa-14x14")
    d.add_argument("--board", default="sim-dbraa-14x14")
    d.add_argument("--realisation", type=int_at_least(0, 10**9), default=0,
                   help="channel realisation index")
    d.add_argument("--out", type=Path, help="also save the designed state as JSON")
    d.add_argument("--no-board", action="store_true",
                   help="stop after quantizing (do not program the simulated board)")
    d.set_defaults(func=cmd_demo)
