"""``rfctl lab sweep|calibrate``: measurement routines on a board and a power sensor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl.hal import compile_board
from rfctl.hal.discovery import open_device, open_instrument

from .common import board_profile, close_quietly


def _lab_setup(args: argparse.Namespace):
    profile = board_profile(args.board)
    if args.calibration:
        ph = next(b for b in profile.banks if b.kind == "phase")
        banks = [b.model_copy(update={"calibration_file": str(Path(args.calibration).resolve())})
                 if b is ph else b for b in profile.banks]
        profile = profile.model_copy(update={"banks": banks})
    dev = open_device(profile, **({"url": args.url} if args.url else {}))
    try:
        meter = open_instrument(args.sensor, args.meter, visa_library=args.visa_library)
    except BaseException:
        close_quietly(dev)
        raise
    return profile, dev, meter


def cmd_lab(args: argparse.Namespace, out: TextIO) -> int:
    """Run a beam sweep or a phase calibration and write the run record."""
    from rfctl.lab import (
        RunRecord,
        SweepInterruptedError,
        beam_sweep,
        phase_calibration,
        write_calibration,
    )
    from rfctl.sweep import ProgressBar

    profile, dev, meter = _lab_setup(args)
    bar = ProgressBar(sys.stderr, label=args.action)
    rec = RunRecord(args.out, args.action)
    params = {k: v for k, v in vars(args).items() if k != "func"}
    rec.snapshot(profile=profile, device=dev, instruments=[meter], params=params)
    try:
        if args.action == "sweep":
            th = np.linspace(args.start, args.stop, args.points)
            angles = [(float(t), args.phi) for t in th]
            try:
                data = beam_sweep(dev, compile_board(profile), meter, angles, rows=args.rows,
                                  cols=args.cols, settle_s=args.settle, progress=bar)
            except SweepInterruptedError as exc:
                rec.data(exc.data.rows, {"interrupted": str(exc)})
                print(f"rfctl: {exc}; partial data in {rec.path}", file=sys.stderr)
                return 130
            rec.data(data.rows)
            rec.plot("sweep", data.column("theta"), {"power (dBm)": data.column("power_dbm")},
                     "beam θ (surrogate)", "received power (dBm)")
            k = int(np.argmax(data.column("power_w")))
            print(f"{args.points}-point sweep in {data.elapsed_s:.2f} s "
                  f"({data.elapsed_s / args.points * 1e3:.2f} ms per point); peak "
                  f"{data.rows[k]['power_dbm']:.2f} dBm at θ = {data.rows[k]['theta']:.3f}; "
                  f"records in {rec.path}", file=out)
        else:
            cal = phase_calibration(dev, profile, meter, rows=args.rows, cols=args.cols,
                                    probe=(args.probe_theta, args.probe_phi),
                                    states=args.states, passes=args.passes, progress=bar)
            path = write_calibration(args.write_calibration, cal.offsets)
            rows = [{"element": k, "phase_offset_rad": float(v),
                     "phase_offset_deg": float(np.degrees(v))}
                    for k, v in enumerate(cal.offsets)]
            rec.data(rows, {"measurements": cal.measurements,
                            "power_before_w": cal.power_before_w,
                            "power_after_w": cal.power_after_w})
            gain = 10 * np.log10(cal.power_after_w / cal.power_before_w)
            print(f"calibrated {len(cal.offsets)} elements with {cal.measurements} "
                  f"measurements; beam at the probe {10 * np.log10(cal.power_before_w) + 30:.2f}"
                  f" → {10 * np.log10(cal.power_after_w) + 30:.2f} dBm ({gain:+.2f} dB); "
                  f"table written to {path}; records in {rec.path}", file=out)
    finally:
        close_quietly(dev, meter)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    lab = sub.add_parser("lab", help="lab routines: beam sweep, phase calibration")
    lab.add_argument("action", choices=["sweep", "calibrate"])
    lab.add_argument("--board", default="sim-lab-8x8")
    lab.add_argument("--url", help="board link URL (e.g. socket://127.0.0.1:PORT)")
    lab.add_argument("--meter", required=True, help="VISA resource of the power sensor")
    lab.add_argument("--sensor", default="power-meter",
                     choices=["power-meter", "spectrum-analyzer", "vna"])
    lab.add_argument("--visa-library", default="@py", help="'@py', 'file.yaml@sim', …")
    lab.add_argument("--rows", type=int, default=8)
    lab.add_argument("--cols", type=int, default=8)
    lab.add_argument("--calibration", help="apply this calibration table to the phase bank")
    lab.add_argument("--out", type=Path, default=Path("runs"), help="records folder")
    lab.add_argument("--start", type=float, default=-1.0, help="sweep: first θ")
    lab.add_argument("--stop", type=float, default=1.0, help="sweep: last θ")
    lab.add_argument("--points", type=int, default=181, help="sweep: number of points")
    lab.add_argument("--phi", type=float, default=0.0, help="sweep: φ of every beam")
    lab.add_argument("--settle", type=float, default=0.0, help="settle time per point, s")
    lab.add_argument("--probe-theta", type=float, default=0.0, help="calibrate: probe θ")
    lab.add_argument("--probe-phi", type=float, default=0.0, help="calibrate: probe φ")
    lab.add_argument("--states", type=int, default=8, help="calibrate: phase states")
    lab.add_argument("--passes", type=int, default=3, help="calibrate: passes")
    lab.add_argument("--write-calibration", type=Path, default=Path("calibration.csv"))
    lab.set_defaults(func=cmd_lab)
