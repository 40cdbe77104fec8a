"""``rfctl sim-board`` for each driver kind, in its own process, programmed from other
processes through the real stacks (pyvisa-py for the SCPI bias source)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from boardprocs import free_port

RFCTL = [sys.executable, "-m", "rfctl"]


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*RFCTL, *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_a_bias_source_board_is_served_and_programmed_from_other_processes(tmp_path):
    """sim-board --board bias-dma-4x8 serves the SCPI bias source; a DMA design for that
    board is programmed through pyvisa-py (TCPIP SOCKET) and read back, and a second
    `rfctl program` of the same state finds it active. A socket:// URL for a VISA board
    is refused naming the expected form."""
    port = free_port()
    board = subprocess.Popen([*RFCTL, "sim-board", "--board", "bias-dma-4x8", "--listen",
                              f"socket://127.0.0.1:{port}"], stdout=subprocess.PIPE,
                             text=True, cwd=tmp_path)
    try:
        line = board.stdout.readline()
        assert f"TCPIP::127.0.0.1::{port}::SOCKET" in line, line
        r = _run("optimize", "dma", "--scenario", "dma-4x8", "--realisation", "1", "--board",
                 "bias-dma-4x8", "--out", "s.json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        url = f"TCPIP::127.0.0.1::{port}::SOCKET"
        r = _run("program", "--board", "bias-dma-4x8", "--state", "s.json", "--url", url,
                 cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "read-back matches" in r.stdout
        r = _run("program", "--board", "bias-dma-4x8", "--state", "s.json", "--url", url,
                 cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "image already active" in r.stdout and "nothing written" in r.stdout
        r = _run("program", "--board", "bias-dma-4x8", "--state", "s.json", "--url",
                 f"socket://127.0.0.1:{port}", cwd=tmp_path)
        assert r.returncode == 1 and "is a URL, not a VISA resource" in r.stderr, r.stderr
    finally:
        board.terminate()
        board.wait(timeout=10)


def test_sim_board_refuses_a_driver_it_does_not_simulate(tmp_path):
    r = _run("sim-board", "--board", "osris-16x16", cwd=tmp_path)
    assert r.returncode == 1
    assert "uses driver 'osris'" in r.stderr and "rfctl sim-bench --board osris-16x16" \
        in r.stderr


def test_ctrl_c_stops_the_simulators_with_130(tmp_path):
    """Ctrl-C (SIGINT) is the way to stop sim-board and sim-bench: exit 130, one line."""
    import signal

    for argv in (["sim-board", "--listen", f"socket://127.0.0.1:{free_port()}"],
                 ["sim-board", "--board", "bias-dma-4x8", "--listen",
                  f"socket://127.0.0.1:{free_port()}"],
                 ["sim-bench"]):
        p = subprocess.Popen([*RFCTL, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path)
        assert p.stdout.readline(), argv  # listening
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 130, (argv, err)
        assert err.strip() == "rfctl: interrupted", (argv, err)


def test_sim_bench_and_lab_refuse_mismatched_arguments(tmp_path):
    """A bench panel that does not match the board's phase bank is refused before
    serving (it used to crash the simulated meter on the first reading); --reference is
    'optimum' or an element index (a usage error otherwise)."""
    r = _run("sim-bench", "--rows", "3", "--cols", "5", cwd=tmp_path)
    assert r.returncode == 1
    assert "--rows 3 × --cols 5 = 15, but board sim-lab-8x8's phase bank has 64" in r.stderr
    # the one-bit bench has no panel or probe to set: refused, not ignored
    r = _run("sim-bench", "--board", "osris-16x16", "--rows", "17", "--probe-phi", "0.1",
             cwd=tmp_path)
    assert r.returncode == 1 and "--rows, --probe-phi: do not apply to the one-bit bench" \
        in r.stderr, r.stderr
    r = _run("lab", "calibrate", "--url", "socket://127.0.0.1:9", "--meter",
             "TCPIP::127.0.0.1::9::SOCKET", "--reference", "foo", cwd=tmp_path)
    assert r.returncode == 2 and "neither 'optimum' nor an element index" in r.stderr
