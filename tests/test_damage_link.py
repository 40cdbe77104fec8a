"""Programming through a byte-damaging TCP proxy (its own process) at 0.2 % flips, 0.2 %
drops and 0.1 % duplicated bytes, plus connection cuts, between the host and a simulated
board (its own process). After every attempt the reported holding must equal the board's
true image (its NVM file, a separate clean channel): no silent wrong state, no failure
outside ProgramError, and at least 95 % of programs succeed. Opening must succeed in at
least 99 % of attempts (IDENT comes in chunks, each retried on its own).

The default run does a short version; ``-m slow`` runs 2,000 programs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from boardprocs import BoardProcess, ProxyProcess, check_attempt, link_profile, random_image
from rfctl.drivers.rfctl_board import open_rfctl_board
from rfctl.sims.simboard import Faults, SimBoardFirmware

from rfctl.errors import RfctlError

NOISE = {"flip": 0.002, "drop": 0.002, "dup": 0.001}
PROFILE = link_profile(timeout_s=0.5, retries=3)


def run_through_proxy(tmp_path: Path, n_programs: int, n_opens: int, *, cut: float,
                      seed: int) -> dict[str, int]:
    board = BoardProcess(tmp_path / "board.nvm").start()
    proxy = ProxyProcess(board.port, **NOISE, cut=cut, seed=seed)
    rng = np.random.default_rng(seed)
    tally: dict[str, int] = {"opens": 0, "open_failures": 0}
    try:
        for _ in range(n_opens):
            try:
                open_rfctl_board(PROFILE, url=proxy.url).close()
                tally["opens"] += 1
            except RfctlError:
                tally["open_failures"] += 1
        dev = None
        done = 0
        while done < n_programs:
            if dev is None:
                try:
                    dev = open_rfctl_board(PROFILE, url=proxy.url)
                except RfctlError:
                    tally["open_failures"] += 1
                    continue
            check_attempt(dev, random_image(PROFILE, rng), board, tally)
            done += 1
        if dev is not None:
            tally["reconnects"] = dev.stats.reconnects
            tally["retries"] = dev.stats.retries
            dev.close()
    finally:
        proxy.stop()
        board.stop()
    return tally


def judge(tally: dict[str, int], n: int) -> None:
    ok = tally.get("ok", 0)
    assert tally.get("other_rfctl", 0) == 0
    assert ok + tally.get("previous", 0) + tally.get("new", 0) + tally.get("unknown", 0) == n
    assert ok >= 0.95 * n, tally


def test_programs_through_the_damaging_proxy_short(tmp_path: Path) -> None:
    tally = run_through_proxy(tmp_path, 60, 10, cut=2e-5, seed=1)
    judge(tally, 60)
    # ≥ 99 % is judged on 200 opens in the slow test; here one failure in 10 is allowed
    # for a machine stall longer than the 2 s bound
    assert tally["open_failures"] <= 1, tally


@pytest.mark.slow
def test_two_thousand_programs_through_the_damaging_proxy(tmp_path: Path) -> None:
    tally = run_through_proxy(tmp_path, 2000, 200, cut=2e-5, seed=7)
    print("2,000 programs through the damaging proxy:", tally)  # for BENCHMARKS.md (-s)
    judge(tally, 2000)
    assert tally["opens"] >= 0.99 * (tally["opens"] + tally["open_failures"]), tally


def test_ident_under_damage_opens_at_least_99_percent() -> None:
    """In process (fast): 300 opens, each against a board that damages both directions
    at the noise above. The 400-byte IDENT document comes in 48-byte chunks."""
    prof = link_profile()
    failures = 0
    for seed in range(300):
        fw = SimBoardFirmware.from_profile(prof, faults=Faults(
            corrupt_rx=0.002, corrupt_tx=0.002, drop_rx=0.002, drop_tx=0.002, dup_rx=0.001,
            dup_tx=0.001, seed=seed))
        try:
            dev = open_rfctl_board(prof, firmware=fw)
            assert dev.info().banks and len(fw.ident_document()) > 300
        except RfctlError:
            failures += 1
    assert failures <= 3
