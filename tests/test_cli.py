"""The CLI through main(argv): exit codes and what it prints."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from rfctl.cli import main
from rfctl.config import load_config
from rfctl.optimize.steering import steering_design


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_demo_runs_on_defaults(tmp_path: Path) -> None:
    code, text = run("demo", "--out", str(tmp_path / "s.json"))
    assert code == 0
    assert "board sim-dbraa-14x14" in text
    for bank in ("phase", "rf_switch", "pin", "feed"):
        assert f"\n{bank} " in text
    # 6-bit phase: max error is at most half a step, 2.8125°
    line = next(ln for ln in text.splitlines() if ln.startswith("phase "))
    assert float(line.split()[4].rstrip("°")) <= 2.8125
    assert (tmp_path / "s.json").exists()


def test_validate_reports_field_and_exit_1(tmp_path: Path, capsys) -> None:
    p = tmp_path / "b.toml"
    p.write_text('kind = "board"\nname = "b"\n[[banks]]\nname = "ph"\nkind = "phase"\n'
                 'count = -1\nbits = 3\n')
    code, _ = run("validate", str(p))
    assert code == 1
    err = capsys.readouterr().err
    assert "b.toml: banks.0.count" in err
    assert run("validate", "sim-dbraa-14x14", "dma-4x8")[0] == 0


def test_quantize_table_and_json(tmp_path: Path) -> None:
    sc = load_config("dbraa-14x14")
    st = steering_design(sc).state
    st.save(tmp_path / "s.json")
    code, text = run("quantize", str(tmp_path / "s.json"), "--board", "sim-dbraa-14x14")
    assert code == 0 and "rf_switch" in text
    code, text = run("quantize", str(tmp_path / "s.json"), "--board",
                     "sim-dbraa-14x14-table", "--json")
    data = json.loads(text)
    assert {b["bank"] for b in data["banks"]} == {"phase", "rf_switch", "pin", "feed"}
    assert max(data["codes"]["phase"]) < 128
    assert np.array_equal(np.array(data["codes"]["rf_switch"]),
                          st.switch.ravel().astype(int))


def test_quantize_refuses_bad_state(tmp_path: Path, capsys) -> None:
    sc = load_config("dbraa-14x14")
    st = steering_design(sc).state
    P = np.zeros((13, 13), bool)
    P[0, 0] = P[0, 1] = P[0, 7] = P[7, 0] = True  # first two share pixels
    st.replace(selection=P).save(tmp_path / "bad.json")
    code, _ = run("quantize", str(tmp_path / "bad.json"), "--board", "sim-dbraa-14x14")
    assert code == 1
    assert "share a pixel" in capsys.readouterr().err


def test_usage_error_exit_2() -> None:
    assert run("frobnicate")[0] == 2
    assert run("--version")[0] == 0


def test_optimize_commands_write_states(tmp_path: Path) -> None:
    from rfctl.state import ArrayState

    code, text = run("optimize", "sub6g", "--scenario", "dbraa-14x14", "--out",
                     str(tmp_path / "s6.json"))
    assert code == 0 and "antennas (row, col)" in text
    assert ArrayState.load(tmp_path / "s6.json").selection.sum() == 4
    code, text = run("optimize", "dual-band", "--scenario", "dbraa-14x14", "--out",
                     str(tmp_path / "db.json"))
    assert code == 0 and "mmWave gets" in text and "phase bits" in text
    st = ArrayState.load(tmp_path / "db.json")
    assert st.phases.shape == (196,) and st.selection.sum() == 4
    assert run("quantize", str(tmp_path / "db.json"), "--board", "sim-dbraa-14x14")[0] == 0


def test_lab_commands_against_the_simulated_bench(tmp_path: Path) -> None:
    from rfctl.sims.sim_bench import BenchModel, SimBench
    from rfctl.sims.simboard import SimBoardFirmware
    from rfctl.sims.simserver import SimServer

    from rfctl.config import load_config

    prof = load_config("sim-lab-8x8")
    fw = SimBoardFirmware.from_profile(prof)
    model = BenchModel.random(fw, prof, 8, 8, seed=2)
    with SimBench(model) as bench, SimServer(fw) as srv:
        res = bench.start()
        url = srv.start_socket()
        common = ["--url", url, "--meter", res["power-meter"], "--out", str(tmp_path)]
        code, text = run("lab", "calibrate", *common, "--passes", "2", "--states", "4",
                         "--write-calibration", str(tmp_path / "cal.csv"))
        assert code == 0 and "calibrated 64 elements with 514 measurements" in text
        code, text = run("lab", "sweep", *common, "--points", "21",
                         "--calibration", str(tmp_path / "cal.csv"))
        assert code == 0 and "21-point sweep" in text and "θ = 0.000" in text
    runs = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["calibrate", "sweep"]


# ---------------------------------------------------------------- issue 12 follow-ups (fixC)
import pytest  # noqa: E402

from rfctl.state import ArrayState  # noqa: E402


@pytest.fixture(scope="module")
def dma_states(tmp_path_factory) -> dict:
    """rfctl optimize dma on dma-4x8: realisations 0, 1, 2 continuous, 1 with the board."""
    d = tmp_path_factory.mktemp("dma")
    res = {}
    for r in (0, 1, 2):
        res[r] = (*run("optimize", "dma", "--scenario", "dma-4x8", "--realisation", str(r),
                       "--out", str(d / f"c{r}.json")), d / f"c{r}.json")
    res["board"] = (*run("optimize", "dma", "--scenario", "dma-4x8", "--realisation", "1",
                         "--board", "sim-dma-4x8", "--out", str(d / "b1.json")),
                    d / "b1.json")
    return res


def test_optimize_dma_default_converges(dma_states: dict) -> None:
    # realisation 0 used to stop at the 100-iteration cap (stationarity 1.8e-2)
    for r in (0, 1, 2):
        code, text, _ = dma_states[r]
        assert code == 0, text
        assert "stop: converged" in text, text.splitlines()[0]


def test_optimize_dma_board_solves_the_same_task(dma_states: dict) -> None:
    code, text, path = dma_states["board"]
    assert code == 0, text
    board = ArrayState.load(path).dma_task
    cont = ArrayState.load(dma_states[1][2]).dma_task
    assert board is not None and cont is not None
    np.testing.assert_allclose(board.gamma, cont.gamma, rtol=1e-12)
    np.testing.assert_allclose(board.beta, cont.beta, rtol=1e-12)
    assert board.beta_max == pytest.approx(cont.beta_max, rel=1e-12)
    assert board.p_max == cont.p_max and board.sigma2 == cont.sigma2
    assert "continuous (in the board's arc)" in text


def test_optimize_dma_board_falls_back_to_the_unconfined_design(tmp_path: Path) -> None:
    # realisation 0's task (Γ from the continuous design) cannot be met inside the board's
    # arc (the SDR is infeasible at every start there), but the unconfined design on the
    # nearest codes with B re-optimised meets it (a new user found it by hand): --board
    # must find it too, save it, and the gate must pass it
    out = tmp_path / "b0.json"
    code, text = run("optimize", "dma", "--scenario", "dma-4x8", "--board", "sim-dma-4x8",
                     "--out", str(out))
    assert code == 0, text
    assert "continuous (unconfined: the arc design failed)" in text
    st = ArrayState.load(out)
    assert st.record.notes["board_design_path"] == "unconfined"
    code, text = run("check", str(out), "--board", "sim-dma-4x8")
    assert code == 0 and "feasible" in text, text
    code, text = run("program", "--board", "sim-dma-4x8", "--state", str(out), "--dry-run")
    assert code == 0 and "dry run" in text, text


def test_program_refuses_dma_state_infeasible_on_codes(dma_states: dict, capsys) -> None:
    path = str(dma_states[0][2])
    capsys.readouterr()
    code, text = run("program", "--board", "sim-dma-4x8", "--state", path, "--dry-run")
    assert code == 1
    err = capsys.readouterr().err  # the refusal is an error line on stderr
    assert err.startswith("rfctl: error: refusing to program"), err
    assert "INFEASIBLE on sim-dma-4x8's codes" in err and "keeps its image" in err
    assert "P_t <= P_max" in err or "SINR" in err
    assert "dry run" not in text
    code, text = run("program", "--board", "sim-dma-4x8", "--state", path, "--dry-run",
                     "--allow-infeasible")
    assert code == 0 and "dry run" in text
    # the design made for the board passes the gate
    code, text = run("program", "--board", "sim-dma-4x8", "--state",
                     str(dma_states["board"][2]), "--dry-run")
    assert code == 0 and "all met" in text, text


def test_quantize_dma_says_infeasible_on_codes(dma_states: dict) -> None:
    code, text = run("quantize", str(dma_states[0][2]), "--board", "sim-dma-4x8")
    assert code == 0
    assert "INFEASIBLE on the board's codes" in text


def test_optimize_needs_out_and_board_is_dma_only(tmp_path: Path, capsys) -> None:
    code, _ = run("optimize", "sub6g", "--scenario", "dbraa-14x14")
    assert code == 2
    assert "--out" in capsys.readouterr().err
    code, _ = run("optimize", "sub6g", "--scenario", "dbraa-14x14", "--board",
                  "sim-dbraa-14x14", "--out", str(tmp_path / "s.json"))
    assert code == 2
    assert "--board applies to dma only" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
    # every problem-specific option given to another problem: exit 2, never ignored
    for problem, opt, value in [("sub6g", "--structure", "DHB"), ("dma", "--init", "random"),
                                ("mmwave", "--seed", "3"), ("dual-band", "--init", "fixed"),
                                ("dma", "--structure", "PCHB")]:
        scenario = "dma-4x8" if problem == "dma" else "dbraa-14x14"
        code, _ = run("optimize", problem, "--scenario", scenario, opt, value, "--out",
                      str(tmp_path / "s.json"))
        assert code == 2, (problem, opt)
        assert f"{opt} applies to" in capsys.readouterr().err
        assert not (tmp_path / "s.json").exists()


def test_sub6g_power_against_total_budget(tmp_path: Path) -> None:
    # realisation 13 needs ~28 W > total_power 17 W: flagged, not "feasible" alone
    code, text = run("optimize", "sub6g", "--scenario", "dbraa-14x14", "--realisation", "13",
                     "--out", str(tmp_path / "s.json"))
    assert code == 0
    line = next(ln for ln in text.splitlines() if "total budget" in ln)
    assert "17 W" in line and "EXCEEDS" in line and "NOT feasible" in line


def test_demo_names_the_constraints_its_baseline_misses(tmp_path: Path) -> None:
    code, text = run("demo", "--no-board")
    assert code == 0
    assert "≥ 10.41 (Υ_m)" in text
    miss = next(ln for ln in text.splitlines() if ln.startswith("continuous:"))
    assert "does NOT meet" in miss and "mmWave sensing gain" in miss and "Υ_m" in miss
    assert "total budget 17 W" in miss


def test_quantize_dbraa_reports_constraints_before_and_after(tmp_path: Path) -> None:
    s = tmp_path / "m.json"
    code, opt = run("optimize", "mmwave", "--scenario", "dbraa-14x14", "--out", str(s))
    assert code == 0 and "gain/Υ" in opt and "feasible" in opt
    code, text = run("quantize", str(s), "--board", "sim-dbraa-14x14")
    assert code == 0
    assert "Υ 10.41 dB, P_m 7 W" in text
    rows = {ln.split()[0]: ln.split() for ln in text.splitlines()
            if ln.strip().startswith(("before", "after"))}
    assert set(rows) == {"before", "after"}
    # before = the continuous design, after = its 6-bit phases (the board's phase bank):
    # the same numbers as optimize's phase-bits table
    bits = {ln.split()[0]: ln.split() for ln in opt.splitlines()
            if ln.strip().startswith(("continuous", "6 "))}
    assert rows["before"][1] == bits["continuous"][1]
    assert rows["after"][1] == bits["6"][1]
    assert rows["after"][6] == bits["6"][8]  # yes / NO:
    # --json carries the same numbers (it had only the banks and codes)
    code, js = run("quantize", str(s), "--board", "sim-dbraa-14x14", "--json")
    assert code == 0
    mm = json.loads(js)["mmwave"]
    for label in ("before", "after"):
        assert f"{mm[label]['sum_rate_bps_hz']:8.3f}".strip() == rows[label][1]
        assert mm[label]["feasible"] == (rows[label][6] == "yes")
        assert mm[label]["power_w"] <= mm["p_max_w"] * (1 + 1e-6) or not mm[label]["feasible"]


def test_quantize_dma_says_when_b_could_not_be_re_optimised(dma_states: dict) -> None:
    """Realisation 2's continuous design on sim-dma-4x8's codes: the SDR for the
    quantized loads is infeasible, so the re-optimised row is the kept B; the report
    must say so rather than print it as a re-optimisation."""
    path = str(dma_states[2][2])
    code, text = run("quantize", path, "--board", "sim-dma-4x8")
    assert code == 0
    assert "B re-opt. FAILED (B kept)" in text
    assert "B could not be re-optimised for the quantized loads" in text
    code, js = run("quantize", path, "--board", "sim-dma-4x8", "--json")
    dma = json.loads(js)["dma"]
    assert "infeasible" in dma["reoptimised"]["reoptimise_error"].lower()
    assert dma["reoptimised"]["power_w"] == dma["kept"]["power_w"]


def test_beams_without_crc_or_state_are_usage_errors(capsys) -> None:
    """Were exit 1 after opening the board; now argparse usage errors (exit 2), before
    any port is opened (the URL below does not exist)."""
    url = "socket://127.0.0.1:1"
    code, _ = run("beams", "select", "1", "--board", "sim-dbraa-14x14", "--url", url)
    assert code == 2
    err = capsys.readouterr().err
    assert "usage: rfctl beams" in err and "beams select needs --crc" in err
    code, _ = run("beams", "store", "1", "--board", "sim-dbraa-14x14", "--url", url)
    assert code == 2
    assert "beams store needs --state" in capsys.readouterr().err
