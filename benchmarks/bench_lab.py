"""Benchmarks of the lab loop (issues 6 and 13).

1. A 181-point beam sweep of the 8 × 8 lab board (``sim-lab-8x8``: 64 six-bit phase
   shifters) at a simulated 921600 baud on a loopback socket, with a pyvisa-py power
   meter on loopback SCPI. The simulated board and its instruments run (a) as threads
   of this process, as in issue 6, and (b) in their own process (``rfctl sim-bench``),
   as a real board and meter would. Per setting, in one run:

   - ``prestage``: :func:`rfctl.lab.beam_sweep` as shipped: the next point's staged
     writes are sent right behind each latch and cross the line while the point is
     measured, so a point is LATCH → reply → reading;
   - ``one frame``: the issue-6 path (``prestage=False``): per point one WRITE_LATCH
     (the delta and the latch in one frame) → reply → reading;
   - ``minimal host``: the same two traffics driven by a raw loop (precomputed frames,
     a plain socket, only the reply's status and CRC checked) with the same meter, as
     the floor of this simulator, OS and meter on this machine.

   **Line-rate bound per point**, from the bytes actually sent: a UART is full duplex,
   so with one frame per point the reply cannot overlap its own request, and the bound
   is (request bytes + reply bytes) × 10 / baud. With prestaging, the replies and the
   reading overlap the next point's writes, and the bound is the busier direction's
   bytes per point × 10 / baud (at least the LATCH and its reply, which cannot
   overlap). The ratio is reported against the smaller of the two bounds.
2. Phase calibration of a 64-element (8 × 8) array with hidden offsets uniform on
   ±180° and ±10 % gain errors, at receiver noise σ = 0.05 (one element's field = 1):
   measurements needed and the residual RMS phase error (degrees, global phase removed),
   for 8 and 4 phase states per element.

Run: ``python benchmarks/bench_lab.py [--runs N] [--skip-calibration]``
"""

from __future__ import annotations

import argparse
import platform
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from rfctl.drivers.instruments import open_instrument
from rfctl.drivers.protocol import (
    Cmd,
    FrameSplitter,
    decode_frame,
    encode_frame,
    parse_reply,
    reply_payload,
)
from rfctl.drivers.rfctl_board import open_rfctl_board
from rfctl.sims.sim_bench import BenchModel, SimBench
from rfctl.sims.simboard import SimBoardFirmware
from rfctl.sims.simserver import SimServer

from rfctl.config import load_config
from rfctl.hal import compile_board, quantize
from rfctl.hal.image import delta_writes, image_crc, pack_image
from rfctl.lab import beam_sweep, phase_calibration
from rfctl.lab.sweeps import steering_state

BAUD = 921_600
BYTE_S = 10 / BAUD
PROFILE = load_config("sim-lab-8x8")
ANGLES = [(float(t), 0.0) for t in np.linspace(-1, 1, 181)]


@contextmanager
def bench_in_threads() -> Iterator[tuple[str, str]]:
    """The simulated board and instruments as threads of this process."""
    fw = SimBoardFirmware.from_profile(PROFILE)
    model = BenchModel.random(fw, PROFILE, 8, 8, seed=21, noise=0.05)
    with SimBench(model) as bench, SimServer(fw, baud=BAUD) as srv:
        res = bench.start()
        yield srv.start_socket(), res["power-meter"]


@contextmanager
def bench_in_process() -> Iterator[tuple[str, str]]:
    """``rfctl sim-bench`` in its own process (as a real board and meter would be)."""
    proc = subprocess.Popen([sys.executable, "-m", "rfctl", "sim-bench", "--board",
                             "sim-lab-8x8", "--baud", str(BAUD), "--seed", "21"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline()]
        while "Ctrl-C" not in lines[-1]:
            lines.append(proc.stdout.readline())
            if not lines[-1]:
                raise RuntimeError(f"sim-bench did not start: {lines}")
        url = re.search(r"(socket://\S+)", lines[0]).group(1)
        meter = next(ln.split()[1] for ln in lines if ln.startswith("power-meter"))
        yield url, meter
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rfctl_sweeps(url: str, meter: str, runs: int) -> dict[str, list[dict]]:
    """``runs`` sweeps per mode through rfctl (modes interleaved)."""
    board = compile_board(PROFILE)
    dev = open_rfctl_board(PROFILE, url=url)
    pm = open_instrument("power-meter", meter, visa_library="@py")
    out: dict[str, list[dict]] = {"prestage": [], "one frame": []}
    try:
        # unmeasured: the session's first sweep also reads the board's image back once
        beam_sweep(dev, board, pm, ANGLES, rows=8, cols=8)
        for _ in range(runs):
            for mode in out:
                before = dev.stats.copy()
                c0, w0 = time.process_time(), time.perf_counter()
                data = beam_sweep(dev, board, pm, ANGLES, rows=8, cols=8,
                                  prestage=mode == "prestage")
                cpu, call = time.process_time() - c0, time.perf_counter() - w0
                used = dev.stats.since(before)
                n = len(ANGLES)
                out[mode].append({
                    "per_point": data.elapsed_s / n, "cpu": cpu / n, "call": call / n,
                    "program": statistics.median(data.column("program_s")),
                    "point_median": statistics.median(np.diff(data.column("t_s"))),
                    "tx": used.bytes_tx / n, "rx": used.bytes_rx / n,
                    "frames": used.frames_tx / n, "retries": used.retries})
    finally:
        dev.close()
        pm.close()
    return out


def _write(seq: int, session: int, bank: int, off: int, data: bytes,
           crc: int | None = None) -> bytes:
    head = bytes([bank]) + off.to_bytes(2, "little")
    if crc is None:
        return encode_frame(seq, Cmd.WRITE_STAGED, head + data, session=session)
    return encode_frame(seq, Cmd.WRITE_LATCH, head + crc.to_bytes(4, "little") + data,
                        session=session)


def minimal_frames(prestage: bool, session: int
                   ) -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int, int]]]:
    """Precomputed traffic of one sweep, starting from a board that holds the last
    angle's image: the setup (frames, seq of the last) that stages point 0 (prestage
    only), and per point (frames, seq of the request whose reply ends it, active CRC)."""
    layout = open_layout()
    board = compile_board(PROFILE)
    imgs = [pack_image(quantize(steering_state(8, 8, th, ph), board), layout, None)
            for th, ph in ANGLES]
    seq = 1
    setup: list[tuple[bytes, int]] = []
    points: list[tuple[bytes, int, int]] = []

    def writes(old: bytes, new: bytes, crc: int | None) -> tuple[bytes, int]:
        nonlocal seq
        ws = delta_writes(old, new, layout, chunk=256)
        out = b""
        for k, (bank, off, data) in enumerate(ws):
            last = k == len(ws) - 1
            out += _write(seq, session, bank, off, data, crc if last else None)
            seq += 1
        return out, seq - 1

    if prestage and imgs[0] != imgs[-1]:
        setup.append(writes(imgs[-1], imgs[0], None))
    prev = imgs[-1]
    for i, new in enumerate(imgs):
        crc = image_crc(new)
        if prestage:
            frames = encode_frame(seq, Cmd.LATCH, crc.to_bytes(4, "little"), session=session)
            end = seq
            seq += 1
            if i + 1 < len(imgs):
                frames += writes(new, imgs[i + 1], None)[0]
        elif new != prev:
            frames, end = writes(prev, new, crc)
        else:  # nothing to program (the angles ±1 give the same codes)
            frames, end = b"", -1
        points.append((frames, end, crc))
        prev = new
    return setup, points


def open_layout():
    """The lab board's image layout (from its profile)."""
    from rfctl.hal.device import layout_from_profile
    from rfctl.hal.image import ImageLayout

    return ImageLayout(PROFILE.model, layout_from_profile(PROFILE))


@contextmanager
def hello(host: str, port: int, session: int):
    """A plain socket with a session opened on it (HELLO), and ``reply_to(seq)`` that
    waits for the payload of that request's reply; the server may still be closing the
    previous connection (it answers a server-level BUSY): connect again within 5 s."""
    t_end = time.perf_counter() + 5
    while True:
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(2.0)
        split = FrameSplitter()

        def reply_to(seq: int, s: socket.socket = s, split: FrameSplitter = split) -> bytes:
            while True:
                data = s.recv(4096)
                if not data:
                    raise ConnectionError("the board closed the connection")
                for raw in split.feed(data):
                    fr = decode_frame(raw)
                    if fr.seq in (seq, 0xFFFF):
                        return fr.payload

        try:
            s.sendall(encode_frame(0xFFFE, Cmd.HELLO, session=session))
            if parse_reply(reply_to(0xFFFE))[0] == 0:
                break
        except ConnectionError:
            pass
        s.close()
        if time.perf_counter() > t_end:
            raise RuntimeError("minimal host: the board refused the session")
        time.sleep(0.05)
    try:
        yield s, reply_to
        s.sendall(encode_frame(0xFFFD, Cmd.BYE, session=session))
        reply_to(0xFFFD)
    finally:
        s.close()


def minimal_sweeps(url: str, meter: str, runs: int) -> dict[str, list[float]]:
    """The floor: precomputed frames on a plain socket and the same meter; per point
    only the reply's status and CRC are checked."""
    host, port = url.removeprefix("socket://").split(":")
    pm = open_instrument("power-meter", meter, visa_library="@py")
    out: dict[str, list[float]] = {"prestage": [], "one frame": []}
    try:
        for _ in range(runs):
            for mode in out:
                session = secrets.randbits(32) or 1
                with hello(host, int(port), session) as (s, reply_to):
                    setup, points = minimal_frames(mode == "prestage", session)
                    for frames, end in setup:
                        s.sendall(frames)
                        reply_to(end)
                    t0 = time.perf_counter()
                    for frames, end, crc in points:
                        if end < 0:
                            pm.read_power()
                            continue
                        s.sendall(frames)
                        status, _boot, data = parse_reply(reply_to(end))
                        if status or int.from_bytes(data[:4], "little") != crc:
                            raise RuntimeError(f"minimal host: latch {end} not taken")
                        pm.read_power()
                    out[mode].append((time.perf_counter() - t0) / len(points))
    finally:
        pm.close()
    return out


LATCH_ROUND_TRIP = len(encode_frame(1, Cmd.LATCH, b"\1\2\3\4", session=0x5A5A5A5A)) + len(
    encode_frame(1, Cmd.LATCH | 0x80, reply_payload(0, 0x5A5A5A5A, b"\1\2\3\4"),
                 session=0x5A5A5A5A))


def bounds(r: dict) -> tuple[float, float]:
    """(one-frame bound, prestaged bound) per point, s, from the bytes of a run: one
    frame, the request and its reply in turn; prestaged, the busier direction (at least
    a LATCH and its reply, which cannot overlap)."""
    return ((r["tx"] + r["rx"]) * BYTE_S,
            max(r["tx"], r["rx"], LATCH_ROUND_TRIP) * BYTE_S)


def report_sweeps(where: str, sw: dict[str, list[dict]], floor: dict[str, list[float]]
                  ) -> None:
    best = {m: min(runs, key=lambda r: r["per_point"]) for m, runs in sw.items()}
    b_one = bounds(best["one frame"])[0]
    b_pre = bounds(best["prestage"])[1]
    bound = min(b_one, b_pre)
    print(f"\n181-point beam sweep, board and meter {where} ({len(sw['prestage'])} runs per "
          f"mode, interleaved)")
    print(f"  bounds per point: one frame {b_one * 1e3:.3f} ms "
          f"({best['one frame']['tx']:.1f} B sent + {best['one frame']['rx']:.1f} B "
          f"replied), prestaged {b_pre * 1e3:.3f} ms ({best['prestage']['tx']:.1f} B sent, "
          f"{best['prestage']['rx']:.1f} B replied); the smaller: {bound * 1e3:.3f} ms")
    for mode, runs in sw.items():
        per = sorted(r["per_point"] * 1e3 for r in runs)
        b = best[mode]
        calls = sorted(r["call"] * 1e3 for r in runs)
        print(f"  rfctl, {mode:9s}: {per[0]:.3f} ms per point (best; runs "
              f"{', '.join(f'{x:.2f}' for x in per)}) = {per[0] / 1e3 / bound:.2f}x the "
              f"bound, median run {statistics.median(per) / 1e3 / bound:.2f}x; whole call "
              f"(quantizing and planning ahead included) {calls[0]:.3f} ms per point best, "
              f"{statistics.median(calls):.3f} median; median point "
              f"{b['point_median'] * 1e3:.3f} ms; program call "
              f"{b['program'] * 1e3:.3f} ms; process CPU {b['cpu'] * 1e3:.3f} ms per point; "
              f"{b['frames']:.2f} frames per point, {b['retries']} retries")
    for mode, runs in floor.items():
        per = sorted(x * 1e3 for x in runs)
        print(f"  minimal host, {mode:9s}: {per[0]:.3f} ms per point (best; runs "
              f"{', '.join(f'{x:.2f}' for x in per)}) = {per[0] / 1e3 / bound:.2f}x the bound")


def circular_rms_deg(est, truth) -> float:
    e = np.angle(np.exp(1j * (est - truth)))
    e = np.angle(np.exp(1j * (e - np.angle(np.mean(np.exp(1j * e))))))
    return float(np.degrees(np.sqrt(np.mean(e ** 2))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="sweeps per mode and setting")
    ap.add_argument("--skip-calibration", action="store_true")
    args = ap.parse_args()
    sys.setswitchinterval(1e-4)
    print(f"Python {platform.python_version()}, numpy {np.__version__}; machine shared "
          "with other jobs: compare modes within one setting")
    for where, bench in (("in their own process", bench_in_process),
                         ("as threads of this process", bench_in_threads)):
        with bench() as (url, meter):
            sw = rfctl_sweeps(url, meter, args.runs)
            floor = minimal_sweeps(url, meter, args.runs)
            t = time.perf_counter()
            pm = open_instrument("power-meter", meter, visa_library="@py")
            for _ in range(200):
                pm.read_power()
            read = (time.perf_counter() - t) / 200
            pm.close()
        report_sweeps(where, sw, floor)
        print(f"  a reading alone: {read * 1e3:.3f} ms (mean of 200)")
    if args.skip_calibration:
        return
    prof = PROFILE
    for states in (8, 4):
        fw = SimBoardFirmware.from_profile(prof)
        model = BenchModel.random(fw, prof, 8, 8, seed=22, noise=0.05)
        dev = open_rfctl_board(prof, firmware=fw)
        with SimBench(model) as bench:
            pm = open_instrument("power-meter", bench.start()["power-meter"],
                                 visa_library="@py")
            cal = phase_calibration(dev, prof, pm, rows=8, cols=8, states=states, passes=3)
            pm.close()
        per_pass = [round(circular_rms_deg(h, model.offsets), 2) for h in cal.passes]
        after_db = 10 * np.log10(cal.power_after_w / model.ideal_power_w())
        before_db = 10 * np.log10(cal.power_before_w / model.ideal_power_w())
        pred = np.degrees(model.noise / np.sqrt(states) * np.sqrt(np.mean(1 / model.gains ** 2)))
        print(f"calibration, 64 elements, {states} states x 3 passes: {cal.measurements} "
              f"measurements; residual RMS phase error per pass {per_pass} deg (before: "
              f"{circular_rms_deg(np.zeros(64), model.offsets):.1f} deg; noise prediction "
              f"{pred:.2f} deg); beam at the probe {after_db:+.3f} dB from ideal "
              f"(uncalibrated {before_db:+.2f} dB)")


if __name__ == "__main__":
    main()
