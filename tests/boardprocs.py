"""Helpers for tests (and the board-link benchmark) that run a simulated board and a
damaging proxy in their own processes, and read the board's true image through a
separate clean channel: the board's non-volatile memory file, which the board rewrites
atomically at every latch (so, with no latch faults, it is the active image)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from rfctl.config import BoardProfile, load_config
from rfctl.errors import ProgramError, RfctlError
from rfctl.hal import quantize
from rfctl.hal.image import pack_image
from rfctl.hal.program import program
from rfctl.state import ArrayState

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BoardProcess:
    """``rfctl sim-board --nvm FILE`` in its own process on a fixed loopback port."""

    def __init__(self, nvm: Path, *, board: str = "sim-dbraa-14x14", port: int | None = None,
                 baud: int = 0, lease_s: float = 1.0, extra: tuple[str, ...] = ()) -> None:
        self.nvm, self.board, self.baud, self.lease_s = Path(nvm), board, baud, lease_s
        self.extra = tuple(extra)  # more sim-board arguments (faults, seed)
        self.port = port or free_port()
        self.url = f"socket://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> BoardProcess:
        cmd = [sys.executable, "-m", "rfctl", "sim-board", "--board", self.board, "--listen",
               self.url, "--nvm", str(self.nvm), "--lease", str(self.lease_s)]
        if self.baud:
            cmd += ["--baud", str(self.baud)]
        cmd += list(self.extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # printed once the socket listens
        if " at " not in line:
            raise RuntimeError(f"sim-board did not start: {line!r}")
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup, as when power is pulled
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def true_image(self) -> bytes:
        """The board's active image, read from its NVM file (not through the host)."""
        return bytes.fromhex(json.loads(self.nvm.read_text())["active"])


class ProxyProcess:
    """tests/damage_proxy.py in its own process between host and board."""

    def __init__(self, upstream_port: int, *, flip: float, drop: float, dup: float,
                 cut: float = 0.0, seed: int = 0, port: int = 0) -> None:
        cmd = [sys.executable, str(HERE / "damage_proxy.py"), "--upstream",
               f"127.0.0.1:{upstream_port}", "--flip", str(flip), "--drop", str(drop),
               "--dup", str(dup), "--cut", str(cut), "--seed", str(seed), "--port", str(port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        self.url = "socket://" + line.rsplit(" ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=5)


def link_profile(name: str = "sim-dbraa-14x14", **link) -> BoardProfile:
    prof = load_config(name)
    return prof.model_copy(update={"link": prof.link.model_copy(update=link)})


def random_image(profile: BoardProfile, rng: np.random.Generator):
    n = profile.banks[0].count
    return quantize(ArrayState(phases=rng.uniform(-np.pi, np.pi, n)), profile)


def check_attempt(dev, image, board: BoardProcess, tally: dict[str, int]) -> None:
    """Program once and check the invariant: the reported holding equals the board's true
    image read through the clean channel. Counts outcomes in ``tally``; raises
    AssertionError on a silent wrong state, and lets non-rfctl exceptions through."""
    prev = board.true_image()
    new = pack_image(image, dev.info(), prev)
    try:
        program(dev, image)
    except ProgramError as exc:
        held = exc.holds[dev.name]
        tally[held] = tally.get(held, 0) + 1
        truth = board.true_image()
        if held == "previous":
            assert truth == prev, f"reported previous, the board holds another image: {exc}"
        elif held == "new":
            assert truth == new, f"reported new, the board holds another image: {exc}"
        else:
            assert truth in (prev, new), "a mixture after an unknown outcome"
        return
    except RfctlError as exc:  # every failure of program must be a ProgramError
        tally["other_rfctl"] = tally.get("other_rfctl", 0) + 1
        raise AssertionError(
            f"program failed without holds: {type(exc).__name__}: {exc}") from exc
    tally["ok"] = tally.get("ok", 0) + 1
    assert board.true_image() == new, "success reported, the board holds another image"
