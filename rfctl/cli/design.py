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
                          "dma": quantize_report(state, board, None)}), file=out)
    else:
        print_image_report(image, out)
        quantize_report(state, board, out)
    return 0


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
    print("\nmetric                         continuous    quantized", file=out)
    print(f"mmWave sum-rate (bit/s/Hz)     {np.sum(np.log2(1 + res.mmwave_sinr)):>10.3f}"
          f"   {np.sum(np.log2(1 + q.mmwave_sinr)):>10.3f}", file=out)
    print(f"mmWave min SINR (dB)           {db(res.mmwave_sinr.min()):>10.2f}"
          f"   {db(q.mmwave_sinr.min()):>10.2f}", file=out)
    print(f"mmWave min sensing gain (dB)   {db(res.mmwave_gain.min()):>10.2f}"
          f"   {db(q.mmwave_gain.min()):>10.2f}", file=out)
    print(f"sub-6G min SINR (dB)           {db(res.sub6_sinr.min()):>10.2f}"
          f"   {db(q.sub6_sinr.min()):>10.2f}", file=out)
    print(f"sub-6G power (W)               {res.sub6_power:>10.3f}"
          f"   {q.sub6_power:>10.3f}", file=out)
    if args.out:
        res.state.save(args.out)
        print(f"state written to {args.out}", file=out)
    if board.driver == "rfctl-serial" and not args.no_board:
        return _demo_program(board, image, out)
    return 0


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
