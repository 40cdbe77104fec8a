"""``rfctl program`` and ``rfctl beams``: quantize a state and push it to a board."""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import TextIO

from rfctl.errors import DeviceError, ProgramError, RfctlError, stop_phrase, stop_status
from rfctl.hal import compile_board, quantize
from rfctl.hal.device import DeviceInfo, layout_from_profile
from rfctl.hal.discovery import load_entry_point
from rfctl.hal.image import delta_writes, image_crc, pack_image, unpack_image
from rfctl.hal.program import open_for_program, program, select_beam, store_beam
from rfctl.state import ArrayState

from .argtypes import crc32_value, int_at_least
from .common import board_profile, close_quietly, print_image_report


def _open(profile, url: str | None):
    return open_for_program(profile, url)


def _target(profile, url: str | None) -> str:
    """The link programmed, for the report (sim:// is an in-process simulated board)."""
    where = url or profile.link.url
    return where + (" (in-process simulated board)" if where.startswith("sim://") else "")


def _boot_note(dev, stats) -> str:
    """What the driver knows about the board's boots: its boot counter, and resets it
    saw during this call."""
    try:
        info = dev.info()
    except RfctlError:
        return ""
    parts = []
    if info.boot_count:
        parts.append(f"board boot counter {info.boot_count}"
                     + (f" (boot id {info.boot_id:#010x})" if info.boot_id else ""))
    if stats.resets_seen:
        parts.append(f"board restarted {stats.resets_seen} time(s) during this program")
    return "; ".join(parts)


def _usage(args: argparse.Namespace, message: str) -> int:
    """A usage error of this command: argparse's message and exit status 2."""
    try:
        args.parser_.error(message)
    except SystemExit as exc:
        return int(exc.code if exc.code is not None else 2)
    return 2


def cmd_program(args: argparse.Namespace, out: TextIO) -> int:
    """Quantize a state, program a board (or print the dry-run plan), read back."""
    profile = board_profile(args.board)
    board = compile_board(profile)
    state = ArrayState.load(args.state)
    image = quantize(state, board)
    print_image_report(image, out)
    # a DMA state is checked on the board's codes first (issue 12)
    from .dma import program_gate

    if not program_gate(state, profile, args.allow_infeasible, out):
        return 1
    if args.dry_run:
        info = DeviceInfo(model=profile.model, firmware="(dry run)",
                          banks=layout_from_profile(profile))
        data = pack_image(image, info, None)
        crc = image_crc(data)
        writes = delta_writes(None, data, info, chunk=profile.link.chunk)
        driver = load_entry_point("rfctl.drivers", profile.driver)
        # a driver may offer a frame planner beside its factory (rfctl-serial does)
        plan = getattr(inspect.getmodule(driver), "plan_frames", None)
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
    target = _target(profile, args.url)
    dev = _open(profile, args.url)
    try:
        res = program(dev, image)
        try:
            back = dev.read_active()
        except KeyboardInterrupt as exc:
            head = "interrupted" if stop_status(exc) == 130 else stop_phrase(exc)
            print(f"rfctl: {head} after programming: "
                  f"{res.device} confirmed the new image (active CRC {res.crc:#010x}); the "
                  "read-back was not done", file=sys.stderr)
            return stop_status(exc)
        except DeviceError as exc:  # the program was confirmed; the read-back was not
            raise ProgramError(
                f"{profile.name}: the board confirmed the new image (active CRC "
                f"{res.crc:#010x}), but reading it back failed: {exc}; what it holds now "
                "is not known (a reboot after the latch may have cleared it)",
                holds={res.device: "unknown"}, cause=exc) from exc
        boots = _boot_note(dev, res.stats)
    finally:
        close_quietly(dev)
    ok = back == dev.verified_active
    check = f"read-back {'matches' if ok else 'DIFFERS'}"
    if res.writes == 0:
        print(f"\n{res.device} at {target}: image already active (board reports CRC "
              f"{res.crc:#010x}); nothing written to the active image, {res.stats.bytes_tx} "
              f"bytes sent; {check}",
              file=out)
    else:
        print(f"\nprogrammed {res.device} at {target}: {res.payload_bytes} of "
              f"{res.full_bytes} image bytes in {res.writes} "
              f"write{'' if res.writes == 1 else 's'}, {res.stats.bytes_tx} bytes sent, "
              f"{res.stats.retries} retries, {res.elapsed_s * 1e3:.2f} ms; active CRC "
              f"{res.crc:#010x}; {check}", file=out)
    if boots:
        print(boots, file=out)
    return 0 if ok else 1


def cmd_beams(args: argparse.Namespace, out: TextIO) -> int:
    """Store a quantized state in a beam slot, or select a stored beam."""
    if args.action == "store" and not args.state:
        return _usage(args, "beams store needs --state STATE.json")
    if args.action == "select" and args.crc is None:
        return _usage(args, "beams select needs --crc (printed by beams store)")
    profile = board_profile(args.board)
    dev = _open(profile, args.url)
    try:
        if args.action == "store":
            image = quantize(ArrayState.load(args.state), compile_board(profile))
            crc = store_beam(dev, args.slot, image)
            print(f"stored beam {args.slot}: CRC-32 {crc:#010x}", file=out)
        else:
            crc = select_beam(dev, args.slot, args.crc)
            print(f"selected beam {args.slot}: active CRC-32 {crc:#010x}", file=out)
    finally:
        close_quietly(dev)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    pr = sub.add_parser("program", help="quantize a state and program a board")
    pr.add_argument("--board", required=True, help="board profile (name or TOML file)")
    pr.add_argument("--state", required=True, help="STATE.json")
    pr.add_argument("--url", help="override the profile's link URL")
    pr.add_argument("--dry-run", action="store_true",
                    help="print codes, frames and byte counts; open no port")
    pr.add_argument("--allow-infeasible", action="store_true",
                    help="program a DMA design even if it fails its constraints on the "
                    "board's codes")
    pr.set_defaults(func=cmd_program)

    bm = sub.add_parser("beams", help="store a beam in a board slot, or select one")
    bm.add_argument("action", choices=["store", "select"])
    bm.add_argument("slot", type=int_at_least(0, 255))
    bm.add_argument("--board", required=True)
    bm.add_argument("--state", help="STATE.json (store)")
    bm.add_argument("--crc", type=crc32_value,
                    help="CRC-32 of the stored beam (select), e.g. 0x1234abcd")
    bm.add_argument("--url", help="override the profile's link URL")
    bm.set_defaults(func=cmd_beams, parser_=bm)
