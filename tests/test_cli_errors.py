"""CLI exit codes (issue 14): rfctl errors exit 1 with one line, usage 2, bugs 3 with
"internal error, please report" (traceback under -v); file and directory arguments that
cannot be used give a clear rfctl error, not a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from rfctl import cli
from rfctl.cli import main
from rfctl.config import load_config


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv), out=io.StringIO())
    err = capsys.readouterr().err
    return code, err


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rfctl: error: ")
    return lines[0]


def test_output_paths_are_clear_errors(tmp_path: Path, capsys) -> None:
    code, err = run(capsys, "demo", "--no-board", "--out", str(tmp_path))
    assert code == 1 and "is a directory" in _one_error_line(err)
    code, err = run(capsys, "demo", "--no-board", "--out", str(tmp_path / "no" / "s.json"))
    assert code == 1 and "does not exist" in _one_error_line(err)
    code, err = run(capsys, "--log-wire", str(tmp_path), "validate", "dma-4x8")
    assert code == 1 and "--log-wire" in _one_error_line(err)
    code, err = run(capsys, "optimize", "sub6g", "--scenario", "dbraa-14x14",
                    "--out", str(tmp_path))
    assert code == 1 and "is a directory" in _one_error_line(err)


def test_bad_inputs_exit_1_with_one_line(tmp_path: Path, capsys) -> None:
    st = tmp_path / "s.json"
    st.write_bytes(b'{"format": "rfctl-state/1", "phases": [1.0, "\xff"]}')
    code, err = run(capsys, "quantize", str(st), "--board", "sim-dbraa-14x14")
    assert code == 1 and "not UTF-8" in _one_error_line(err)
    bad = tmp_path / "b.toml"
    bad.write_text('kind = "board"\nname = "b"\n[[banks]]\nname = "ph"\nkind = "phase"\n'
                   'count = -1\nbits = "3"\n')
    code, err = run(capsys, "validate", str(bad))
    line = _one_error_line(err)  # two field errors, joined on one line
    assert code == 1 and "banks.0.count" in line and "banks.0.bits" in line
    code, err = run(capsys, "demo", "--scenario", "dma-4x8", "--no-board")
    assert code == 1 and "DBRAA scenario" in _one_error_line(err)
    code, err = run(capsys, "demo", "--board", "sim-lab-8x8", "--no-board")
    assert code == 1 and "needs 196" in _one_error_line(err)


@pytest.mark.parametrize("argv", [
    ["demo", "--realisation", "-1"],
    ["demo", "--realisation", "x"],
    ["optimize", "sub6g", "--scenario", "dbraa-14x14", "--seed", "-3"],
    ["sim-board", "--drop", "nan"],
    ["sim-board", "--busy", "1.5"],
    ["no-such-command"],
    ["beams", "select", "-1", "--board", "sim-dbraa-14x14", "--crc", "0x1"],
    ["beams", "select", "1", "--board", "sim-dbraa-14x14", "--crc", "zz"],
])
def test_usage_errors_exit_2(argv: list[str], capsys) -> None:
    code, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err


def test_unexpected_exception_is_exit_3_internal_error(monkeypatch, capsys) -> None:
    def boom(args, out):
        raise ZeroDivisionError("division by zero")

    parser = cli.build_parser

    def patched():
        p = parser()
        p.set_defaults(func=boom)
        sub = next(a for a in p._actions if a.dest == "command")
        for sp in sub.choices.values():
            sp.set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", patched)
    code, err = run(capsys, "configs")
    assert code == 3
    assert "internal error, please report" in err and "ZeroDivisionError" in err
    assert "Traceback" not in err and "-v" in err
    code, err = run(capsys, "-v", "configs")
    assert code == 3 and "Traceback" in err and "ZeroDivisionError" in err


def test_a_closed_output_pipe_is_not_an_internal_error(capsys) -> None:
    """`rfctl configs | head -1`: the reader goes away and writing raises BrokenPipeError;
    rfctl stops quietly with the shell's SIGPIPE status 141, not 'internal error' (3)."""
    import io

    from rfctl.cli import main

    class HungUp(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    assert main(["configs"], out=HungUp()) == 141
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err


def test_sim_bench_on_a_port_in_use_is_one_line_exit_1(capsys) -> None:
    """A taken --port is a refusal (exit 1, one line), not an internal error (exit 3)."""
    import socket

    from rfctl.cli import main

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        assert main(["sim-bench", "--port", str(port)]) == 1
    finally:
        s.close()
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen" in err and "internal error" not in err


def test_ctrl_c_during_start_up_is_one_line_and_130(monkeypatch, capsys) -> None:
    """The console script imports only ``rfctl.cli`` before ``main`` runs; that import
    chain must not load the heavy libraries (a Ctrl-C there would be a traceback), and
    a Ctrl-C while ``main`` imports the command groups exits 130 with one line."""
    import subprocess
    import sys

    code = ("import sys, rfctl.cli; "
            "print(sorted(m for m in ('numpy', 'scipy', 'pydantic', 'cvxpy') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == "[]", res.stdout

    import rfctl.cli as cli

    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    assert cli.main(["configs"]) == 130
    err = capsys.readouterr().err
    assert err == "rfctl: interrupted\n"


def test_lab_output_paths_are_checked_before_anything_is_opened(tmp_path, capsys) -> None:
    """A file given as --out, a folder as --write-calibration, or a missing parent folder
    is an error (exit 1) naming the option before the board is opened (the URL points at
    a closed port, so getting as far as the link would give a different error), and no
    folder is created."""
    from rfctl.cli import main

    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    base = ["--meter", "TCPIP::127.0.0.1::9::SOCKET", "--url", "socket://127.0.0.1:9"]
    cases = [
        (["lab", "sweep", *base, "--out", str(a_file)], "--out"),
        (["lab", "calibrate", *base, "--out", str(tmp_path),
          "--write-calibration", str(tmp_path)], "--write-calibration"),
        (["lab", "calibrate", *base, "--out", str(tmp_path),
          "--write-calibration", str(tmp_path / "missing" / "c.csv")], "--write-calibration"),
        (["lab", "optimize", *base, "--out", str(tmp_path / "no" / "runs")], "--out"),
    ]
    for argv, opt in cases:
        capsys.readouterr()
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"rfctl: error: {opt} "), err
        assert "127.0.0.1:9" not in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "no").exists()


def test_program_on_another_model_says_the_board_keeps_its_image(tmp_path, capsys) -> None:
    """A board of another model (a sim-dbraa board programmed with the sim-lab-8x8
    profile) is refused at IDENT; the message says nothing was sent."""
    from rfctl import ArrayState
    from rfctl.cli import main
    from rfctl.hal.discovery import open_sim

    server = open_sim("board-server", load_config("sim-dbraa-14x14"))
    url = server.start_socket("127.0.0.1", 0)
    try:
        state = tmp_path / "lab.json"
        ArrayState(phases=np.zeros(64)).save(state)
        capsys.readouterr()
        assert main(["program", "--board", "sim-lab-8x8", "--state", str(state),
                     "--url", url]) == 1
        err = capsys.readouterr().err
        assert "reports model" in err and "keeps its previous image (nothing was sent)" in err
    finally:
        server.stop()


def test_an_error_chained_from_ctrl_c_exits_130_and_says_what_it_knows(monkeypatch,
                                                                      capsys) -> None:
    """program() turns a Ctrl-C into a ProgramError that says what the board holds,
    chained from the KeyboardInterrupt: the CLI prints it and exits 130, not 1."""
    import rfctl.cli.configs as configs
    from rfctl.cli import main
    from rfctl.errors import ProgramError

    def interrupted(args, out):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ProgramError("b: interrupted (Ctrl-C)", holds={"b": "new"},
                               cause=exc) from exc

    monkeypatch.setattr(configs, "cmd_configs", interrupted)
    capsys.readouterr()
    assert main(["configs"]) == 130
    assert capsys.readouterr().err == \
        "rfctl: interrupted: b: interrupted (Ctrl-C) (b holds the new image)\n"


def test_a_lab_run_stopped_by_ctrl_c_inside_program_exits_130() -> None:
    """program() turns a Ctrl-C into a ProgramError (saying what the board holds); the
    lab routine wraps that in its own stopped-error. The exit status looks down the whole
    chain of causes: 130 (a new user got 1 for every Ctrl-C of a lab run)."""
    from rfctl.cli.lab import _stopped
    from rfctl.errors import DeviceError, ProgramError
    from rfctl.lab import SweepInterruptedError
    from rfctl.lab.sweeps import SweepData

    def chain(first: BaseException) -> BaseException:
        try:
            try:
                raise first
            except BaseException as a:
                raise ProgramError("b: interrupted (Ctrl-C)", holds={"b": "new"}) from a
        except ProgramError as b:
            try:
                raise SweepInterruptedError("stopped", SweepData(), True) from b
            except SweepInterruptedError as c:
                return c

    assert _stopped(chain(KeyboardInterrupt())) == 130
    assert _stopped(chain(DeviceError("link lost"))) == 1


def test_lab_options_of_another_action_are_usage_errors(capsys) -> None:
    """`lab sweep --write-calibration x --method csm` used to be accepted and ignored.
    Every action-specific option given to another action exits 2 naming it, before
    anything is opened (the URLs point at a closed port)."""
    from rfctl.cli import main

    base = ["--meter", "TCPIP::127.0.0.1::9::SOCKET", "--url", "socket://127.0.0.1:9"]
    for action, opt, value in [("sweep", "--write-calibration", "x.csv"),
                               ("sweep", "--method", "csm"), ("sweep", "--budget", "5"),
                               ("sweep", "--passes", "9"), ("calibrate", "--points", "5"),
                               ("calibrate", "--verify", "2"), ("optimize", "--states", "4"),
                               ("optimize", "--start", "0.5"), ("sweep", "--seed", "1")]:
        capsys.readouterr()
        assert main(["lab", action, *base, opt, value]) == 2, (action, opt)
        assert f"{opt} applies to rfctl lab" in capsys.readouterr().err


def test_output_under_a_file_and_a_garbage_resource_are_named(tmp_path) -> None:
    from rfctl.drivers.scpi import open_visa

    from rfctl.cli.argtypes import check_output_file
    from rfctl.errors import ConfigError, OutputError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        check_output_file(tmp_path / "afile" / "x.json", "--out")
    with pytest.raises(ConfigError, match="'garbage' is not a VISA resource string"):
        open_visa("garbage", visa_library="@py")
