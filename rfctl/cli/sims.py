"""``rfctl sim-board`` and ``rfctl sim-bench``: serve simulators (found through the
entry-point group ``rfctl.sims``) for dry runs and tests."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from rfctl.errors import ConfigError
from rfctl.hal.discovery import open_sim

from .argtypes import check_output_file, finite_float, int_at_least, probability
from .common import board_profile, db


def listen_url(text: str) -> tuple[str, int]:
    """An argparse type: ``socket://HOST:PORT`` (PORT in [0, 65535]; 0: a free port)
    → (host, port)."""
    if not text.startswith("socket://"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected socket://HOST:PORT")
    host, sep, port = text.removeprefix("socket://").rpartition(":")
    if not sep or not host or not port:
        raise argparse.ArgumentTypeError(f"{text!r}: expected socket://HOST:PORT (a host "
                                         "and a port are needed)")
    try:
        n = int(port, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: port {port!r} is not an integer") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: port {n} is outside [0, 65535]")
    return host.strip("[]"), n


def _until_interrupted(stop) -> None:
    """Serve (the servers run in their own threads) until Ctrl-C, then call ``stop``;
    the KeyboardInterrupt goes on to ``main``, which exits 130."""
    import time

    try:
        while True:
            time.sleep(3600)
    finally:
        stop()


def _serve_bias_source(profile, args: argparse.Namespace, out: TextIO) -> int:
    """A SCPI bias-source board (driver ``visa-bias``): its simulator on 127.0.0.1, for
    pyvisa-py (``TCPIP::127.0.0.1::PORT::SOCKET``)."""
    if args.pty or args.nvm or any((args.drop, args.corrupt, args.busy, args.latch_fail,
                                    args.reset_mid_transfer, args.power_cycle, args.delay,
                                    args.silent, args.baud)):
        raise ConfigError(f"board {profile.name} (driver visa-bias) is simulated as a SCPI "
                          "socket server: --listen only (no --pty, --nvm, --baud or faults)",
                          field="board", reason="option not supported for a bias source")
    bank = profile.bank("lorentzian")
    lo, hi = bank.bias_v
    sim = open_sim("bias-server", profile)
    host, port = args.listen or ("127.0.0.1", 0)
    if host not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"--listen socket://{host}:{port}: the bias-source simulator "
                          "listens on 127.0.0.1 only", field="--listen", reason="host")
    try:
        port = sim.start(port)
    except OSError as exc:
        raise ConfigError(f"--listen socket://{host}:{port}: cannot listen: "
                          f"{exc.strerror or exc}", field="--listen",
                          reason=str(exc.strerror or exc)) from None
    print(f"simulated bias source {profile.name} ({profile.model}, {bank.count} channels, "
          f"{lo:g}–{hi:g} V) at TCPIP::127.0.0.1::{port}::SOCKET (pyvisa-py: program with "
          f"--url TCPIP::127.0.0.1::{port}::SOCKET); Ctrl-C stops", file=out, flush=True)
    _until_interrupted(sim.stop)
    return 0  # not reached


def cmd_sim_board(args: argparse.Namespace, out: TextIO) -> int:
    """Serve a simulated board on a loopback socket or a pseudo-terminal."""
    profile = board_profile(args.board)
    if profile.driver == "visa-bias":
        return _serve_bias_source(profile, args, out)
    if profile.driver != "rfctl-serial":
        hint = (" Serve it with its bench: rfctl sim-bench --board "
                f"{profile.name}." if profile.driver == "osris" else "")
        raise ConfigError(f"board {profile.name} uses driver {profile.driver!r}; sim-board "
                          "serves the rfctl board protocol (driver 'rfctl-serial') and SCPI "
                          f"bias sources (driver 'visa-bias').{hint}", field="board",
                          reason="no simulator for this driver")
    faults = dict(drop_rx=args.drop, drop_tx=args.drop, corrupt_rx=args.corrupt,
                  corrupt_tx=args.corrupt, busy=args.busy, latch_fails=args.latch_fail,
                  reset_mid_transfer=args.reset_mid_transfer, power_cycle=args.power_cycle,
                  reply_delay_s=args.delay, silent=args.silent, seed=args.seed)
    # this process only serves the board: hand the interpreter lock between its receive
    # and transmit threads every 0.1 ms (default 5 ms) so replies leave on time
    check_output_file(args.nvm, "--nvm")
    sys.setswitchinterval(1e-4)
    try:
        server = open_sim("board-server", profile, faults=faults, baud=args.baud or None,
                          nvm_path=args.nvm, lease_s=args.lease)
    except OSError as exc:
        raise ConfigError(f"--nvm {args.nvm}: cannot use the memory file: "
                          f"{exc.strerror or exc}", field="--nvm",
                          reason=str(exc.strerror or exc)) from None
    if args.pty:
        where = server.start_pty()
    else:
        host, port = args.listen or ("127.0.0.1", 0)
        try:
            where = server.start_socket(host, port)
        except OSError as exc:
            raise ConfigError(f"--listen socket://{host}:{port}: cannot listen: "
                              f"{exc.strerror or exc}", field="--listen",
                              reason=str(exc.strerror or exc)) from None
    memory = f"memory in {args.nvm}" if args.nvm else "memory lost on exit (no --nvm)"
    print(f"simulated board {profile.name} ({profile.model}) at {where}"
          + (f", {args.baud} baud" if args.baud else "; unpaced (no --baud)")
          + f"; {memory}; Ctrl-C stops", file=out, flush=True)
    _until_interrupted(server.stop)
    return 0  # not reached: Ctrl-C ends it (exit 130, as for every command)


def cmd_sim_bench(args: argparse.Namespace, out: TextIO) -> int:
    """A simulated board and its measurement bench in one process."""
    profile = board_profile(args.board)
    ph = profile.find_bank("phase")
    if ph is None:
        raise ConfigError(f"board {profile.name} has no phase bank: sim-bench simulates a "
                          "phase-steered panel", field="board", reason="no phase bank")
    given = [f"--{k.replace('_', '-')}" for k in ("rows", "cols", "probe_theta", "probe_phi")
             if getattr(args, k) is not None]
    if profile.driver == "osris" and given:
        verb = "does" if len(given) == 1 else "do"
        raise ConfigError(f"{', '.join(given)}: {verb} not apply to the one-bit bench of board "
                          f"{profile.name} (its {ph.count} elements and hidden channel are "
                          "fixed by the board; the field is measured at one receiver)",
                          field="rows", reason="does not apply")
    args.rows = args.rows if args.rows is not None else 8
    args.cols = args.cols if args.cols is not None else 8
    args.probe_theta = args.probe_theta if args.probe_theta is not None else 0.0
    args.probe_phi = args.probe_phi if args.probe_phi is not None else 0.0
    if profile.driver != "osris" and args.rows * args.cols != ph.count:
        raise ConfigError(f"--rows {args.rows} × --cols {args.cols} = "
                          f"{args.rows * args.cols}, but board {profile.name}'s phase bank "
                          f"has {ph.count} elements", field="rows",
                          reason="does not match the board")
    try:
        lab = open_sim("lab-bench", profile, rows=args.rows, cols=args.cols, seed=args.seed,
                       noise=args.noise, probe=(args.probe_theta, args.probe_phi),
                       baud=args.baud or None, direct_path=args.direct_path, port=args.port)
    except OSError as exc:  # a port in use (the board's or an instrument's)
        raise ConfigError(f"--port {args.port}: cannot listen on 127.0.0.1 ports "
                          f"{args.port}..{args.port + 4}: {exc.strerror or exc}",
                          field="port", reason="cannot listen") from None
    sys.setswitchinterval(1e-4)
    print(f"simulated board {profile.name} at {lab.url}", file=out)
    for kind, r in lab.resources.items():
        print(f"{kind:18s} {r}", file=out)
    what = "one-bit channel" if profile.driver == "osris" else "phase offsets"
    model = lab.bench.model
    optimum = ""
    if hasattr(model, "optimum"):  # the one-bit bench knows its best pattern
        f0 = model.f0
        best_w = model.optimum(f0)[1]
        noise_w = model.element_power_w * model.noise ** 2  # a reading's mean adds it
        optimum = (f"; optimum {float(db(best_w)) + 30:.2f} dBm at {f0 / 1e9:g} GHz as the "
                   f"instruments read it, noiseless (receiver noise adds "
                   f"{float(db(noise_w)) + 30:.2f} dBm on average)")
    print(f"(hidden {what} seeded {args.seed}{optimum}; Ctrl-C stops)", file=out, flush=True)
    _until_interrupted(lab.stop)
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    sb = sub.add_parser(
        "sim-board", help="serve a simulated board (socket or pty)",
        description="Serve a simulated rfctl board. Its non-volatile memory (the last "
        "latched image, the beam slots and the boot counter) is kept in --nvm FILE, "
        "written atomically, so a killed and restarted board comes back with its last "
        "latched image. Without --nvm the memory is lost when this process exits.")
    sb.add_argument("--board", default="sim-dbraa-14x14", help="board profile it emulates")
    g = sb.add_mutually_exclusive_group()
    g.add_argument("--listen", type=listen_url,
                   help="socket://HOST:PORT (default socket://127.0.0.1:0; port 0: a free one)")
    g.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    sb.add_argument("--baud", type=int_at_least(0, 100_000_000), default=0,
                    help="simulated line rate, baud (default 0: unpaced)")
    sb.add_argument("--drop", type=probability, default=0.0, help="byte drop probability")
    sb.add_argument("--corrupt", type=probability, default=0.0, help="byte corruption probability")
    sb.add_argument("--busy", type=probability, default=0.0, help="BUSY NAK probability")
    sb.add_argument("--latch-fail", type=probability, default=0.0,
                    help="probability that a latch does not take")
    sb.add_argument("--reset-mid-transfer", type=probability, default=0.0,
                    help="probability of a reboot on a write")
    sb.add_argument("--power-cycle", type=probability, default=0.0,
                    help="probability of a silent power cycle per request")
    sb.add_argument("--delay", type=finite_float(0.0, 60.0), default=0.0,
                    help="extra reply delay, s")
    sb.add_argument("--silent", action="store_true", help="never reply")
    sb.add_argument("--seed", type=int_at_least(0), default=0, help="fault generator seed")
    sb.add_argument("--nvm", metavar="FILE",
                    help="keep the board's non-volatile memory (active image, beam slots, "
                    "boot counter) in FILE, written atomically; without it the memory is "
                    "lost on exit")
    sb.add_argument("--lease", type=finite_float(0.01, 3600.0), default=2.0,
                    help="seconds without traffic after which another host may take over "
                    "a session that did not say goodbye (default 2)")
    sb.set_defaults(func=cmd_sim_board)

    sbn = sub.add_parser("sim-bench", help="serve a simulated board and its measurement "
                         "bench (power meter, spectrum analyzer, VNA, positioner)")
    sbn.add_argument("--board", default="sim-lab-8x8",
                     help="board profile; osris-16x16 serves the one-bit 16x16 bench")
    sbn.add_argument("--port", type=int_at_least(0, 65530), default=0,
                     help="board at socket://127.0.0.1:PORT, the instruments on the next "
                     "ports (power meter, spectrum analyzer, VNA, positioner); 0: free ports")
    sbn.add_argument("--rows", type=int_at_least(1, 256), default=None,
                     help="panel rows (default 8; not for the one-bit bench)")
    sbn.add_argument("--cols", type=int_at_least(1, 256), default=None,
                     help="panel columns (default 8; not for the one-bit bench)")
    sbn.add_argument("--baud", type=int_at_least(1, 100_000_000), default=921600)
    sbn.add_argument("--direct-path", type=finite_float(0.0, 1e3), default=1.0,
                     help="one-bit bench: direct path relative to a random pattern's field")
    sbn.add_argument("--seed", type=int_at_least(0), default=0,
                     help="seed of the hidden phase offsets")
    sbn.add_argument("--noise", type=finite_float(0.0, 1e3), default=0.05,
                     help="receiver noise σ in units of one element's field (one-bit bench: "
                     "of its mean amplitude)")
    sbn.add_argument("--probe-theta", type=finite_float(-1.0, 1.0), default=None,
                     help="probe θ (default 0; not for the one-bit bench)")
    sbn.add_argument("--probe-phi", type=finite_float(-1.0, 1.0), default=None,
                     help="probe φ (default 0; not for the one-bit bench)")
    sbn.set_defaults(func=cmd_sim_bench)
