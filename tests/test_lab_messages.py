"""``rfctl lab`` messages, usage errors, help and the board's end state (issue 13, a new
user's third trial, findings 9, 11–17 and 20): every test runs the real CLI against a
simulated bench (in-process SCPI servers and board, or ``rfctl sim-bench`` in its own
process)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rfctl.cli import main
from rfctl.config import load_config
from rfctl.errors import ProgramError

OSRIS = load_config("osris-16x16")
LAB = load_config("sim-lab-8x8")


@pytest.fixture
def onebit():
    """The simulated one-bit 16 × 16 bench (OpenSourceRIS firmware, SCPI instruments)."""
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", OSRIS, rows=16, cols=16, seed=151, noise=1.0)
    yield lab
    lab.stop()


def _args(lab, out: Path) -> list[str]:
    return ["--board", "osris-16x16", "--url", lab.url, "--sensor", "spectrum-analyzer",
            "--meter", lab.resources["spectrum-analyzer"], "--out", str(out)]


def test_a_run_stopped_before_any_reading_promises_no_plot(onebit, tmp_path, capsys) -> None:
    """Finding 9: a sweep whose analyzer stops answering before the first reading exits
    1 with an ``rfctl: error:`` line that says no readings were taken and names no plot
    (none is drawn); a partial sweep's line names its plot, which exists."""
    sim = onebit.bench.instruments["spectrum-analyzer"]
    real = sim._one
    fail_at = {"n": 0, "inits": 0}

    def failing(cmd: str) -> str | None:  # silent from the (n+1)-th reading's line on
        if cmd.upper() == "INIT":
            fail_at["inits"] += 1
            if fail_at["inits"] > fail_at["n"]:
                sim.silent = True
        return None if sim.silent else real(cmd)

    sim._one = failing
    capsys.readouterr()
    assert main(["lab", "sweep", *_args(onebit, tmp_path), "--points", "5"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("rfctl: error: sweep stopped after 0 of 5 points: "), err
    assert "no readings were taken (no plot)" in err and "plot in" not in err, err
    (run,) = tmp_path.glob("sweep-*")
    assert not list(run.glob("*.png"))
    sim.silent = False
    fail_at.update(n=3, inits=0)
    out = tmp_path / "partial"
    out.mkdir()
    assert main(["lab", "sweep", *_args(onebit, out), "--points", "9"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("rfctl: error: sweep stopped after 3 of 9 points: "), err
    assert "KeyboardInterrupt" not in err and "))" not in err, err
    (run,) = out.glob("sweep-*")
    assert f"partial data and plot in {run}" in err and (run / "sweep.png").exists()


@pytest.mark.parametrize(("argv", "starts"), [
    (["show"], "rfctl lab: error: rfctl lab show needs RUN_DIR"),
    (["sweep", "runs/sweep-1"], "rfctl lab: error: RUN_DIR (runs/sweep-1) applies to rfctl "
     "lab show only (not sweep)"),
    (["optimize", "--method", "csm", "--groups", "257", "--board", "osris-16x16"],
     "rfctl lab: error: --groups 257: above the 256 elements of board osris-16x16's "
     "phase bank"),
    (["optimize", "--groups", "65"], "rfctl lab: error: --groups 65: above the 64 elements"),
    (["show", "runs/sweep-1", "--method", "csm"], "rfctl lab: error: --meter, --method, "
     "--url: apply to runs (sweep, calibrate, optimize), not show"),
])
def test_more_usage_errors_exit_2_naming_the_option(argv, starts, tmp_path, capsys) -> None:
    """Finding 12: lab show without RUN_DIR, RUN_DIR given to a run, --groups above the
    element count, options of runs given to show: usage errors (exit 2), before
    anything is opened or created."""
    out = tmp_path / "runs"
    capsys.readouterr()
    assert main(["lab", *argv, "--meter", "TCPIP::127.0.0.1::9::SOCKET", "--url",
                 "socket://127.0.0.1:9", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(starts) and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_board_of_another_kind_is_named_and_leaves_no_out_folder(onebit, tmp_path,
                                                                   capsys) -> None:
    """Findings 13 and 14: a profile whose driver speaks another protocol than the board
    at --url says that the board may be of another kind, naming the profile's driver;
    the refused run leaves neither a run folder nor the --out folder it created."""
    from rfctl.hal.discovery import open_sim

    other = open_sim("lab-bench", LAB, rows=8, cols=8, seed=3, noise=0.05)
    try:
        for profile, url, meter, driver in [
            ("sim-lab-8x8", onebit.url, onebit.resources["power-meter"], "'rfctl-serial'"),
            ("osris-16x16", other.url, other.resources["power-meter"], "'osris'"),
        ]:
            out = tmp_path / f"new-{profile}"
            capsys.readouterr()
            assert main(["lab", "optimize", "--board", profile, "--url", url, "--meter",
                         meter, "--out", str(out)]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"rfctl: error: {profile}: "), err
            assert "may be of another kind or speak another protocol" in err, err
            assert f"profile {profile}'s driver {driver}" in err, err
            assert not out.exists()  # refused: no --out folder left behind
    finally:
        other.stop()


def test_sweep_says_where_the_board_ends_and_restore_puts_it_back(onebit, tmp_path,
                                                                  capsys) -> None:
    """Finding 11: the sweep's line says the board holds the last beam; with --restore
    the board is back on the image it held before the sweep (the firmware's own
    pattern), and says so; lab show repeats where the board ended."""
    from rfctl.lab.restore import RestoreOutcome

    fw = onebit.server.firmware
    before = bytes(fw.pattern)
    capsys.readouterr()
    assert main(["lab", "sweep", *_args(onebit, tmp_path / "a"), "--points", "5",
                 "--restore"]) == 0
    out = capsys.readouterr().out
    assert "board restored to its previous image (verified by CRC)" in out, out
    assert bytes(fw.pattern) == before
    assert main(["lab", "sweep", *_args(onebit, tmp_path / "b"), "--points", "5"]) == 0
    out = capsys.readouterr().out
    assert "the board holds its last beam (θ = +1.000, φ = +0.000; --restore" in out, out
    assert bytes(fw.pattern) != before
    (run,) = (tmp_path / "b").glob("sweep-*")
    # a restore that fails after a completed sweep: exit 1, said on stderr
    import rfctl.lab.sweeps

    real = rfctl.lab.sweeps.restore_image
    rfctl.lab.sweeps.restore_image = lambda dev, img: RestoreOutcome(False, "unknown",
                                                                      "link down")
    try:
        assert main(["lab", "sweep", *_args(onebit, tmp_path / "c"), "--points", "3",
                     "--restore"]) == 1
    finally:
        rfctl.lab.sweeps.restore_image = real
    err = capsys.readouterr().err
    assert "rfctl: error: the sweep completed, but board NOT restored: the restore " \
           "failed, so its image is unknown (link down)" in err, err
    assert main(["lab", "show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "  end      the board holds its last beam" in out
    assert "  calibration none applied" in out and "  peak     " in out


def test_beam_sweep_restore_after_the_loop(onebit) -> None:
    """The library option: restore=True puts the board back after a completed sweep and
    reports it in SweepData.restore; the default leaves the last beam (restore None)."""
    from rfctl.hal import compile_board
    from rfctl.hal.discovery import open_device, open_instrument
    from rfctl.lab import beam_sweep

    dev = open_device(OSRIS, url=onebit.url)
    meter = open_instrument("power-meter", onebit.resources["power-meter"],
                            visa_library="@py")
    try:
        before = dev.read_active()
        angles = [(-0.5, 0.0), (0.5, 0.0)]
        data = beam_sweep(dev, compile_board(OSRIS), meter, angles, rows=16, cols=16,
                          restore=True)
        assert data.restore is not None and data.restore.restored
        assert dev.read_active() == before and len(data.rows) == 2
        data = beam_sweep(dev, compile_board(OSRIS), meter, angles, rows=16, cols=16)
        assert data.restore is None and dev.read_active() != before
    finally:
        dev.close()
        meter.close()


def test_show_summarises_a_calibrated_sweep(onebit, tmp_path, capsys) -> None:
    """Finding 15: lab show on a sweep run with --calibration names the table applied
    and the peak (a calibration run's summary: tests/test_lab_onebit.py)."""
    from rfctl.lab import write_calibration

    table = write_calibration(tmp_path / "cal.csv",
                              np.random.default_rng(3).uniform(-np.pi, np.pi, 256))
    assert main(["lab", "sweep", *_args(onebit, tmp_path), "--points", "7",
                 "--calibration", str(table)]) == 0
    (run,) = tmp_path.glob("sweep-*")
    peak = max(json.loads((run / "data.json").read_text())["rows"],
               key=lambda r: r["power_w"])
    capsys.readouterr()
    assert main(["lab", "show", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"  calibration applied to bank pattern: {table.resolve()}" in out, out
    dbm = 10 * math.log10(peak["power_w"]) + 30
    assert f"  peak     {dbm:.2f} dBm at θ = {peak['theta']:.3f}" in out, out


def test_each_action_has_its_own_help(capsys) -> None:
    """Finding 16: `rfctl lab ACTION --help` lists that action's options and those of
    every run, not the other actions'; `rfctl lab --help` groups them by action;
    --board has a help text with its default."""
    own = {"sweep": ["--points", "--restore", "--phi"],
           "calibrate": ["--write-calibration", "--reference", "--states", "--budget"],
           "optimize": ["--method", "--groups", "--verify", "--budget"]}
    for action, opts in own.items():
        capsys.readouterr()
        assert main(["lab", action, "--help"]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: rfctl lab {action} "), text
        for o in opts:
            assert o in text, (action, o)
        for theirs in own.values():
            for o in set(theirs) - set(opts):
                assert o not in text, (action, o)
        assert "--board BOARD" in text and "default: sim-lab-8x8" in text
        assert text.count(f"options of rfctl lab {action} only:") == 1, text
        assert "RUN_DIR" not in text
    assert main(["lab", "show", "--help"]) == 0
    text = capsys.readouterr().out
    assert "RUN_DIR" in text and "--meter" not in text
    assert main(["lab", "--help"]) == 0
    text = capsys.readouterr().out
    for title in ("sweep options (rfctl lab sweep only)",
                  "calibrate options (rfctl lab calibrate only)", "optimize options"):
        assert title in text


def test_sim_bench_prints_the_one_bit_optimum_as_the_meter_reads_it() -> None:
    """Finding 17: `rfctl sim-bench --board osris-16x16` prints the bench's optimum in
    dBm; programming the optimum pattern on the served board, its power meter reads
    that figure (noise 0 here)."""
    from rfctl.sims.onebit_bench import OneBitBench

    from rfctl.hal.discovery import open_device, open_instrument
    from rfctl.hal.program import program
    from rfctl.lab.optimize import codes_image

    proc = subprocess.Popen([sys.executable, "-m", "rfctl", "sim-bench", "--board",
                             "osris-16x16", "--seed", "7", "--noise", "0", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("(hidden"):
                break
        url = lines[0].split(" at ")[1].strip()
        meter_res = next(x.split()[1] for x in lines if x.startswith("power-meter"))
        said = float(lines[-1].split("; optimum ")[1].split(" dBm")[0])
        assert "at 5.3 GHz as the instruments read it, noiseless (receiver noise adds " \
            in lines[-1]
        x, best_w = OneBitBench.random(None, seed=7, noise=0.0, direct_path=1.0).optimum()
        assert abs(said - (10 * math.log10(best_w) + 30)) < 0.006
        dev = open_device(OSRIS, url=url)
        meter = open_instrument("power-meter", meter_res, visa_library="@py")
        try:
            program(dev, codes_image(OSRIS, x.astype(np.int64)))
            read = 10 * math.log10(meter.read_power()) + 30
        finally:
            dev.close()
            meter.close()
        assert abs(read - said) < 0.006, (read, said)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_stop_messages_read_plainly() -> None:
    """Finding 20: no doubled parenthesis, no trailing colon after KeyboardInterrupt,
    a ProgramError's "holds the previous image" not contradicting the restore."""
    from rfctl.lab.restore import RestoreOutcome, stop_cause, stopped_message

    err = ProgramError("osris-16x16: no valid reply to '!Pattern'",
                       holds={"osris-16x16": "previous"})
    text = stopped_message("sweep stopped after 3 of 9 points", err,
                           RestoreOutcome(False, "unknown", "link down"))
    assert text == ("sweep stopped after 3 of 9 points: ProgramError: osris-16x16: no valid "
                    "reply to '!Pattern'; osris-16x16 kept its image from before that "
                    "write; board NOT restored: the restore failed, so its image is unknown "
                    "(link down)")
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as k:
            raise ProgramError("osris-16x16: interrupted (Ctrl-C)",
                               holds={"osris-16x16": "new"}) from k
    except ProgramError as exc:
        assert stop_cause(exc) == "interrupted (Ctrl-C)"
    assert stop_cause(KeyboardInterrupt()) == "interrupted (Ctrl-C)"


def test_optimize_that_keeps_the_start_reports_no_gain(onebit, tmp_path, monkeypatch,
                                                       capsys) -> None:
    """Finding 20: a result that measured below the start leaves the board on the start;
    the line says so and reports no dB gain (the start's readings differ by noise)."""
    import rfctl.lab

    def kept(dev, profile, meter, **kw):
        rows = [{"n": 1, "phase": "start", "power_w": 1e-5, "incumbent_w": 1e-5}]
        return SimpleNamespace(
            codes=np.zeros(256, int), verified_w=[1.01e-5] * 3, initial_w=1e-5,
            power_w=1.01e-5, start_w=[1.01e-5] * 3, kept_start=True, unchanged=False, rows=rows,
            elapsed_s=0.1, image_after=dev.read_active(),
            blind=SimpleNamespace(measurements=1024, stop="budget", method="estimate",
                                  estimate=None))

    monkeypatch.setattr(rfctl.lab, "optimize_board", kept)
    capsys.readouterr()
    assert main(["lab", "optimize", *_args(onebit, tmp_path), "--method", "estimate",
                 "--budget", "1024"]) == 0
    out = capsys.readouterr().out
    assert "the result measured below the starting configuration, so the board is left " \
           "on the start: -19.96 dBm re-measured" in out, out
    assert " dB," not in out and "+0.04" not in out and "no improvement found" in out


def test_a_second_client_of_a_one_client_bridge_is_told_the_board_may_be_in_use(
        onebit, tmp_path, capsys) -> None:
    """Finding 20: while one client holds the OpenSourceRIS board's socket (which serves
    one client at a time), a run says the board may be in use by another client, not
    only "socket disconnected"; no run folder is left."""
    from rfctl.hal.discovery import open_device

    first = open_device(OSRIS, url=onebit.url)
    try:
        first.info()
        capsys.readouterr()
        assert main(["lab", "sweep", *_args(onebit, tmp_path / "runs"), "--points", "3"]) == 1
        err = capsys.readouterr().err
        assert "socket disconnected: the link closed before the board answered; the board " \
               "may be in use by another client" in err, err
        assert not (tmp_path / "runs").exists()
    finally:
        first.close()


def test_a_gain_that_rounds_to_zero_has_no_minus_sign() -> None:
    from rfctl.cli.lab import _gain

    assert [_gain(x) for x in (-0.004, 0.004, -0.006, 1.234)] == \
        ["+0.00", "+0.00", "-0.01", "+1.23"]
