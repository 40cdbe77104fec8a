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
from rfctl.hal.device import (
    delta_writes,
    image_crc,
    layout_from_profile,
    open_device,
    pack_image,
    program,
    select_beam,
    store_beam,
    unpack_image,
)
from rfctl.hal.image import DeviceImage
from rfctl.optimize.steering import evaluate_dbraa, steering_design
from rfctl.state import ArrayState, DesignRecord

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
    if board.driver == "rfctl-serial" and not args.no_board:
        return _demo_program(board, image, out)
    return 0


def _demo_program(profile: BoardProfile, image: DeviceImage, out: TextIO) -> int:
    """Program a simulated board behind a loopback socket, through pyserial, and read
    every code back."""
    mod = _load_driver_module("rfctl-serial")
    server = mod.sim_server(profile, baud=profile.link.baud)
    url = server.start_socket()
    try:
        dev = open_device(profile, url=url)
        try:
            res = program(dev, image)
            back = unpack_image(dev.read_active(), dev.info())
        finally:
            dev.close()
    finally:
        server.stop()
    same = all(np.array_equal(back[name], b.codes) for name, b in image.banks.items())
    print(f"\nprogrammed simulated board at {url} through pyserial "
          f"({profile.link.baud} baud): {res.payload_bytes} image bytes, "
          f"{res.stats.bytes_tx} bytes sent, {res.elapsed_s * 1e3:.2f} ms, "
          f"active CRC {res.crc:#010x}", file=out)
    print(f"read-back of every bank: {'all codes match' if same else 'MISMATCH'}", file=out)
    return 0 if same else 1


def _board_profile(name: str) -> BoardProfile:
    cfg = load_config(name)
    if not isinstance(cfg, BoardProfile):
        raise RfctlError(f"{name}: is a scenario; a board profile is needed here")
    return cfg


def _load_driver_module(name: str):
    """A driver module found through the entry-point group (never imported by name)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="rfctl.drivers"):
        if ep.name == name:
            return __import__(ep.module, fromlist=["_"])
    raise RfctlError(f"driver {name!r} is not installed")


def _cmd_program(args: argparse.Namespace, out: TextIO) -> int:
    profile = _board_profile(args.board)
    board = compile_board(profile)
    state = ArrayState.load(args.state)
    image = quantize(state, board)
    print_image_report(image, out)
    if args.dry_run:
        from rfctl.hal.device import DeviceInfo

        info = DeviceInfo(model=profile.model, firmware="(dry run)",
                          banks=layout_from_profile(profile))
        data = pack_image(image, info, None)
        crc = image_crc(data)
        writes = delta_writes(None, data, info, chunk=profile.link.chunk)
        mod = _load_driver_module(profile.driver)
        plan = getattr(mod, "plan_frames", None)
        print(f"\ndry run: {len(data)} image bytes, CRC-32 {crc:#010x}; no port opened",
              file=out)
        for name, codes in unpack_image(data, info).items():
            print(f"  {name}: codes {codes.tolist()}", file=out)
        if plan is not None:
            frames = plan(writes, crc, sync=False, latch=True)  # full write: no sync
            total = sum(len(f) for f in frames)
            for f in frames:
                print(f"  frame {len(f):4d} B  {f.hex()}", file=out)
            print(f"  {len(frames)} frames, {total} bytes to send "
                  f"({total * 10 / profile.link.baud * 1e3:.2f} ms at {profile.link.baud} baud)",
                  file=out)
        return 0
    dev = open_device(profile, **({"url": args.url} if args.url else {}))
    try:
        res = program(dev, image)
        back = dev.read_active()
    finally:
        close = getattr(dev, "close", None)
        if close is not None:
            close()
    ok = back == dev.verified_active
    print(f"\nprogrammed {res.device}: {res.payload_bytes} of {res.full_bytes} image bytes in "
          f"{res.writes} writes, {res.stats.bytes_tx} bytes sent, {res.stats.retries} "
          f"retries, {res.elapsed_s * 1e3:.2f} ms; active CRC {res.crc:#010x}; "
          f"read-back {'matches' if ok else 'DIFFERS'}", file=out)
    return 0 if ok else 1


def _print_bits_table(rows: list[dict], out: TextIO) -> None:
    print("  phase bits   sum-rate   loss (bit/s/Hz)   min gain (dB)   worst gain loss (dB)",
          file=out)
    for r in rows:
        b = "continuous" if r["bits"] is None else f"{r['bits']:>10d}"
        print(f"  {b:>10}   {r['sum_rate']:8.3f}   {r['rate_loss']:15.3f}   "
              f"{r['min_gain_db']:13.2f}   {r['gain_loss_db']:20.2f}", file=out)


def _optimize_dma(scenario: Scenario, args: argparse.Namespace, out: TextIO) -> int:
    from rfctl.admittance import DmaModel
    from rfctl.optimize.dma import DmaTask, design_dma, tuning_state
    from rfctl.studies import lorentzian_bits_study

    if scenario.dma is None or scenario.dma_task is None:
        raise RfctlError(f"{scenario.name}: needs [dma] and [dma_task] tables")
    t = scenario.dma_task
    rng = np.random.default_rng([scenario.seed, args.realisation])
    model = DmaModel.from_spec(scenario.dma, origin=(0.0, 0.0, 10.0))
    x0, x1, y0, y1, z = t.user_region_m
    users = np.column_stack([rng.uniform(x0, x1, t.users), rng.uniform(y0, y1, t.users),
                             np.full(t.users, z)])
    d = np.asarray(t.directions, float).reshape(-1, 2)
    task = DmaTask(model, users, d[:, 0], d[:, 1], t.noise_power, t.max_power,
                   n_sensing=max(t.sensing_streams, 1))
    res = design_dma(task, rng=rng)
    print(f"DMA design for {scenario.name}: mean beampattern gain {res.trace[0]:.4g} → "
          f"{res.objective:.4g} in {res.iterations} iterations ({res.stop_reason}); "
          f"digital {res.digital_s:.2f} s, analog {res.analog_s:.2f} s; start correlation "
          f"{res.start_correlation:.2f}", file=out)
    print(f"  SINR/Γ: {np.round(res.sinr / task.gamma, 3).tolist()}; beampattern "
          f"{np.round(res.beampattern, 4).tolist()} (β {task.beta[0]:.4g}, β_max "
          f"{task.beta_max:.4g}); P_t {res.power:.4g} W", file=out)
    print("after quantizing the tunings (Lorentzian tables):", file=out)
    print("  bits   objective   min SINR/Γ   feasible   objective with B re-optimised",
          file=out)
    for r in lorentzian_bits_study(res, task):
        b = "cont." if r["bits"] is None else str(r["bits"])
        print(f"  {b:>5}   {r['objective']:9.4g}   {r['min_sinr_ratio']:10.3f}   "
              f"{r['feasible']!s:>8}   {r['objective_reopt']:9.4g}", file=out)
    st = tuning_state(task, res).replace(record=DesignRecord(
        scenario=scenario.model_dump(mode="json"), seed=scenario.seed,
        realisation=args.realisation, notes={"design": "rfctl.optimize.dma.design_dma",
                                             "users_m": users.tolist()}))
    st.save(args.out)
    print(f"state written to {args.out}", file=out)
    return 0


def _cmd_optimize(args: argparse.Namespace, out: TextIO) -> int:
    scenario = load_config(args.scenario)
    if not isinstance(scenario, Scenario):
        raise RfctlError(f"{args.scenario}: is a board profile; --scenario needs a scenario")
    if args.problem == "dma":
        return _optimize_dma(scenario, args, out)
    if args.problem == "sub6g":
        from rfctl.optimize.sub6g import design_sub6g

        rng = np.random.default_rng(args.seed)
        res = design_sub6g(scenario, args.realisation, init=args.init, rng=rng)
        print(f"sub-6G design for {scenario.name}, realisation {args.realisation} (FS-JBAS, "
              f"init {args.init}): power {res.power:.4g} W "
              f"({10 * np.log10(res.power):.2f} dBW)", file=out)
        print(f"  antennas (row, col): {', '.join(str(p) for p in res.positions)}", file=out)
        print(f"  SINR (dB): {np.round(_db(res.sinr), 2).tolist()}; sensing gains (dB): "
              f"{np.round(_db(res.gains), 2).tolist()}", file=out)
        print(f"  {len(res.trace) - 1} iterations, stop: {res.stop_reason}; {res.n_exact} "
              f"selections solved, {res.n_pruned} pruned; {res.elapsed_s:.2f} s", file=out)
        state = res.state()
    else:
        from rfctl.optimize import mmwave
        from rfctl.optimize.dual_band import design_dual_band
        from rfctl.studies import phase_bits_study

        if args.problem == "dual-band":
            db = design_dual_band(scenario, args.realisation, structure=args.structure)
            mm, state = db.mmwave, db.state
            print(f"dual-band design for {scenario.name}, realisation {args.realisation}: "
                  f"sub-6G power {db.sub6.power:.4g} W at antennas "
                  f"{', '.join(str(p) for p in db.sub6.positions)}; mmWave gets "
                  f"P_m = {db.mmwave_power:.4g} W", file=out)
            task = mmwave.task_from_scenario(scenario, args.realisation, power=db.mmwave_power)
        else:
            task = mmwave.task_from_scenario(scenario, args.realisation)
            mm = mmwave.admm_hybrid(task, args.structure)
            mm.record = DesignRecord(scenario=scenario.model_dump(mode="json"),
                                     seed=scenario.seed, realisation=args.realisation,
                                     channels={"mmwave": task.H},
                                     notes={"design": f"ADMM-{args.structure}"})
            state = mm.state()
        print(f"mmWave {args.structure}: sum-rate {mm.sum_rate:.3f} bit/s/Hz; SINR (dB) "
              f"{np.round(_db(mm.sinr), 2).tolist()}; min sensing gain "
              f"{_db(mm.gains.min()):.2f} dB (Υ {_db(task.upsilon.min()):.2f} dB); "
              f"hybrid residual {mm.residuals['hybrid']:.2e}"
              + ("; F_BB scaled down to P_m" if mm.scaled else ""), file=out)
        print(f"  {mm.iterations} iterations, stop: {mm.stop_reason}; "
              f"{mm.elapsed_s * 1e3:.0f} ms", file=out)
        print("after quantization of the phase shifters:", file=out)
        _print_bits_table(phase_bits_study(mm, task), out)
    state.save(args.out)
    print(f"state written to {args.out}", file=out)
    return 0


def _cmd_sim_board(args: argparse.Namespace, out: TextIO) -> int:
    profile = _board_profile(args.board)
    mod = _load_driver_module("rfctl-serial")
    faults = mod.simboard_faults(drop_rx=args.drop, drop_tx=args.drop, corrupt_rx=args.corrupt,
                                 corrupt_tx=args.corrupt, busy=args.busy,
                                 latch_fails=args.latch_fail,
                                 reset_mid_transfer=args.reset_mid_transfer,
                                 power_cycle=args.power_cycle, reply_delay_s=args.delay,
                                 silent=args.silent, seed=args.seed)
    # this process only serves the board: hand the interpreter lock between its receive
    # and transmit threads every 0.1 ms (default 5 ms) so replies leave on time
    sys.setswitchinterval(1e-4)
    server = mod.sim_server(profile, faults=faults, baud=args.baud or None)
    if args.pty:
        where = server.start_pty()
    else:
        url = args.listen or "socket://127.0.0.1:0"
        host, _, port = url.removeprefix("socket://").rpartition(":")
        where = server.start_socket(host or "127.0.0.1", int(port or 0))
    print(f"simulated board {profile.name} ({profile.model}) at {where}"
          + (f", {args.baud} baud" if args.baud else "") + "; Ctrl-C stops", file=out,
          flush=True)
    server.serve_forever()
    return 0


def _open_instrument(kind: str, resource: str, visa_library: str | None):
    """An instrument driver through the entry-point group ``rfctl.instruments``."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="rfctl.instruments"):
        if ep.name == kind:
            try:
                factory = ep.load()
            except ImportError as exc:
                raise RfctlError(f"instrument driver {kind!r} needs {exc.name}; "
                                 "pip install 'rfctl[sim]'") from None
            return factory(kind, resource, visa_library=visa_library)
    raise RfctlError(f"no instrument driver {kind!r} is installed")


def _cmd_sim_bench(args: argparse.Namespace, out: TextIO) -> int:
    """A simulated board and its measurement bench in one process."""
    profile = _board_profile(args.board)
    mod = _load_driver_module("rfctl-serial")
    bench_mod = __import__(mod.__name__.rsplit(".", 1)[0] + ".sim_bench", fromlist=["_"])
    server = mod.sim_server(profile, baud=args.baud or None)
    fw = server.firmware
    model = bench_mod.BenchModel.random(fw, profile, args.rows, args.cols, seed=args.seed,
                                        noise=args.noise)
    model.probe = (args.probe_theta, args.probe_phi)
    bench = bench_mod.SimBench(model)
    res = bench.start()
    url = server.start_socket()
    sys.setswitchinterval(1e-4)
    print(f"simulated board {profile.name} at {url}", file=out)
    for kind, r in res.items():
        print(f"{kind:18s} {r}", file=out)
    print(f"(hidden phase offsets seeded {args.seed}; Ctrl-C stops)", file=out, flush=True)
    try:
        server.serve_forever()
    finally:
        bench.stop()
    return 0


def _lab_setup(args: argparse.Namespace):
    profile = _board_profile(args.board)
    if args.calibration:
        ph = next(b for b in profile.banks if b.kind == "phase")
        banks = [b.model_copy(update={"calibration_file": str(Path(args.calibration).resolve())})
                 if b is ph else b for b in profile.banks]
        profile = profile.model_copy(update={"banks": banks})
    dev = open_device(profile, **({"url": args.url} if args.url else {}))
    meter = _open_instrument(args.sensor, args.meter, args.visa_library)
    return profile, dev, meter


def _cmd_lab(args: argparse.Namespace, out: TextIO) -> int:
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
        for x in (dev, meter):
            close = getattr(x, "close", None)
            if close is not None:
                close()
    return 0


def _cmd_beams(args: argparse.Namespace, out: TextIO) -> int:
    profile = _board_profile(args.board)
    dev = open_device(profile, **({"url": args.url} if args.url else {}))
    try:
        if args.action == "store":
            if not args.state:
                raise RfctlError("beams store needs --state STATE.json")
            image = quantize(ArrayState.load(args.state), compile_board(profile))
            crc = store_beam(dev, args.slot, image)
            print(f"stored beam {args.slot}: CRC-32 {crc:#010x}", file=out)
        else:
            if args.crc is None:
                raise RfctlError("beams select needs --crc (printed by beams store)")
            crc = select_beam(dev, args.slot, int(args.crc, 0))
            print(f"selected beam {args.slot}: active CRC-32 {crc:#010x}", file=out)
    finally:
        close = getattr(dev, "close", None)
        if close is not None:
            close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rfctl",
        description="Control reconfigurable antenna arrays: optimize, quantize, program.",
    )
    p.add_argument("--version", action="version", version=f"rfctl {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr (-v info, -vv debug)")
    p.add_argument("--log-wire", type=Path, metavar="FILE",
                   help="record every frame (logger rfctl.wire, DEBUG) in FILE")
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
    d.add_argument("--no-board", action="store_true",
                   help="stop after quantizing (do not program the simulated board)")
    d.set_defaults(func=_cmd_demo)

    pr = sub.add_parser("program", help="quantize a state and program a board")
    pr.add_argument("--board", required=True, help="board profile (name or TOML file)")
    pr.add_argument("--state", required=True, help="STATE.json")
    pr.add_argument("--url", help="override the profile's link URL")
    pr.add_argument("--dry-run", action="store_true",
                    help="print codes, frames and byte counts; open no port")
    pr.set_defaults(func=_cmd_program)

    op = sub.add_parser("optimize", help="run an optimizer on a scenario, write STATE.json")
    op.add_argument("problem", choices=["sub6g", "mmwave", "dual-band", "dma"],
                    help="sub6g: antenna selection + beamforming (FS-JBAS); mmwave: hybrid "
                    "beamforming (ADMM); dual-band: sub6g, then mmwave with P_t − P_s; "
                    "dma: DMA digital SDR + analog tuning, alternated")
    op.add_argument("--scenario", required=True, help="scenario (name or TOML file)")
    op.add_argument("--realisation", type=int, default=0, help="channel realisation index")
    op.add_argument("--init", choices=["abas", "random", "fixed"], default="abas")
    op.add_argument("--seed", type=int, default=0, help="seed for --init random")
    op.add_argument("--structure", choices=["RHB", "DHB", "PCHB"], default="RHB",
                    help="mmWave hybrid structure")
    op.add_argument("--out", type=Path, default=Path("state.json"))
    op.set_defaults(func=_cmd_optimize)

    sb = sub.add_parser("sim-board", help="serve a simulated board (socket or pty)")
    sb.add_argument("--board", default="sim-dbraa-14x14", help="board profile it emulates")
    g = sb.add_mutually_exclusive_group()
    g.add_argument("--listen", help="socket://HOST:PORT (default socket://127.0.0.1:0)")
    g.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    sb.add_argument("--baud", type=int, default=0, help="simulated line rate (0: unpaced)")
    sb.add_argument("--drop", type=float, default=0.0, help="byte drop probability")
    sb.add_argument("--corrupt", type=float, default=0.0, help="byte corruption probability")
    sb.add_argument("--busy", type=float, default=0.0, help="BUSY NAK probability")
    sb.add_argument("--latch-fail", type=float, default=0.0,
                    help="probability that a latch does not take")
    sb.add_argument("--reset-mid-transfer", type=float, default=0.0,
                    help="probability of a reboot on a write")
    sb.add_argument("--power-cycle", type=float, default=0.0,
                    help="probability of a silent power cycle per request")
    sb.add_argument("--delay", type=float, default=0.0, help="extra reply delay, s")
    sb.add_argument("--silent", action="store_true", help="never reply")
    sb.add_argument("--seed", type=int, default=0, help="fault generator seed")
    sb.set_defaults(func=_cmd_sim_board)

    sbn = sub.add_parser("sim-bench", help="serve a simulated board and its measurement "
                         "bench (power meter, spectrum analyzer, VNA, positioner)")
    sbn.add_argument("--board", default="sim-lab-8x8")
    sbn.add_argument("--rows", type=int, default=8)
    sbn.add_argument("--cols", type=int, default=8)
    sbn.add_argument("--baud", type=int, default=921600)
    sbn.add_argument("--seed", type=int, default=0, help="seed of the hidden phase offsets")
    sbn.add_argument("--noise", type=float, default=0.05,
                     help="receiver noise σ in units of one element's field")
    sbn.add_argument("--probe-theta", type=float, default=0.0)
    sbn.add_argument("--probe-phi", type=float, default=0.0)
    sbn.set_defaults(func=_cmd_sim_bench)

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
    lab.set_defaults(func=_cmd_lab)

    bm = sub.add_parser("beams", help="store a beam in a board slot, or select one")
    bm.add_argument("action", choices=["store", "select"])
    bm.add_argument("slot", type=int)
    bm.add_argument("--board", required=True)
    bm.add_argument("--state", help="STATE.json (store)")
    bm.add_argument("--crc", help="CRC-32 of the stored beam (select), e.g. 0x1234abcd")
    bm.add_argument("--url", help="override the profile's link URL")
    bm.set_defaults(func=_cmd_beams)
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
    wire_handler = None
    if args.log_wire:
        wire_handler = logging.FileHandler(args.log_wire, encoding="utf-8")
        wire_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        wire = logging.getLogger("rfctl.wire")
        wire.setLevel(logging.DEBUG)
        wire.addHandler(wire_handler)
    try:
        return int(args.func(args, out))
    except RfctlError as exc:
        print(f"rfctl: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if wire_handler is not None:
            logging.getLogger("rfctl.wire").removeHandler(wire_handler)
            wire_handler.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
