"""Every numeric option of every command refuses a non-number before doing any work.

The options are found by walking the real parser (``rfctl.cli.build_parser``), so a
command added later is covered without editing this test. An option counts as numeric
when its argparse type is ``int``/``float`` or one of rfctl's argument types (their
``__name__`` is ``int``, ``float`` or ``crc32_value``). Each one gets values no numeric
option may accept — NaN, ±inf, an overflowing literal, a word, an empty string and
−1e300 (every option of rfctl is either non-negative or an angle in [−1, 1]) — with the
command's other required arguments filled in so that only the bad value can stop it.

Judged per case: the exit status is a usage error (2) or a validation error (1), the
message names the option, and the command returns at once. A command that accepted the
value would go on to open a link, serve a port or run an optimizer; it runs in a daemon
thread and a case still running after ``HANG_S`` counts as accepted (a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import threading

import pytest

from rfctl.cli import build_parser, main

BAD_VALUES = ["nan", "inf", "-inf", "1e999", "abc", "", "-1e300"]
HANG_S = 30.0  # a refusal takes milliseconds; this only bounds a command that ran on

# what each command needs besides the option under test (none of it reachable: the
# link URLs point at a closed port, so an accepted value would fail on the link, with a
# message that does not name the option)
CLOSED = "socket://127.0.0.1:9"
REQUIRED = {
    "lab": ["sweep", "--meter", "TCPIP::127.0.0.1::9::SOCKET", "--url", CLOSED],
    "optimize": ["sub6g", "--scenario", "dbraa-14x14", "--out", "never-written.json"],
    "beams": ["select", "0", "--board", "sim-lab-8x8", "--url", CLOSED],
    "sim-board": ["--listen", "socket://127.0.0.1:0"],
    "sim-bench": [],
    "program": ["--board", "sim-lab-8x8", "--state", "missing.json", "--url", CLOSED],
    "demo": ["--no-board"],
    "quantize": ["missing.json", "--board", "sim-lab-8x8"],
    "check": ["missing.json"],
}
# a positional numeric argument: where it goes in the argument list
POSITIONAL_AT = {("beams", "slot"): 1}


def _numeric(action: argparse.Action) -> bool:
    t = action.type
    return t in (int, float) or getattr(t, "__name__", "") in ("int", "float", "crc32_value")


def _cases() -> list[tuple[str, str, str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for cmd, p in sub.choices.items():
        for a in p._actions:
            if _numeric(a):
                name = a.option_strings[-1] if a.option_strings else a.dest
                out += [(cmd, name, v) for v in BAD_VALUES]
    return out


CASES = _cases()


def test_the_walk_finds_the_numeric_options():
    """The walk itself: it must see options of the long-running commands too."""
    found = {(c, o) for c, o, _ in CASES}
    for expected in [("lab", "--points"), ("lab", "--budget"), ("lab", "--frequency"),
                     ("optimize", "--realisation"), ("sim-board", "--baud"),
                     ("sim-bench", "--noise"), ("beams", "slot"), ("demo", "--realisation")]:
        assert expected in found, expected
    assert len(found) >= 40


def _argv(cmd: str, opt: str, value: str) -> list[str]:
    argv = [cmd, *REQUIRED.get(cmd, [])]
    at = POSITIONAL_AT.get((cmd, opt))
    if at is not None:
        argv[at + 1] = value
    else:
        argv += [f"{opt}={value}"]  # '=' so that '-inf' is not taken for an option
    return argv


@pytest.mark.parametrize(("cmd", "opt", "value"), CASES,
                         ids=[f"{c} {o} {v or 'empty'}" for c, o, v in CASES])
def test_a_bad_number_is_refused_naming_the_option(cmd, opt, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = _argv(cmd, opt, value)
    err = io.StringIO()
    result: dict = {}

    def run() -> None:
        with contextlib.redirect_stderr(err):
            result["code"] = main(argv, out=io.StringIO())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG_S)
    assert not t.is_alive(), f"rfctl {' '.join(argv)}: still running: the value was accepted"
    assert result.get("code") in (1, 2), (argv, result, err.getvalue()[-300:])
    text = err.getvalue()
    key = opt.lstrip("-")
    assert key in text or key.replace("-", "_") in text, (argv, text[-300:])
    assert not (tmp_path / "never-written.json").exists()
