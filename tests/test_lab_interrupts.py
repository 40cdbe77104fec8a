"""Lab runs stopped by Ctrl-C pressed twice in quick succession (issue 13, a new user's
trial): the real ``rfctl lab`` in a subprocess against ``rfctl sim-bench`` in another;
the board's active image is then read through a fresh connection to the bench, and must
be the image it held before the run (checked by the board's own CRC-32).

The timing of the presses is a stimulus only (a slow ``--settle`` makes the first press
land in the measurement loop; the second follows 10 ms later, during the restore on a
slow link or while the records are written on a fast one); nothing here asserts a
duration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rfctl.config import load_config
from rfctl.hal import quantize
from rfctl.hal.discovery import open_device
from rfctl.hal.image import image_crc
from rfctl.hal.program import program
from rfctl.lab.restore import RestoreOutcome, deferred_sigint
from rfctl.state import ArrayState

PROFILE = load_config("sim-lab-8x8")


class Bench:
    """``rfctl sim-bench`` in its own process (free ports)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "rfctl", "sim-bench", "--port",
                                      "0", *args], stdout=subprocess.PIPE, text=True)
        self.resources: dict[str, str] = {}
        for line in self.proc.stdout:
            if line.startswith("simulated board"):
                self.url = line.split(" at ")[1].strip()
            elif line.startswith("(hidden"):
                break
            elif line.strip():
                kind, res = line.split()
                self.resources[kind] = res
        else:
            raise RuntimeError("sim-bench did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _set_image(url: str, seed: int) -> bytes:
    """Program a random image through a fresh connection; returns it as the board
    reports it (whole-image bytes)."""
    rng = np.random.default_rng(seed)
    dev = open_device(PROFILE, url=url)
    try:
        S = np.zeros((64, 1), bool)
        S[rng.permutation(64)[:32], 0] = True
        program(dev, quantize(ArrayState(phases=rng.uniform(-np.pi, np.pi, 64), switch=S),
                              _board()))
        return dev.read_active()
    finally:
        dev.close()


def _board():
    from rfctl.hal import compile_board

    return compile_board(PROFILE)


def _active(url: str) -> tuple[bytes, int]:
    """The board's active image and the CRC-32 it reports, through a fresh connection."""
    dev = open_device(PROFILE, url=url)
    try:
        return dev.read_active(), dev.active_crc()
    finally:
        dev.close()


def _interrupt_twice(argv: list[str], gap_s: float) -> tuple[int, str]:
    """Run ``rfctl`` with ``argv``; after its first progress line, send SIGINT, then a
    second one ``gap_s`` later. Returns (exit status, stderr)."""
    return _signal_mid_run(argv, [signal.SIGINT, signal.SIGINT], gap_s)


def _signal_mid_run(argv: list[str], signums: list[int], gap_s: float = 0.0
                    ) -> tuple[int, str]:
    """Run ``rfctl`` with ``argv``; after its first progress line, send ``signums`` in
    turn, ``gap_s`` apart. Returns (exit status, stderr). The child starts with SIGTERM
    and SIGHUP at their defaults (not ignored, even when the tests run under nohup)."""

    def defaults() -> None:
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "rfctl", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=defaults)
    err = []
    for line in proc.stderr:
        err.append(line)
        if line.startswith(argv[1] + " ["):  # a progress line: the run is in its loop
            break
    else:
        proc.wait(timeout=30)
        raise AssertionError("the run ended before its first progress line:\n" + "".join(err))
    for i, signum in enumerate(signums):
        if i:
            time.sleep(gap_s)
        os.kill(proc.pid, signum)
    _, rest = proc.communicate(timeout=120)
    return proc.returncode, "".join(err) + rest


def _says_restored(code: int, err: str) -> None:
    """Exit 130 and a message that says the board was restored, and nothing that
    contradicts it (the second press never makes the board's image unknown)."""
    assert code == 130, err
    assert "board restored to its previous image (verified by CRC)" in err, err
    for bad in ("NOT restored", "unknown", "interrupted again", "internal error"):
        assert bad not in err, err


@pytest.fixture(scope="module")
def benches():
    """``rfctl sim-bench`` processes by line rate, started on first use. At 9600 baud a
    programming takes tens of ms, so presses land inside program() and the restore; at
    921600 baud the restore is over in about a millisecond and the second press lands
    while the records and the plot are written."""
    made: dict[int, Bench] = {}

    def get(baud: int) -> Bench:
        if baud not in made:
            made[baud] = Bench("--baud", str(baud))
        return made[baud]

    yield get
    for b in made.values():
        b.stop()


SLOW, FAST = pytest.param(9600, id="slow-link"), pytest.param(921600, id="fast-link")
SLOW_MARKED = pytest.param(9600, id="slow-link", marks=pytest.mark.slow)


@pytest.fixture
def bench(benches, request):
    return benches(request.param)


@pytest.mark.parametrize("bench", [SLOW, FAST], indirect=True)
def test_double_ctrl_c_during_a_sweep_ends_with_the_board_restored(bench, tmp_path) -> None:
    before = _set_image(bench.url, seed=1)
    code, err = _interrupt_twice(["lab", "sweep", "--url", bench.url, "--meter",
                                  bench.resources["power-meter"], "--points", "20",
                                  "--settle", "0.3", "--out", str(tmp_path)], 0.01)
    _says_restored(code, err)
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)
    (run,) = tmp_path.glob("sweep-*")  # the partial run is recorded
    assert (run / "data.csv").exists()


@pytest.mark.parametrize("bench", [SLOW_MARKED, FAST], indirect=True)
def test_double_ctrl_c_during_optimize_ends_with_the_board_restored(bench, tmp_path) -> None:
    before = _set_image(bench.url, seed=2)
    code, err = _interrupt_twice(["lab", "optimize", "--url", bench.url, "--meter",
                                  bench.resources["power-meter"], "--budget", "40",
                                  "--settle", "0.3", "--out", str(tmp_path)], 0.01)
    _says_restored(code, err)
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)


@pytest.mark.parametrize("bench", [SLOW_MARKED, FAST], indirect=True)
def test_double_ctrl_c_during_a_calibration_ends_with_the_board_restored(bench,
                                                                         tmp_path) -> None:
    before = _set_image(bench.url, seed=4)
    code, err = _interrupt_twice(["lab", "calibrate", "--url", bench.url, "--meter",
                                  bench.resources["power-meter"], "--states", "4",
                                  "--passes", "1", "--settle", "0.05", "--out",
                                  str(tmp_path)], 0.01)
    _says_restored(code, err)
    assert "no table written" in err
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)


def test_deferred_sigint_defers_one_press_and_aborts_on_the_next() -> None:
    """In-process, on the main thread: one SIGINT inside the block is only counted; the
    second raises KeyboardInterrupt (a user can still abort); the handler is put back."""
    outer = signal.getsignal(signal.SIGINT)
    with deferred_sigint() as presses:
        signal.raise_signal(signal.SIGINT)
        assert presses.count == 1
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # after the abort: counted only
    assert presses.count == 3 and presses.aborted
    assert signal.getsignal(signal.SIGINT) is outer


def test_restore_outcome_says_what_the_board_holds() -> None:
    assert RestoreOutcome(True, "previous", deferred=1).describe().startswith(
        "board restored to its previous image (verified by CRC); a Ctrl-C during")
    assert RestoreOutcome(False, "last", "aborted").describe() == \
        "board NOT restored: nothing of the restore took effect, so it holds the run's " \
        "last image (if it is still powered) (aborted)"
    assert "its image is unknown" in RestoreOutcome(False, "unknown").describe()


def test_a_third_ctrl_c_aborts_the_restore_and_says_what_the_board_holds(monkeypatch) -> None:
    """Three presses: the first stops the sweep, the second is deferred during the
    restore, the third aborts it; the error then says the board was NOT restored and
    what it holds (in-process, the presses raised from inside the restore's program)."""
    from rfctl.drivers.rfctl_board import open_rfctl_board
    from rfctl.sims.simboard import SimBoardFirmware

    import rfctl.lab.restore as restore_mod
    from rfctl.lab import SweepInterruptedError, beam_sweep

    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE, firmware=fw)
    before = dev.read_active()

    class Meter:
        def read_power(self) -> float:
            return 1e-3

    real = restore_mod.program

    def pressed_twice(device, image, **kw):
        signal.raise_signal(signal.SIGINT)  # deferred
        signal.raise_signal(signal.SIGINT)  # aborts, before anything is sent
        return real(device, image, **kw)

    monkeypatch.setattr(restore_mod, "program", pressed_twice)

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterruptedError) as err:
        beam_sweep(dev, _board(), Meter(), [(t, 0.0) for t in np.linspace(-0.5, 0.5, 9)],
                   rows=8, cols=8, progress=stop)
    e = err.value
    assert not e.restored and e.restore.holds == "last"
    assert "board NOT restored: nothing of the restore took effect, so it holds the " \
        "run's last image" in str(e)
    assert bytes(fw.active) != before  # honest: the board does hold the sweep's beam
    dev.close()


@pytest.mark.slow
@pytest.mark.parametrize("bench", [SLOW, FAST], indirect=True)
@pytest.mark.parametrize("gap_s", [0.0, 0.002, 0.03, 0.1])
def test_double_ctrl_c_at_other_gaps(bench, tmp_path, gap_s) -> None:
    before = _set_image(bench.url, seed=3)
    code, err = _interrupt_twice(["lab", "sweep", "--url", bench.url, "--meter",
                                  bench.resources["power-meter"], "--points", "20",
                                  "--settle", "0.3", "--out", str(tmp_path)], gap_s)
    _says_restored(code, err)
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)


def test_a_ctrl_c_no_routine_handled_says_what_the_board_last_confirmed(monkeypatch,
                                                                       tmp_path,
                                                                       capsys) -> None:
    """A Ctrl-C that escapes the routines (before their first reading, or one that
    aborted a restore) exits 130 and says what the board last confirmed: its image from
    before the run, or the run's last image (not restored)."""
    import rfctl.lab
    from rfctl.cli import main
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", PROFILE, rows=8, cols=8, seed=9, noise=0.05)
    try:
        argv = ["lab", "sweep", "--url", lab.url, "--meter", lab.resources["power-meter"],
                "--points", "5", "--out", str(tmp_path)]

        def before_any_reading(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr(rfctl.lab, "beam_sweep", before_any_reading)
        capsys.readouterr()
        assert main(argv) == 130
        assert "the board holds its image from before the run" in capsys.readouterr().err

        def left_on_a_beam(device, board, *a, **k):
            program(device, quantize(ArrayState(phases=np.ones(64),
                                                switch=np.ones((64, 1), bool)), board))
            raise KeyboardInterrupt

        monkeypatch.setattr(rfctl.lab, "beam_sweep", left_on_a_beam)
        before = bytes(lab.server.firmware.active)
        assert main(argv) == 130
        err = capsys.readouterr().err
        assert "the board was NOT restored: it holds the run's last image" in err
        assert bytes(lab.server.firmware.active) != before  # and so it does
        snaps = [json.loads((r / "snapshot.json").read_text())
                 for r in tmp_path.glob("sweep-*")]
        assert sorted(s["outcome"].split(";")[0] for s in snaps) == \
            ["interrupted (Ctrl-C)"] * 2
    finally:
        lab.stop()


def test_a_ctrl_c_deferred_during_the_restore_after_an_error_exits_130() -> None:
    """An instrument error stops the run; a Ctrl-C pressed while the board is restored is
    deferred (the restore finishes) and the run then counts as stopped by Ctrl-C."""
    from rfctl.cli.lab import _stopped
    from rfctl.errors import DeviceError
    from rfctl.lab import SweepInterruptedError
    from rfctl.lab.sweeps import SweepData

    def stopped(deferred: int) -> SweepInterruptedError:
        try:
            raise DeviceError("meter silent")
        except DeviceError as cause:
            try:
                raise SweepInterruptedError("stopped", SweepData(), True,
                                            RestoreOutcome(True, "previous",
                                                           deferred=deferred)) from cause
            except SweepInterruptedError as e:
                return e

    assert _stopped(stopped(0)) == 1
    assert _stopped(stopped(1)) == 130


# --- SIGTERM and SIGHUP (a `timeout`, a job scheduler, an SSH drop) take the path of
# Ctrl-C: the board restored, the records written, exit 128 + the signal's number

def _run_dir(tmp_path, kind: str):
    (run,) = tmp_path.glob(f"{kind}-*")
    return run, json.loads((run / "snapshot.json").read_text())


def _says_terminated(code: int, err: str, name: str, status: int) -> None:
    assert code == status, err
    assert f"rfctl: terminated ({name}): " in err, err
    assert "board restored to its previous image (verified by CRC)" in err, err
    for bad in ("NOT restored", "unknown", "interrupted", "internal error", "Ctrl-C"):
        assert bad not in err, err


@pytest.mark.parametrize("bench", [FAST, pytest.param(9600, id="slow-link",
                                                      marks=pytest.mark.slow)],
                         indirect=True)
def test_sigterm_during_a_sweep_restores_the_board_and_records_the_readings(
        bench, tmp_path) -> None:
    before = _set_image(bench.url, seed=5)
    code, err = _signal_mid_run(["lab", "sweep", "--url", bench.url, "--meter",
                                 bench.resources["power-meter"], "--points", "20",
                                 "--settle", "0.3", "--out", str(tmp_path)],
                                [signal.SIGTERM])
    _says_terminated(code, err, "SIGTERM", 143)
    assert "sweep stopped after " in err and "partial data and plot in " in err, err
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)
    run, snap = _run_dir(tmp_path, "sweep")
    assert snap["outcome"].startswith("stopped: sweep stopped after "), snap["outcome"]
    assert "terminated (SIGTERM); board restored" in snap["outcome"], snap["outcome"]
    done = int(err.split("sweep stopped after ")[1].split()[0])
    lines = (run / "data.csv").read_text().splitlines()
    assert 1 <= done < 20 and len(lines) == 1 + done  # header + the readings taken
    assert list(run.glob("*.png")), "no plot"


def test_sighup_during_optimize_restores_the_board_and_exits_129(benches, tmp_path) -> None:
    bench = benches(921600)
    before = _set_image(bench.url, seed=6)
    code, err = _signal_mid_run(["lab", "optimize", "--url", bench.url, "--meter",
                                 bench.resources["power-meter"], "--budget", "40",
                                 "--settle", "0.3", "--out", str(tmp_path)],
                                [signal.SIGHUP])
    _says_terminated(code, err, "SIGHUP", 129)
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)
    run, snap = _run_dir(tmp_path, "optimize")
    assert "terminated (SIGHUP); board restored" in snap["outcome"], snap["outcome"]
    assert len((run / "data.csv").read_text().splitlines()) >= 2  # the readings taken


@pytest.mark.slow
@pytest.mark.parametrize("bench", [SLOW, FAST], indirect=True)
def test_a_second_sigterm_does_not_cut_the_restore_short(bench, tmp_path) -> None:
    """SIGTERM twice (a scheduler that insists): the second one is ignored or deferred
    like a second Ctrl-C, and the run still ends restored, exit 143."""
    before = _set_image(bench.url, seed=7)
    code, err = _signal_mid_run(["lab", "calibrate", "--url", bench.url, "--meter",
                                 bench.resources["power-meter"], "--states", "4",
                                 "--passes", "1", "--settle", "0.05", "--out",
                                 str(tmp_path)], [signal.SIGTERM, signal.SIGTERM], 0.01)
    assert code == 143, err
    assert "rfctl: terminated (SIGTERM): " in err, err
    assert "board restored to its previous image (verified by CRC)" in err, err
    assert "NOT restored" not in err and "unknown" not in err, err
    active, crc = _active(bench.url)
    assert active == before and crc == image_crc(before)


def test_deferred_sigint_defers_sigterm_and_sighup_too() -> None:
    """In-process: SIGTERM inside the restore's block is only counted; the next stop
    signal (here SIGHUP) raises Terminated for it; the handlers are put back."""
    from rfctl.errors import Terminated

    outer = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    with deferred_sigint() as presses:
        signal.raise_signal(signal.SIGTERM)
        assert presses.count == 1 and presses.signum == signal.SIGTERM
        with pytest.raises(Terminated) as err:
            signal.raise_signal(signal.SIGHUP)
        assert err.value.signum == signal.SIGHUP and isinstance(err.value, KeyboardInterrupt)
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] \
        == outer
    assert "a SIGTERM during the restore was deferred" in RestoreOutcome(
        True, "previous", deferred=1, deferred_signal=signal.SIGTERM).describe()


def test_main_leaves_no_signal_handler_behind(tmp_path) -> None:
    from rfctl.cli import main

    outer = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    assert main(["configs"]) == 0
    assert main(["lab", "show", str(tmp_path / "missing")]) == 1
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] \
        == outer


def test_sigterm_that_no_routine_handled_exits_143_and_records_it(monkeypatch, tmp_path,
                                                                  capsys) -> None:
    """In-process through main(): a SIGTERM before the sweep's first reading exits 143,
    says what the board last confirmed, and the record says terminated (SIGTERM)."""
    import rfctl.lab
    from rfctl.cli import main
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", PROFILE, rows=8, cols=8, seed=9, noise=0.05)
    try:
        def before_any_reading(*a, **k):
            signal.raise_signal(signal.SIGTERM)
            raise AssertionError("SIGTERM did not stop the run")

        monkeypatch.setattr(rfctl.lab, "beam_sweep", before_any_reading)
        capsys.readouterr()
        assert main(["lab", "sweep", "--url", lab.url, "--meter",
                     lab.resources["power-meter"], "--points", "5", "--out",
                     str(tmp_path)]) == 143
        err = capsys.readouterr().err
        assert err.startswith("rfctl: terminated (SIGTERM); the board holds its image from "
                              "before the run"), err
        _, snap = _run_dir(tmp_path, "sweep")
        assert snap["outcome"].startswith("terminated (SIGTERM); "), snap["outcome"]
    finally:
        lab.stop()


def test_sigterm_during_program_says_what_the_board_holds(monkeypatch, tmp_path,
                                                          capsys) -> None:
    """``rfctl program`` mid-transaction: SIGTERM asks the board what it holds and
    exits 143 saying so (the path of Ctrl-C)."""
    import rfctl.hal.program as program_mod
    from rfctl.cli import main
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", PROFILE, rows=8, cols=8, seed=9, noise=0.05)
    try:
        before = bytes(lab.server.firmware.active)
        state = tmp_path / "s.json"
        rng = np.random.default_rng(11)
        ArrayState(phases=rng.uniform(-np.pi, np.pi, 64),
                   switch=np.ones((64, 1), bool)).save(state)
        real = program_mod._stage_with_rebase

        def stage(*a, **kw):
            signal.raise_signal(signal.SIGTERM)
            return real(*a, **kw)

        monkeypatch.setattr(program_mod, "_stage_with_rebase", stage)
        capsys.readouterr()
        assert main(["program", "--board", "sim-lab-8x8", "--url", lab.url, "--state",
                     str(state)]) == 143
        err = capsys.readouterr().err
        assert err.startswith("rfctl: terminated (SIGTERM): "), err
        assert "terminated (SIGTERM)" in err.split(": ", 2)[2] and "Ctrl-C" not in err, err
        assert "holds the previous image" in err, err  # what the board holds, asked
        assert bytes(lab.server.firmware.active) == before  # nothing latched
    finally:
        lab.stop()


def test_main_keeps_an_ignored_sighup_ignored(monkeypatch) -> None:
    """Under ``nohup`` (SIGHUP ignored) main installs no SIGHUP handler; SIGTERM gets its
    handler while main runs, and both are put back."""
    import rfctl.cli as cli

    seen = {}

    def inside(argv, out):
        seen.update(hup=signal.getsignal(signal.SIGHUP), term=signal.getsignal(signal.SIGTERM))
        return 0

    monkeypatch.setattr(cli, "_main", inside)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        term = signal.getsignal(signal.SIGTERM)
        assert cli.main([]) == 0
        assert seen["hup"] is signal.SIG_IGN and seen["term"] is cli._terminate
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is term
    finally:
        signal.signal(signal.SIGHUP, previous)
