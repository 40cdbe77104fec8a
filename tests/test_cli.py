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
