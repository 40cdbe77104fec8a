"""``rfctl lab`` refusals (issue 13, a new user's trial): everything that can be judged
from the arguments and the board profile is refused before the board and the sensor
are opened and before a run folder is created; a refusal from anywhere later leaves no
empty run folder; ``--method estimate`` on a few-bit bank warns (stderr and record)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from rfctl.cli import main
from rfctl.config import load_config
from rfctl.errors import ConfigError

LAB = load_config("sim-lab-8x8")  # 64 elements, a 6-bit phase bank
# a closed port: getting as far as the link would give a connection error instead
CLOSED = ["--meter", "TCPIP::127.0.0.1::9::SOCKET", "--url", "socket://127.0.0.1:9"]
ONEBIT = ["--board", "osris-16x16", "--sensor", "spectrum-analyzer"]


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("element,phase_offset_rad\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("argv", "code", "starts"), [
    # 2(N + R) + 1 = 545 readings for N = 256
    (["optimize", *ONEBIT, "--method", "estimate", "--budget", "544"], 2,
     "rfctl lab: error: --budget 544: --method estimate on 256 elements needs a budget of "
     "at least 545"),
    (["optimize", "--method", "estimate", "--budget", "100"], 2,
     "rfctl lab: error: --budget 100: --method estimate on 64 elements needs"),
    (["calibrate", *ONEBIT, "--budget", "545"], 2,
     "rfctl lab: error: --budget 545: one-bit calibration of 256 elements needs"),
    (["calibrate", *ONEBIT, "--reference", "256"], 2,
     "rfctl lab: error: --reference 256: reference element 256 is outside 0 … 255"),
    (["calibrate", "--reference", "3"], 2, "rfctl lab: error: --reference 3: applies to "
     "one-bit boards only"),
    (["calibrate", "--budget", "900"], 2, "rfctl lab: error: --budget 900: applies to the "
     "calibration of one-bit boards only"),
    (["calibrate", "--states", "3"], 2, "rfctl lab: error: --states 3: states = 3 must be "
     "≥ 2 and divide 2^bits = 64"),
    # the phase-rotation options mean nothing to a one-bit calibration: refused, not ignored
    (["calibrate", *ONEBIT, "--passes", "2"], 2, "rfctl lab: error: --passes: applies to "
     "boards of 2 or more bits only (bank"),
    (["calibrate", *ONEBIT, "--states", "2", "--probe-theta", "0.2"], 2,
     "rfctl lab: error: --probe-theta, --states: apply to boards of 2 or more bits only"),
    # csm samples 2 × 2^bits states per group: 1 + 4 (2 × 64 + 2) + 1 = 522 readings
    (["optimize", "--method", "csm", "--budget", "521"], 2,
     "rfctl lab: error: --budget 521: --method csm with 4 groups on 6-bit bank 'phase' "
     "needs a budget of at least 522"),
    (["optimize", "--method", "csm", "--groups", "1", "--budget", "130"], 2,
     "rfctl lab: error: --budget 130: --method csm with 1 group on 6-bit bank 'phase' "
     "needs a budget of at least 131"),
    (["sweep", "--rows", "5"], 2, "rfctl lab: error: --rows/--cols: 5 does not divide the "
     "64 elements"),
    (["sweep", "--rows", "8", "--cols", "4"], 2, "rfctl lab: error: --rows 8 × --cols 4"),
    (["sweep", "--span", "1e6"], 2, "rfctl lab: error: --span/--rbw apply to a spectrum "
     "analyzer, not a power-meter"),
])
def test_refused_before_the_board_is_opened(argv, code, starts, tmp_path, capsys) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    capsys.readouterr()
    assert main(["lab", *argv, *CLOSED, "--out", str(out)]) == code
    err = capsys.readouterr().err
    assert err.startswith(starts), err
    assert "127.0.0.1:9" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(out.iterdir())  # no run folder


def test_a_bad_calibration_table_is_refused_before_the_board_is_opened(tmp_path,
                                                                         capsys) -> None:
    """Missing, unparsable, or of another element count: exit 1 (an input file, as for
    every command), naming --calibration, before the board is opened; no run folder."""
    out = tmp_path / "runs"
    out.mkdir()
    cases = [
        (tmp_path / "missing.csv", "cannot read"),
        (_table(tmp_path / "text.csv", ["0,abc"]), ""),
        (_table(tmp_path / "empty.csv", []), "empty table"),
        (_table(tmp_path / "short.csv", [f"{k},0.1" for k in range(63)]),
         "must list every element 0..63 exactly once"),
        (_table(tmp_path / "osris.csv", [f"{k},0.1" for k in range(256)]),
         "must list every element 0..63 exactly once"),
    ]
    for path, why in cases:
        for action in ("sweep", "optimize", "calibrate"):
            capsys.readouterr()
            assert main(["lab", action, *CLOSED, "--calibration", str(path), "--out",
                         str(out)]) == 1, (path, action)
            err = capsys.readouterr().err
            assert err.startswith(f"rfctl: error: --calibration {path}: "), err
            assert why in err and "127.0.0.1:9" not in err, err
    assert not list(out.iterdir())


@pytest.fixture
def served():
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", LAB, rows=8, cols=8, seed=8, noise=0.05)
    yield lab
    lab.stop()


def test_a_refusal_after_the_board_was_opened_leaves_no_run_folder(served, tmp_path,
                                                                    monkeypatch,
                                                                    capsys) -> None:
    """Whatever path refuses — the sensor refusing a setting, a library routine refusing
    before its first reading — the run folder (created before the board was opened) is
    removed again; a run with readings keeps its folder."""
    import rfctl.lab

    out = tmp_path / "runs"
    out.mkdir()
    base = ["lab", "optimize", "--url", served.url, "--out", str(out)]
    # the spectrum analyzer's profile refuses an RBW above its maximum
    capsys.readouterr()
    assert main([*base, "--sensor", "spectrum-analyzer", "--meter",
                 served.resources["spectrum-analyzer"], "--rbw", "1e9"]) == 1
    assert "rbw = 1e+09 above the maximum" in capsys.readouterr().err
    assert not list(out.iterdir())

    def refuses(*a, **k):
        raise ConfigError("refused before the first reading", field="x", reason="test")

    monkeypatch.setattr(rfctl.lab, "optimize_board", refuses)
    assert main([*base, "--meter", served.resources["power-meter"]]) == 1
    assert "refused before the first reading" in capsys.readouterr().err
    assert not list(out.iterdir())
    monkeypatch.undo()
    assert main([*base, "--meter", served.resources["power-meter"], "--budget", "20"]) == 0
    (run,) = out.iterdir()
    assert (run / "data.json").exists()


def test_estimate_on_a_few_bit_bank_warns_on_stderr_and_in_the_record(served, tmp_path,
                                                                      caplog) -> None:
    """--method estimate on the 6-bit bench uses codes 0 and 32 only: a warning naming
    the two states and suggesting greedy, on stderr (a real CLI process: logging not
    configured) before the first reading, and in the run record (here of a run stopped
    by Ctrl-C once its readings began; the estimation's fit itself is slow). Greedy
    does not warn."""
    import os
    import signal

    out = tmp_path / "runs"
    out.mkdir()
    argv = ["lab", "optimize", "--url", served.url, "--meter",
            served.resources["power-meter"], "--out", str(out), "--budget", "137"]
    want = "uses only two of its 64 phase states (codes 0 and 32, half a turn apart)"
    proc = subprocess.Popen([sys.executable, "-m", "rfctl", *argv, "--method", "estimate",
                             "--settle", "0.05"], stderr=subprocess.PIPE, text=True)
    err = []
    for line in proc.stderr:
        err.append(line)
        if line.startswith("optimize ["):  # readings have begun
            break
    os.kill(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = "".join(err) + rest
    assert proc.returncode == 130, err
    assert err.count(want) == 1 and "rfctl: warning: --method estimate" in err, err
    assert err.index(want) < err.index("optimize [")  # before the first reading
    assert "rfctl lab calibrate" in err
    (run,) = out.glob("optimize-*")
    snap = json.loads((run / "snapshot.json").read_text())
    assert snap["outcome"].startswith("stopped")
    assert [w for w in snap["warnings"] if want in w], snap.get("warnings")
    with caplog.at_level(logging.WARNING, logger="rfctl"):
        assert main([*argv, "--method", "greedy", "--out", str(tmp_path)]) == 0
    assert want not in caplog.text


def test_estimate_on_a_one_bit_bank_does_not_warn() -> None:
    from rfctl.lab.optimize import few_bit_estimate_warning

    assert few_bit_estimate_warning(load_config("osris-16x16"), "estimate") is None
    assert few_bit_estimate_warning(LAB, "greedy") is None
    assert "64 phase states" in few_bit_estimate_warning(LAB, "estimate")


def test_an_instrument_profile_is_read_before_the_board_is_opened(tmp_path, capsys,
                                                                   monkeypatch) -> None:
    """A missing or bad --instrument-profile is named (the path as given, not a package
    folder) before the board opens: the board's closed port is never reached."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs"
    out.mkdir()
    for given, says in (("nofile.toml", "'nofile.toml': no such file (looked in the current "
                                        "folder and among the built-in profiles)"),
                        ("bad.toml", "base: ")):
        if given == "bad.toml":
            (tmp_path / given).write_text('kind = "instrument"\nbase = "nope"\n')
        capsys.readouterr()
        assert main(["lab", "sweep", *CLOSED, "--instrument-profile", given,
                     "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"rfctl: error: --instrument-profile {given}: "), err
        assert says in err and "127.0.0.1:9" not in err and "drivers" not in err, err
        assert not list(out.iterdir())


@pytest.mark.parametrize(("levels", "groups"), [(64, 4), (64, 1), (2, 4), (4, 3)])
def test_csm_budget_is_the_least_that_samples_every_group(levels, groups) -> None:
    """``csm_budget`` is pinned to the algorithm: with it every group is sampled, with
    one reading less at least one group is skipped (the refusal's figure is exact)."""
    import numpy as np

    from rfctl.lab import conditional_sample_mean
    from rfctl.lab.blind import MeasurementLog
    from rfctl.lab.optimize import csm_budget

    def groups_sampled(budget: int) -> int:
        log = MeasurementLog(lambda x: float(np.sum(x)), budget)
        conditional_sample_mean(log, 12, budget=budget, rng=np.random.default_rng(0),
                                levels=levels, groups=groups)
        phases = [r["phase"] for r in log.rows]
        # each sampled group is one run of consecutive "sample" readings
        return sum(1 for i, p in enumerate(phases)
                   if p == "sample" and (i == 0 or phases[i - 1] != "sample"))

    need = csm_budget(levels, groups)
    assert groups_sampled(need) == groups
    assert groups_sampled(need - 1) < groups
