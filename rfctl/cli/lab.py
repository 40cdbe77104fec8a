"""``rfctl lab sweep|calibrate|optimize|show``: measurement routines on a board and a
power sensor, and a summary of a recorded run.

Exit codes: 0 success; 130 only when the run was stopped by Ctrl-C (SIGINT), 143 by
SIGTERM, 129 by SIGHUP (the same path: the board restored, the records written); 1 for
any other failure, after the board was put back on the image it held before the run.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from rfctl.errors import ConfigError, OutputError, interruption, stop_phrase, stop_status
from rfctl.hal import compile_board
from rfctl.hal.discovery import load_entry_point, open_device, open_instrument
from rfctl.stopsignals import STOP_SIGNALS, handling, signal_label, stop_exception

from .argtypes import check_output_file, check_writable_folder, finite_float, int_at_least
from .common import board_profile, close_quietly, db


def _reference(text: str) -> str | int:
    """argparse type of --reference: ``optimum`` or an element index ≥ 0."""
    if text == "optimum":
        return text
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'optimum' nor an element "
                                         "index") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"element index {v} is negative")
    return v


def _dbm(w: float) -> float:
    return float(db(w)) + 30


def _gain(x: float) -> str:
    """A gain in dB with its sign, two decimals ("+0.00", never "-0.00")."""
    text = f"{x:+.2f}"
    return "+0.00" if text == "-0.00" else text


# options that belong to some actions only, with their defaults there: given to another
# action they are a usage error (exit 2), never silently ignored
_APPLIES: dict[str, tuple[tuple[str, ...], object]] = {
    "start": (("sweep",), -1.0), "stop": (("sweep",), 1.0), "points": (("sweep",), 181),
    "phi": (("sweep",), 0.0), "probe_theta": (("calibrate",), 0.0),
    "probe_phi": (("calibrate",), 0.0), "states": (("calibrate",), None),
    "passes": (("calibrate",), 3), "reference": (("calibrate",), "optimum"),
    "write_calibration": (("calibrate",), None), "method": (("optimize",), "greedy"),
    "groups": (("optimize",), 4), "verify": (("optimize",), 3),
    "budget": (("optimize", "calibrate"), None), "seed": (("optimize", "calibrate"), 0),
    "restore": (("sweep",), False),
}


# options of runs that default to None: given to `lab show` they are a usage error
_RUN_ONLY = (*_APPLIES, "url", "meter", "instrument_profile", "frequency", "span", "rbw",
             "average", "rows", "cols", "calibration")


def _applies(args: argparse.Namespace) -> str | None:
    """The first option given to an action it does not belong to (None if none); fills
    in the defaults of the action's own options."""
    args.given = {name for name in _APPLIES if getattr(args, name) is not None}
    if args.run_dir is not None:
        return (f"RUN_DIR ({args.run_dir}) applies to rfctl lab show only (not "
                f"{args.action})")
    for name, (actions, default) in _APPLIES.items():
        if getattr(args, name) is not None and args.action not in actions:
            return (f"--{name.replace('_', '-')} applies to rfctl lab "
                    f"{' and '.join(actions)} only (not {args.action})")
        if getattr(args, name) is None:
            setattr(args, name, default)
    return None


def _validate(args: argparse.Namespace) -> None:
    """Numeric arguments in range (ConfigError naming the option)."""
    if not args.meter:
        raise ConfigError(f"rfctl lab {args.action} needs --meter RESOURCE (the sensor's VISA "
                          "resource)", field="meter", reason="missing")
    # numbers are checked by their argparse types (a usage error, exit 2); output paths
    # here, before anything is measured (no missing folder is created)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is not a folder", path=str(out), reason="not a folder")
    if not out.exists() and not out.absolute().parent.is_dir():
        raise OutputError(f"--out {out}: folder {str(out.absolute().parent)!r} does not exist",
                          path=str(out), reason="missing directory")
    # the run folder is made in --out (and --out in its parent when missing): probe it
    check_writable_folder(out if out.exists() else out.absolute().parent,
                          f"--out {out}: cannot create the run folder")
    if args.action == "calibrate" and args.write_calibration is not None:
        check_output_file(args.write_calibration, "--write-calibration")


def _panel(args: argparse.Namespace, profile) -> None:
    """Fill --rows/--cols from the board's phase bank when not given (a square panel),
    and check that they match its element count."""
    from rfctl.lab.optimize import phase_bank

    n = phase_bank(profile).count
    side = math.isqrt(n)
    if args.rows is None and args.cols is None:
        if side * side != n:
            raise ConfigError(f"board {profile.name}: its phase bank has {n} elements, not a "
                              "square panel; give --rows and --cols", field="rows",
                              reason="missing")
        args.rows = args.cols = side
    elif args.rows is None or args.cols is None:
        given = args.rows if args.rows is not None else args.cols
        if n % given:
            raise ConfigError(f"--rows/--cols: {given} does not divide the {n} elements of "
                              f"board {profile.name}'s phase bank", field="rows",
                              reason="does not divide")
        args.rows, args.cols = (given, n // given) if args.rows is not None else (n // given,
                                                                                  given)
    if args.rows * args.cols != n:
        raise ConfigError(f"--rows {args.rows} × --cols {args.cols} = {args.rows * args.cols}, "
                          f"but board {profile.name}'s phase bank has {n} elements",
                          field="rows", reason="does not match the board")


# the options a refusal of the library's argument checks names (ConfigError.field)
_OPTION_OF = {"budget": "--budget", "method": "--method", "verify": "--verify",
              "settle": "--settle", "states": "--states", "passes": "--passes",
              "reference": "--reference", "rows": "--rows", "groups": "--groups"}


def _usage(args: argparse.Namespace, profile) -> str | None:
    """Argument values that the board profile refuses, checked before anything is opened
    or created: the message naming the option (a usage error, exit 2), or None. Fills
    in --rows/--cols. A refusal of the profile itself (no phase bank) is raised."""
    from rfctl.lab.calibration import check_onebit, check_rotation
    from rfctl.lab.optimize import check_optimize, phase_bank

    try:
        _panel(args, profile)
        if args.span is not None or args.rbw is not None:
            if args.sensor != "spectrum-analyzer":
                return (f"--span/--rbw apply to a spectrum analyzer, not a {args.sensor} "
                        "(--sensor)")
        n = phase_bank(profile).count
        if args.action == "optimize" and args.groups > n:
            return (f"--groups {args.groups}: above the {n} elements of board "
                    f"{profile.name}'s phase bank (a group holds at least one element)")
        if args.action == "optimize":
            check_optimize(profile, method=args.method, budget=_optimize_budget(args, profile),
                           verify=args.verify, settle_s=args.settle, groups=args.groups)
        elif args.action == "calibrate":
            ph = phase_bank(profile)
            if ph.bits == 1:
                rotation = sorted({"states", "passes", "probe_theta", "probe_phi"}
                                  & getattr(args, "given", set()))
                if rotation:
                    return (f"{', '.join('--' + o.replace('_', '-') for o in rotation)}: "
                            f"appl{'ies' if len(rotation) == 1 else 'y'} to boards of 2 or "
                            f"more bits only (bank {ph.name!r} of "
                            f"board {profile.name} is one-bit: it is calibrated by channel "
                            "estimation, set by --budget and --reference)")
                check_onebit(profile, budget=args.budget, reference=args.reference)
            elif args.reference != "optimum":
                return (f"--reference {args.reference}: applies to one-bit boards only (bank "
                        f"{ph.name!r} of board {profile.name} has {ph.bits} bits: its "
                        "calibration removes the global phase itself)")
            elif args.budget is not None:
                return (f"--budget {args.budget}: applies to the calibration of one-bit boards "
                        f"only (bank {ph.name!r} of board {profile.name} has {ph.bits} bits: "
                        "its calibration takes --passes × N × --states readings)")
            else:
                check_rotation(profile, rows=args.rows, cols=args.cols, states=args.states,
                               passes=args.passes)
    except ConfigError as exc:
        opt = _OPTION_OF.get(exc.field or "")
        if opt is None:
            raise
        text = str(exc)
        value = getattr(args, exc.field, None)
        return text if text.startswith(opt) else f"{opt} {value}: {text}"
    return None


def _optimize_budget(args: argparse.Namespace, profile) -> int:
    """--budget, default 4N."""
    from rfctl.lab.optimize import phase_bank

    return args.budget if args.budget is not None else 4 * phase_bank(profile).count


def _with_calibration(args: argparse.Namespace, profile):
    """The profile with --calibration applied to its phase bank, the table read and
    checked against the board (every element once) before anything is opened."""
    if not args.calibration:
        return profile
    ph = profile.bank("phase")
    banks = [b.model_copy(update={"calibration_file": str(Path(args.calibration).resolve())})
             if b is ph else b for b in profile.banks]
    profile = profile.model_copy(update={"banks": banks})
    try:
        compile_board(profile)
    except ConfigError as exc:
        raise ConfigError(f"--calibration {args.calibration}: {exc}", field="calibration",
                          reason=exc.reason or "unusable table") from None
    return profile


def _lab_setup(args: argparse.Namespace, profile):
    dev = open_device(profile, **({"url": args.url} if args.url else {}))
    try:
        meter = open_instrument(args.sensor, args.meter, visa_library=args.visa_library,
                                profile=args.instrument_profile,
                                strict_model=args.strict_model,
                                timeout_s=args.meter_timeout)
        settings = {"frequency": args.frequency, "average": args.average}
        if args.sensor == "spectrum-analyzer":
            settings.update(span=args.span, rbw=args.rbw)
        meter.configure(**{k: v for k, v in settings.items() if v is not None})
    except BaseException:
        close_quietly(dev)
        raise
    return dev, meter


def _interrupted_after(rec, what: str, exc: KeyboardInterrupt) -> int:
    """Ctrl-C (or SIGTERM / SIGHUP) while the records of a completed run were written:
    say what the board holds; the records may be incomplete."""
    phrase = stop_phrase(exc)
    try:
        rec.finish(f"{phrase} while writing the records; {what}")
    except (OSError, KeyboardInterrupt):
        pass
    head = "interrupted" if stop_status(exc) == 130 else phrase
    print(f"rfctl: {head} after {what}; records in {rec.path} may be incomplete",
          file=sys.stderr)
    return stop_status(exc)


def _stopped(exc: BaseException) -> int:
    """Exit status of an interrupted run: 130 for Ctrl-C, 128 + the signal's number for
    SIGTERM / SIGHUP (anywhere in the chain of causes: program() turns a Ctrl-C into a
    ProgramError that says what the board holds; also one received and deferred during
    the restore), 1 otherwise."""
    if interruption(exc) is not None:
        return stop_status(exc)
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        got = getattr(e, "restore", None)
        if getattr(got, "deferred", 0):  # received (and deferred) during the restore
            signum = getattr(got, "deferred_signal", signal.SIGINT)
            return 130 if signum == signal.SIGINT else 128 + signum
        seen.add(id(e))
        e = e.__cause__
    return 1


def _stopped_head(status: int) -> str:
    """The start of the message of a run stopped with exit ``status`` (:func:`_stopped`)."""
    if status == 1:
        return "rfctl: error: "
    if status == 130:
        return "rfctl: interrupted: "
    return f"rfctl: terminated ({signal_label(status - 128)}): "


class _RunWarnings(logging.Handler):
    """Collects the warnings logged under ``rfctl`` during a run (for its record) and,
    when logging is not configured (no -v), shows them on stderr."""

    def __init__(self, echo: bool) -> None:
        super().__init__(logging.WARNING)
        self.items: list[str] = []
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.items.append(msg)
        if self.echo:
            print(f"rfctl: warning: {msg}", file=sys.stderr, flush=True)


class _Interrupts:
    """The stop-signal policy of a lab run (main thread only), for Ctrl-C, SIGTERM and
    SIGHUP alike (counted together): the first stops the run (KeyboardInterrupt, or
    :class:`~rfctl.errors.Terminated` for SIGTERM / SIGHUP; the routine restores the
    board); a second one is recorded and ignored, so that it cannot cut the restore or
    the records short; a third one aborts (raises again). During the restore itself the
    library takes over and defers them the same way
    (:func:`rfctl.lab.restore.deferred_sigint`)."""

    def __init__(self) -> None:
        self.count = 0
        self._handling = handling(self._handler, STOP_SIGNALS)

    def __enter__(self) -> _Interrupts:
        self._handling.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._handling.__exit__(None, None, None)

    def _handler(self, signum, frame) -> None:
        self.count += 1
        if self.count == 2:
            # os.write, not print: the handler may run while the main thread is inside a
            # write to sys.stderr (a buffered stream is not reentrant)
            label = signal_label(signum)
            again = ("press Ctrl-C once more" if signum == signal.SIGINT else
                     "one more stop signal")
            try:
                os.write(2, f"rfctl: {label} again: the board is being restored and the "
                         f"records written; {again} to abort\n".encode())
            except OSError:
                pass
            return
        raise stop_exception(signum)


def cmd_lab(args: argparse.Namespace, out: TextIO) -> int:
    """Run a sweep, a calibration or an optimisation and write the run record, or
    summarise a recorded run (``show``).

    Everything that can be judged from the arguments and the board profile (numbers
    against the board and the method, the calibration table) is checked before the run
    folder is created and before the board and the sensor are opened; a run refused or
    failed after that but before its first reading was recorded removes its folder
    again (a Ctrl-C keeps it: the record says what the board holds)."""
    if args.action == "show":
        if args.run_dir is None:
            print("rfctl lab: error: rfctl lab show needs RUN_DIR (a run folder, e.g. "
                  "runs/optimize-20260101T120000)", file=sys.stderr)
            return 2
        given = sorted(f"--{k.replace('_', '-')}" for k in _RUN_ONLY
                       if getattr(args, k, None) is not None)
        if given:
            print(f"rfctl lab: error: {', '.join(given)}: apply to runs (sweep, calibrate, "
                  "optimize), not show", file=sys.stderr)
            return 2
        return _show(args, out)
    wrong = _applies(args)
    if wrong:
        print(f"rfctl lab: error: {wrong}", file=sys.stderr)
        return 2
    _validate(args)
    profile = board_profile(args.board)
    url = args.url or profile.link.url
    if url.startswith("sim://"):
        raise ConfigError(f"board {profile.name}: no --url, and the profile's link is {url} "
                          "(an in-process simulated board, which the meter cannot see); give "
                          "the board's --url (e.g. socket://127.0.0.1:47300 for rfctl "
                          "sim-bench)", field="url", reason="simulated board with a real meter")
    wrong = _usage(args, profile)
    if wrong:
        print(f"rfctl lab: error: {wrong}", file=sys.stderr)
        return 2
    if args.instrument_profile is not None:  # read and checked before the board opens
        load = load_entry_point("rfctl.instrument_profiles", "load")
        try:
            load(args.instrument_profile)
        except ConfigError as exc:
            raise ConfigError(f"--instrument-profile {args.instrument_profile}: {exc}",
                              field="instrument_profile", reason=exc.reason) from None
    profile = _with_calibration(args, profile)
    from rfctl.lab import RunRecord
    from rfctl.sweep import ProgressBar

    try:  # the run folder before the board: a folder that cannot be made stops us first
        rec = RunRecord(args.out, args.action)
    except OSError as exc:
        raise OutputError(f"--out {args.out}: cannot create the run folder: "
                          f"{exc.strerror or exc}", path=str(args.out),
                          reason=str(exc.strerror or exc)) from None
    warned = _RunWarnings(echo=not logging.getLogger().handlers)
    rec.warnings = warned.items
    top = logging.getLogger("rfctl")
    top.addHandler(warned)
    try:
        return _run_action(args, out, profile, rec, ProgressBar(sys.stderr, label=args.action))
    finally:
        top.removeHandler(warned)


def _run_action(args, out, profile, rec, bar) -> int:
    try:
        dev, meter = _lab_setup(args, profile)
    except BaseException:
        rec.discard()
        raise
    params = {k: v for k, v in vars(args).items() if k != "func"}
    with _Interrupts():
        try:
            rec.snapshot(profile=profile, device=dev, instruments=[meter], params=params,
                         link_url=args.url or profile.link.url)
            if getattr(dev, "verified_active", b"") is None and rec.snap.get("image_before"):
                # the image the board just sent: what it holds, confirmed in this session
                dev.verified_active = bytes.fromhex(rec.snap["image_before"])
            return {"sweep": _sweep, "calibrate": _calibrate, "optimize": _optimize}[
                args.action](args, out, profile, dev, meter, bar, rec)
        except KeyboardInterrupt as exc:
            # not through a routine's own handling (which restores the board and says
            # so): before its first reading, or a further Ctrl-C that aborted the restore
            holds = _holds(dev, rec)
            phrase = stop_phrase(exc)
            _finish_quietly(rec, f"{phrase}; {holds}")
            head = "interrupted" if stop_status(exc) == 130 else phrase
            print(f"rfctl: {head}; {holds}; records in {rec.path}", file=sys.stderr)
            return stop_status(exc)
        except BaseException as exc:
            if not rec.discard():  # refused before the first reading: no folder left
                _finish_quietly(rec, f"failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            close_quietly(dev, meter)


def _holds(dev, rec) -> str:
    """What the board holds after a Ctrl-C that no routine handled, from the host's
    copy of the image the board last confirmed (no question is sent to the board)."""
    before = (getattr(rec, "snap", None) or {}).get("image_before")
    confirmed = getattr(dev, "verified_active", None)
    if before is None or confirmed is None:
        return "the board's image was not confirmed after the interruption"
    if bytes(confirmed).hex() == before:
        return "the board holds its image from before the run (as it last confirmed)"
    return "the board was NOT restored: it holds the run's last image (as it last confirmed)"


def _finish_quietly(rec, outcome: str) -> None:
    try:
        rec.finish(outcome)
    except (OSError, KeyboardInterrupt):
        pass


def _stopped_records(rec, exc, rows: list[dict], extra: dict, what: str) -> int:
    """The records of a run a routine stopped (it restored the board and its message
    says what the board holds): data, outcome and plot, then the exit status. A Ctrl-C
    while they are written cuts only the records short, and the message still says
    what the board holds.

    The message starts ``rfctl: error:`` for a failure (exit 1), ``rfctl:
    interrupted:`` for a Ctrl-C (exit 130) and ``rfctl: terminated (SIGTERM):`` for
    SIGTERM (exit 143; SIGHUP: 129); it names only the files actually written
    (``what``: the data kept, e.g. ``"partial data"``; a plot only when one was drawn)."""
    from rfctl.lab import plot_run

    status = _stopped(exc)
    head = _stopped_head(status)
    try:
        rec.data(rows, {**extra, "interrupted": str(exc)})
        rec.finish(f"stopped: {exc}")
        plots = plot_run(rec.path)
    except KeyboardInterrupt as again:
        print(f"{head}{exc}; interrupted again while the records were written: they may "
              f"be incomplete in {rec.path}", file=sys.stderr)
        return status if status != 1 else stop_status(again)
    if not rows:
        kept = what.rsplit(";", 1)[0] + "; " if ";" in what else ""
        where = f"{kept}no readings were taken (no plot); the record is"
    else:
        where = f"{what} and plot" if plots else f"{what} (no plot)"
    print(f"{head}{exc}; {where} in {rec.path}", file=sys.stderr)
    return status


def _sweep(args, out, profile, dev, meter, bar, rec) -> int:
    from rfctl.lab import SweepInterruptedError, beam_sweep, plot_run

    th = np.linspace(args.start, args.stop, args.points)
    angles = [(float(t), args.phi) for t in th]
    try:
        data = beam_sweep(dev, compile_board(profile), meter, angles, rows=args.rows,
                          cols=args.cols, settle_s=args.settle, progress=bar,
                          restore=args.restore)
    except SweepInterruptedError as exc:
        return _stopped_records(rec, exc, exc.data.rows, {}, "partial data")
    if data.restore is None:
        ends = (f"the board holds its last beam (θ = {th[-1]:+.3f}, φ = {args.phi:+.3f}; "
                "--restore puts it back on its image from before the sweep)")
    else:
        ends = data.restore.describe()
    try:
        rec.data(data.rows, {"board_after": ends})
        rec.finish("completed" if data.restore is None or data.restore.restored else
                   f"completed; {ends}")
        plot_run(rec.path)
    except KeyboardInterrupt as exc:
        return _interrupted_after(rec, f"the sweep completed: {ends}", exc)
    k = int(np.argmax(data.column("power_w")))
    print(f"{args.points}-point sweep in {data.elapsed_s:.2f} s "
          f"({data.elapsed_s / args.points * 1e3:.2f} ms per point); peak "
          f"{_dbm(data.rows[k]['power_w']):.2f} dBm at θ = {data.rows[k]['theta']:.3f}; "
          f"{ends}; records in {rec.path}", file=out)
    if data.restore is not None and not data.restore.restored:
        print(f"rfctl: error: the sweep completed, but {ends}", file=sys.stderr)
        return 1
    return 0


def _calibrate(args, out, profile, dev, meter, bar, rec) -> int:
    from rfctl.lab import (
        CalibrationInterruptedError,
        onebit_calibration,
        phase_calibration,
        plot_run,
        write_calibration,
    )
    from rfctl.lab.optimize import phase_bank

    ph = phase_bank(profile)  # --reference and --budget were checked against it
    try:
        if ph.bits == 1:
            ref = args.reference
            cal = onebit_calibration(dev, profile, meter, rng=np.random.default_rng(args.seed),
                                     budget=args.budget, reference=ref, progress=bar,
                                     settle_s=args.settle)
        else:
            cal = phase_calibration(dev, profile, meter, rows=args.rows, cols=args.cols,
                                    probe=(args.probe_theta, args.probe_phi),
                                    states=args.states, passes=args.passes, progress=bar,
                                    settle_s=args.settle)
    except CalibrationInterruptedError as exc:
        return _stopped_records(rec, exc, exc.readings, {},
                                "no table written; readings")
    # the calibration is complete and the board holds the calibrated beam: from here a
    # Ctrl-C only cuts the records short, and says so
    target = args.write_calibration or rec.path / "calibration.csv"
    try:
        table = [{"element": k, "phase_offset_rad": float(v),
                  "phase_offset_deg": float(np.degrees(v)),
                  "amplitude": float(cal.amplitudes[k]) if cal.amplitudes is not None
                  else None} for k, v in enumerate(cal.offsets)]
        extra = {"offsets": table, "measurements": cal.measurements,
                 "power_before_w": cal.power_before_w, "power_after_w": cal.power_after_w,
                 "reference": cal.reference, "passes": cal.passes}
        rec.data(cal.readings, extra)  # kept even if the table cannot be written
        try:
            path = write_calibration(target, cal.offsets)
        except OSError as exc:
            rec.finish(f"completed; the table could not be written to {target}: "
                       f"{exc.strerror or exc}")
            plot_run(rec.path)
            raise OutputError(
                f"--write-calibration {target}: cannot write: {exc.strerror or exc}; the "
                f"calibration completed and the board holds the calibrated beam; readings "
                f"and offsets are in {rec.path}", path=str(target),
                reason=str(exc.strerror or exc)) from None
        rec.data(cal.readings, {**extra, "table": path.read_text(), "table_file": str(path)})
        rec.finish("completed")
        plot_run(rec.path)
    except KeyboardInterrupt as exc:
        return _interrupted_after(
            rec, f"the calibration completed: the board holds the calibrated beam; table "
            f"{target} {'written' if Path(target).exists() else 'NOT written'}", exc)
    gain = _dbm(cal.power_after_w) - _dbm(cal.power_before_w)
    print(f"calibrated {len(cal.offsets)} elements with {cal.measurements} measurements "
          f"(global phase: {cal.reference}); beam at the probe {_dbm(cal.power_before_w):.2f}"
          f" → {_dbm(cal.power_after_w):.2f} dBm ({_gain(gain)} dB); table written to {path}; "
          f"records in {rec.path}", file=out)
    return 0


def _optimize(args, out, profile, dev, meter, bar, rec) -> int:
    from rfctl.lab import OptimizeInterruptedError, optimize_board, plot_run

    budget = _optimize_budget(args, profile)
    try:
        res = optimize_board(dev, profile, meter, method=args.method, budget=budget,
                             rng=np.random.default_rng(args.seed), verify=args.verify,
                             groups=args.groups, settle_s=args.settle, progress=bar)
    except OptimizeInterruptedError as exc:
        return _stopped_records(rec, exc, exc.rows, {}, "partial data")
    try:
        rec.data(res.rows, {"codes": res.codes, "verified_w": res.verified_w,
                            "initial_w": res.initial_w, "method": res.blind.method,
                            "stop": res.blind.stop, "estimate": res.blind.estimate,
                            "measurements": res.blind.measurements,
                            "kept_start": res.kept_start, "start_w": res.start_w,
                            "unchanged": res.unchanged,
                            "elapsed_s": res.elapsed_s})
        rec.finish("completed", image_after=res.image_after)
        plot_run(rec.path)
    except KeyboardInterrupt as exc:
        return _interrupted_after(rec, "the optimisation completed: the board holds the "
                                  "configuration it reported", exc)
    head = (f"optimize ({args.method}): {res.blind.measurements} measurements in "
            f"{res.elapsed_s:.2f} s (stop: {res.blind.stop}); ")
    if res.kept_start:
        # the result re-measured below the start: no gain to report (the start's first
        # and re-measured readings differ by noise only)
        print(head + f"the result measured below the starting configuration, so the board "
              f"is left on the start: {_dbm(float(np.mean(res.verified_w))):.2f} dBm "
              f"re-measured ({args.verify} re-measurement{'' if args.verify == 1 else 's'}; "
              f"{_dbm(res.initial_w):.2f} dBm "
              f"at its first reading); no improvement found; records in {rec.path}",
              file=out)
        return 0
    if res.unchanged:
        print(head + "no configuration better than the start was found, so the board is on "
              f"the start: {_dbm(float(np.mean(res.verified_w))):.2f} dBm re-measured "
              f"({args.verify} re-measurement{'' if args.verify == 1 else 's'}; "
              f"{_dbm(res.initial_w):.2f} dBm at its first reading); records in {rec.path}",
              file=out)
        return 0
    print(head + f"{_dbm(res.initial_w):.2f} → {_dbm(res.power_w):.2f} dBm verified "
          f"({_gain(_dbm(res.power_w) - _dbm(res.initial_w))} dB, {args.verify} "
          f"re-measurement{'' if args.verify == 1 else 's'});"
          + (f" the start re-measured {_dbm(float(np.mean(res.start_w))):.2f} dBm;"
             if res.start_w else "")
          + f" board left on it; records in {rec.path}", file=out)
    return 0


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from rfctl.lab import load_run

    run = load_run(args.run_dir)
    try:
        return _summary(args.run_dir, run["snapshot"], run["data"], out)
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{args.run_dir}: the run record has a field of an unexpected type "
                          f"or value ({type(exc).__name__}: {exc}); was it edited?",
                          field="run_dir", reason="malformed record") from None


def _summary(run_dir: Path, s: dict, d: dict, out: TextIO) -> int:
    """Print a run's summary and redraw its plots."""
    from rfctl.lab import plot_run

    args = argparse.Namespace(run_dir=run_dir)
    rows = d.get("rows", [])
    ident = s.get("board_ident") or {}
    print(f"run {args.run_dir}: {s.get('kind')} — outcome: {s.get('outcome', '?')}", file=out)
    print(f"  time     {s.get('start_time', s.get('time', '?'))} → {s.get('end_time', '?')}",
          file=out)
    print(f"  board    {(s.get('board_profile') or {}).get('name', '?')} model "
          f"{ident.get('model', '?')} serial {ident.get('serial', '?')} at "
          f"{s.get('link_url', '?')}", file=out)
    for i in s.get("instruments", []):
        print(f"  sensor   {i.get('name')} — {i.get('idn')} (profile {i.get('profile', '?')}; "
              f"settings {i.get('settings', {})})", file=out)
    v = s.get("versions", {})
    print(f"  versions rfctl {v.get('rfctl')}, git {v.get('git_commit', 'n/a')}", file=out)
    if s.get("link_stats"):
        print(f"  link     {s['link_stats']}", file=out)
    cal = s.get("calibration") or {}
    for bank, c in cal.items():
        print(f"  calibration applied to bank {bank}: {c.get('file', '?')}"
              + (f" ({c['error']})" if c.get("error") else ""), file=out)
    if s.get("kind") == "sweep" and not cal:
        print("  calibration none applied", file=out)
    if rows and "power_w" in rows[0]:
        p = np.array([r["power_w"] for r in rows], float)
        print(f"  readings {len(rows)}; max {_dbm(p.max()):.2f} dBm, last {_dbm(p[-1]):.2f} dBm",
              file=out)
        if "theta" in rows[0]:
            k = int(np.argmax(p))
            print(f"  peak     {_dbm(p[k]):.2f} dBm at θ = {rows[k]['theta']:.3f}, "
                  f"φ = {rows[k].get('phi', 0.0):.3f}", file=out)
    elif rows:
        print(f"  rows     {len(rows)}", file=out)
    if d.get("board_after"):
        print(f"  end      {d['board_after']}", file=out)
    if "power_before_w" in d and "power_after_w" in d:
        gain = _dbm(d["power_after_w"]) - _dbm(d["power_before_w"])
        print(f"  beam     at the probe {_dbm(d['power_before_w']):.2f} → "
              f"{_dbm(d['power_after_w']):.2f} dBm ({_gain(gain)} dB) after calibrating "
              f"{len(d.get('offsets') or [])} elements with {d.get('measurements', '?')} "
              f"measurements (global phase: {d.get('reference', '?')})", file=out)
        print(f"  table    {d.get('table_file') or 'NOT written'}", file=out)
    if "verified_w" in d:
        n_ver = len(d["verified_w"])
        how = (f"method {d.get('method', '?')}, {d.get('measurements', len(rows))} "
               f"readings, stop: {d.get('stop', '?')}")
        if d.get("unchanged"):
            print(f"  result   nothing better than the start was found, so the board was "
                  f"left on the start: {_dbm(float(np.mean(d['verified_w']))):.2f} dBm "
                  f"re-measured ({n_ver} readings; {_dbm(d['initial_w']):.2f} dBm at its "
                  f"first) ({how})", file=out)
        elif d.get("kept_start"):
            print(f"  result   measured below the start, so the board was left on the "
                  f"start: {_dbm(float(np.mean(d['verified_w']))):.2f} dBm re-measured "
                  f"({n_ver} readings; {_dbm(d['initial_w']):.2f} dBm at its first); no "
                  f"improvement ({how})", file=out)
        else:
            gain = _dbm(float(np.mean(d["verified_w"]))) - _dbm(d["initial_w"])
            print(f"  result   {_dbm(d['initial_w']):.2f} → "
                  f"{_dbm(float(np.mean(d['verified_w']))):.2f} dBm verified ({_gain(gain)} dB, "
                  f"{n_ver} re-measurement{'' if n_ver == 1 else 's'}; {how}); the board "
                  "was left on it", file=out)
    for path in plot_run(args.run_dir):
        print(f"  plot     {path}", file=out)
    return 0


class _ActionHelp(argparse.Action):
    """``-h``/``--help`` of ``rfctl lab``: after an action (``rfctl lab sweep --help``)
    only the options of that action and those of every run; before one, everything,
    grouped by the action each option belongs to."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        action = getattr(namespace, "action", None)
        if action in _ACTIONS:
            _action_parser(parser, action).print_help()
        else:
            parser.print_help()
        parser.exit()


_ACTIONS = ("sweep", "calibrate", "optimize", "show")
_DESCRIPTION = {
    "sweep": "Steer the beam over θ from --start to --stop (at --phi) and measure the power "
             "at each point. The board ends on the last point's beam, or with --restore on "
             "the image it held before the sweep (verified).",
    "calibrate": "Calibrate the phase bank from power readings and write a calibration "
                 "table (one-bit banks: channel estimation, --budget and --reference; "
                 "banks of 2 or more bits: phase rotation, --states, --passes, --probe-*).",
    "optimize": "Configure the board from power readings alone within --budget readings; "
                "the board is left on the best configuration found (re-measured).",
    "show": "Summarise a recorded run (RUN_DIR) and redraw its plots.",
}


# the argument groups of action-specific options, per lab parser (by id)
_OWN_GROUPS: dict[int, tuple] = {}


def _action_parser(lab: argparse.ArgumentParser, action: str) -> argparse.ArgumentParser:
    """A parser that only displays the help of ``rfctl lab ACTION``: that action's
    options and those of every run (the options of other actions left out)."""
    p = argparse.ArgumentParser(prog=f"{lab.prog} {action}", add_help=False,
                                description=_DESCRIPTION[action])
    own = None
    for group in lab._action_groups:
        kept = []
        for a in group._group_actions:
            if a.dest == "action":
                continue
            if action == "show":
                if a.dest == "run_dir" or isinstance(a, _ActionHelp):
                    kept.append(a)
            elif a.dest == "run_dir":
                continue
            elif a.dest not in _APPLIES or action in _APPLIES[a.dest][0]:
                kept.append(a)
        if kept:
            if group in _OWN_GROUPS.get(id(lab), ()):  # an action's own options: one group
                g = own = own or p.add_argument_group(f"options of rfctl lab {action} only")
            else:
                g = p.add_argument_group("options" if action == "show" and
                                         group is lab._optionals else group.title,
                                         group.description)
            for a in kept:
                g._add_action(a)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the top-level parser."""
    unit = finite_float(-1.0, 1.0)  # θ and φ are direction sines, in [−1, 1]
    hz = finite_float(0.0, 1e12)
    seconds = finite_float(0.0, 3600.0)
    lab = sub.add_parser("lab", help="lab routines: beam sweep, phase calibration, "
                         "measurement-driven optimisation, run summaries", add_help=False,
                         description="Lab routines on a board and a power sensor: "
                         "'sweep', 'calibrate', 'optimize'; 'show RUN_DIR' summarises a "
                         "recorded run. 'rfctl lab ACTION --help' lists only that action's "
                         "options. An option of one action given to another is a usage "
                         "error (exit 2).")
    lab.add_argument("-h", "--help", action=_ActionHelp,
                     help="show this help (after an action: only that action's options)")
    lab.add_argument("action", choices=list(_ACTIONS))
    lab.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                     help="show: the run folder (show only)")
    lab.add_argument("--board", default="sim-lab-8x8",
                     help="board profile: a built-in name (rfctl configs) or a TOML file "
                     "(default: %(default)s, the simulated 8 × 8 bench; osris-16x16 for an "
                     "OpenSourceRIS one-bit board)")
    lab.add_argument("--url", help="board link URL (e.g. socket://127.0.0.1:PORT)")
    lab.add_argument("--meter", help="VISA resource of the power sensor")
    lab.add_argument("--sensor", default="power-meter",
                     choices=["power-meter", "spectrum-analyzer", "vna"])
    lab.add_argument("--visa-library", default="@py", help="'@py', 'file.yaml@sim', …")
    lab.add_argument("--instrument-profile", help="instrument profile (name or TOML file) "
                     "to use whatever *IDN? says")
    lab.add_argument("--strict-model", action="store_true",
                     help="refuse an instrument no profile claims (default: generic SCPI "
                     "dialect with a warning)")
    lab.add_argument("--meter-timeout", type=finite_float(1e-3, 3600.0), default=None,
                     metavar="S", help="sensor read timeout, s (default: the instrument "
                     "profile's timeout_s, else 2; a reading waits for a complete sweep)")
    lab.add_argument("--frequency", type=hz, help="sensor frequency (centre / CW), Hz")
    lab.add_argument("--span", type=hz, help="spectrum analyzer span, Hz")
    lab.add_argument("--rbw", type=hz, help="spectrum analyzer resolution bandwidth, Hz")
    lab.add_argument("--average", type=int_at_least(1, 1_000_000), help="sensor averaging count")
    lab.add_argument("--rows", type=int_at_least(1, 256), default=None,
                     help="panel rows (default: the phase bank's element count, if a "
                     "square: 8 for sim-lab-8x8, 16 for osris-16x16)")
    lab.add_argument("--cols", type=int_at_least(1, 256), default=None,
                     help="panel columns (default: as --rows)")
    lab.add_argument("--calibration", help="apply this calibration table to the phase bank")
    lab.add_argument("--out", type=Path, default=Path("runs"),
                     help="records folder: each run writes a folder <action>-<time> in it "
                     "(default: %(default)s)")
    lab.add_argument("--settle", type=seconds, default=0.0, help="settle time per reading, s")
    sweep = lab.add_argument_group("sweep options (rfctl lab sweep only)")
    calibrate = lab.add_argument_group("calibrate options (rfctl lab calibrate only)")
    optimize = lab.add_argument_group("optimize options (rfctl lab optimize only; --budget "
                                      "and --seed also calibrate)")
    _OWN_GROUPS[id(lab)] = (sweep, calibrate, optimize)
    lab._optionals.title = "options of every run (sweep, calibrate, optimize)"
    sweep.add_argument("--start", type=unit, default=None, help="first θ (default -1)")
    sweep.add_argument("--stop", type=unit, default=None, help="last θ (default 1)")
    sweep.add_argument("--points", type=int_at_least(2, 1_000_000), default=None,
                       help="number of points (default 181)")
    sweep.add_argument("--phi", type=unit, default=None, help="φ of every beam (default 0)")
    sweep.add_argument("--restore", action="store_const", const=True, default=None,
                       help="after a completed sweep, put the board back on the image it "
                       "held before the sweep (verified by CRC); default: the board ends "
                       "on the last point's beam")
    calibrate.add_argument("--probe-theta", type=unit, default=None,
                           help="probe θ (default 0; boards of 2 or more bits)")
    calibrate.add_argument("--probe-phi", type=unit, default=None,
                           help="probe φ (default 0; boards of 2 or more bits)")
    calibrate.add_argument("--states", type=int_at_least(2, 4096), default=None,
                           help="phase states (default min(8, 2^bits); boards of 2 or more "
                           "bits)")
    calibrate.add_argument("--passes", type=int_at_least(1, 1000), default=None,
                           help="passes (default 3; boards of 2 or more bits)")
    calibrate.add_argument("--reference", default=None, type=_reference,
                           help="one-bit boards: global phase reference, 'optimum' (default) "
                           "or an element index")
    calibrate.add_argument("--write-calibration", type=Path, default=None,
                           help="write the table here too (default: calibration.csv in the "
                           "run folder; an existing file is replaced)")
    optimize.add_argument("--method", default=None, choices=["greedy", "csm", "estimate"],
                          help="coordinate flips (greedy, default), conditional sample mean, "
                          "or channel estimation + exact one-bit optimum")
    optimize.add_argument("--budget", type=int_at_least(1, 10_000_000), default=None,
                          help="readings: optimize (default 4N), one-bit calibrate (default "
                          "8N; 4N left some draws several dB short)")
    optimize.add_argument("--groups", type=int_at_least(1, 4096), default=None,
                          help="csm: element groups (default 4; at most the element count)")
    optimize.add_argument("--verify", type=int_at_least(1, 1000), default=None,
                          help="re-measurements of the final configuration (default 3)")
    optimize.add_argument("--seed", type=int_at_least(0), default=None,
                          help="random patterns' seed (default 0; also calibrate)")
    lab.set_defaults(func=cmd_lab)
