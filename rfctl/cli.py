"""The ``rfctl`` command line. Only this module prints.

``main(argv=None)`` returns an exit status (0 success, 1 an rfctl error such as an
invalid config or a hardware constraint, 2 usage), so it can be called from tests.
Angles are shown in degrees and gains in dB here, at the edge; everything inside is SI.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl import __version__
from rfctl.config import BoardProfile, Scenario, builtin_names, load_config
from rfctl.errors import RfctlError
from rfctl.hal import compile_board, dequantize, quantize
from rfctl.hal.image import DeviceImage
from rfctl.optimize.steering import evaluate_dbraa, steering_design
from rfctl.state import ArrayState

__all__ = ["main"]


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10 * np.log10(np.maximum(np.asarray(x, dtype=float), 1e-300))


def _format_error(row: dict) -> tuple[str, str]:
    if row["unit"] == "rad":
        return f"{np.degrees(row['max_error']):.3f}°", f"{np.degrees(row['rms_error']):.3f}°"
    if row["unit"] == "":
        return "exact", "exact"
    return f"{row['max_error']:.4f}", f"{row['rms_error']:.4f}"


def print_image_report(image: DeviceImage, out: TextIO) -> None:
    """A table per bank: element count, bits, max and RMS error, elements on."""
    rows = image.report()
    header = f"{'bank':<12}{'kind':<15}{'count':>6}{'bits':>6}{'max error':>13}" \
             f"{'RMS error':>13}{'on':>6}"
    print(f"board {image.board} (model {image.model})", file=out)
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        mx, rms = _format_error(r)
        print(f"{r['bank']:<12}{r['kind']:<15}{r['count']:>6}{r['bits']:>6}{mx:>13}"
              f"{rms:>13}{'-' if r['on'] is None else r['on']:>6}", file=out)
        if r["out_of_range"]:
            print(f"  {r['out_of_range']} element(s) outside the table's range "
                  "(nearest entry used)", file=out)


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    for name in args.config:
        cfg = load_config(name)
        if isinstance(cfg, BoardProfile):
            compile_board(cfg)  # tables and calibration files must load too
            banks = ", ".join(f"{b.name}({b.kind}, {b.count})" for b in cfg.banks)
            print(f"OK  board {cfg.name}: model {cfg.model}; banks {banks}", file=out)
        else:
            assert isinstance(cfg, Scenario)
            arr = "dbraa" if cfg.dbraa is not None else "dma"
            tasks = [t for t in ("sub6g", "mmwave", "dma_task") if getattr(cfg, t) is not None]
            print(f"OK  scenario {cfg.name}: array {arr}; tasks {', '.join(tasks)}; "
                  f"seed {cfg.seed}", file=out)
    return 0


def _cmd_configs(args: argparse.Namespace, out: TextIO) -> int:
    for name in builtin_names():
        cfg = load_config(name)
        print(f"{name:<26}{cfg.kind:<10}{cfg.description}", file=out)
    return 0


def _cmd_quantize(args: argparse.Namespace, out: TextIO) -> int:
    state = ArrayState.load(args.state)
    board = load_config(args.board)
    if not isinstance(board, BoardProfile):
        raise RfctlError(f"{args.board}: is a scenario, --board needs a board profile")
    image = quantize(state, board)
    if args.json:
        print(json.dumps({"board": image.board, "banks": image.report(),
                          "codes": {k: b.codes.tolist() for k, b in image.banks.items()}}),
              file=out)
    else:
        print_image_report(image, out)
    return 0


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    scenario = load_config(args.scenario)
    board = load_config(args.board)
    if not isinstance(scenario, Scenario) or not isinstance(board, BoardProfile):
        raise RfctlError("demo needs a DBRAA scenario (--scenario) and a board (--board)")
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
    print("\nmetric                         continuous    quantized", file=out)
    print(f"mmWave sum-rate (bit/s/Hz)     {np.sum(np.log2(1 + res.mmwave_sinr)):>10.3f}"
          f"   {np.sum(np.log2(1 + q.mmwave_sinr)):>10.3f}", file=out)
    print(f"mmWave min SINR (dB)           {_db(res.mmwave_sinr.min()):>10.2f}"
          f"   {_db(q.mmwave_sinr.min()):>10.2f}", file=out)
    print(f"mmWave min sensing gain (dB)   {_db(res.mmwave_gain.min()):>10.2f}"
          f"   {_db(q.mmwave_gain.min()):>10.2f}", file=out)
    print(f"sub-6G min SINR (dB)           {_db(res.sub6_sinr.min()):>10.2f}"
          f"   {_db(q.sub6_sinr.min()):>10.2f}", file=out)
    print(f"sub-6G power (W)               {res.sub6_power:>10.3f}"
          f"   {q.sub6_power:>10.3f}", file=out)
    if args.out:
        res.state.save(args.out)
        print(f"state written to {args.out}", file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rfctl",
        description="Control reconfigurable antenna arrays: optimize, quantize, program.",
    )
    p.add_argument("--version", action="version", version=f"rfctl {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr (-v info, -vv debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="validate board profiles or scenarios")
    v.add_argument("config", nargs="+", help="built-in name or TOML file")
    v.set_defaults(func=_cmd_validate)

    c = sub.add_parser("configs", help="list the built-in configs")
    c.set_defaults(func=_cmd_configs)

    q = sub.add_parser("quantize", help="quantize a saved state for a board")
    q.add_argument("state", help="STATE.json written by rfctl")
    q.add_argument("--board", required=True, help="board profile (name or TOML file)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=_cmd_quantize)

    d = sub.add_parser("demo", help="scenario → design → quantized image → report")
    d.add_argument("--scenario", default="dbraa-14x14")
    d.add_argument("--board", default="sim-dbraa-14x14")
    d.add_argument("--realisation", type=int, default=0, help="channel realisation index")
    d.add_argument("--out", type=Path, help="also save the designed state as JSON")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors and --help/--version
        return int(exc.code or 0)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args, out))
    except RfctlError as exc:
        print(f"rfctl: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
