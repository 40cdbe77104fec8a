"""Stateful test: program / store / select / reset / power-cycle sequences against the
simulated board with faults switched on.

Invariant after every program call: the board's active image is the new one (the call
succeeded) or the previous one (it raised ProgramError saying so) — never a mixture — and
every failure of program is a ProgramError. When the error says "unknown" (the link
failed after a latch request left the host), the board still holds one of the two.
Host sessions end and new ones open in between.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from rfctl.drivers.rfctl_board import RfctlBoard
from rfctl.drivers.transport import InProcessTransport
from rfctl.sims.simboard import Faults, SimBoardFirmware

from rfctl.config import parse_config
from rfctl.errors import ConfigError, ProgramError
from rfctl.hal.device import DeviceInfo, layout_from_profile
from rfctl.hal.image import BankImage, DeviceImage, pack_image
from rfctl.hal.program import program, select_beam, store_beam

PROFILE = parse_config({
    "kind": "board", "name": "fuzz", "model": "rfctl-sim",
    "link": {"url": "sim://", "timeout_s": 0.01, "retries": 3, "chunk": 8},
    "banks": [
        {"name": "ph", "kind": "phase", "count": 24, "bits": 5},
        {"name": "sw", "kind": "switch_matrix", "antennas": 24, "rf_chains": 2},
    ],
})


INFO = DeviceInfo(model="rfctl-sim", firmware="", banks=layout_from_profile(PROFILE))


class TickClock:
    """The host's clock: 10 µs per reading, so that an operation's deadline is a bound on
    the driver's work, not on how busy the machine is (the results replay exactly)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1e-5
        return self.t


def open_board(profile, fw: SimBoardFirmware, session: int) -> RfctlBoard:
    """The driver on the in-process link with a :class:`TickClock`."""
    return RfctlBoard(profile, InProcessTransport(fw), session=session, clock=TickClock())


def make_image(seed: int) -> DeviceImage:
    rng = np.random.default_rng(seed)
    ph = rng.integers(0, 32, 24)
    sw = rng.integers(0, 2, 48)
    z24, z48 = np.zeros(24), np.zeros(48)
    return DeviceImage("fuzz", "rfctl-sim", {
        "ph": BankImage("ph", "phase", ph, 5, z24, z24, z24, "rad"),
        "sw": BankImage("sw", "switch_matrix", sw, 1, sw, sw, z48),
    })


class ProgramMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**31 - 1),
                corrupt=st.sampled_from([0.0, 0.003, 0.01]),
                latch_fails=st.sampled_from([0.0, 0.1]),
                reset_mid=st.sampled_from([0.0, 0.05]),
                power_cycle=st.sampled_from([0.0, 0.02]),
                busy=st.sampled_from([0.0, 0.05]))
    def setup(self, seed, corrupt, latch_fails, reset_mid, power_cycle, busy) -> None:
        self.faults = Faults(corrupt_rx=corrupt, corrupt_tx=corrupt, drop_rx=corrupt / 2,
                             drop_tx=corrupt / 2, latch_fails=latch_fails,
                             reset_mid_transfer=reset_mid, power_cycle=power_cycle,
                             busy=busy, seed=seed)
        self.now = [0.0]  # the board's clock (its session lease), advanced by the test
        self.fw = SimBoardFirmware.from_profile(PROFILE, faults=self.faults,
                                                clock=lambda: self.now[0])
        clean = Faults()
        self.fw.faults = clean  # connect on a clean link, then switch faults on
        self.sessions = 1
        self.dev = open_board(PROFILE, self.fw, self.sessions)
        self.fw.faults = self.faults
        self.stored: dict[int, bytes] = {}
        self.outcomes = {"ok": 0, "previous": 0, "new": 0, "unknown": 0,
                         "store_failed": 0, "unknown_slot": 0}

    def _bytes(self, img: DeviceImage) -> bytes:
        # from the profile, independently of what the driver currently believes
        return pack_image(img, INFO, None)

    def _judge(self, exc: ProgramError, prev: bytes, new: bytes) -> None:
        """A failed program or select: the board holds what the error says it holds."""
        held = exc.holds[self.dev.name]
        self.outcomes[held] += 1
        active = bytes(self.fw.active)
        if held == "previous":
            assert active == prev, "error says previous, board holds something else"
        elif held == "new":
            assert active == new, "error says new, board holds something else"
        else:
            assert active in (prev, new), "mixed image after an unknown outcome"

    @rule(seed=st.integers(0, 10_000))
    def program(self, seed: int) -> None:
        img = make_image(seed)
        new = self._bytes(img)
        prev = bytes(self.fw.active)
        try:
            program(self.dev, img)
        except ProgramError as exc:
            self._judge(exc, prev, new)
        else:
            self.outcomes["ok"] += 1
            assert bytes(self.fw.active) == new, "success reported but image differs"
            assert self.dev.verified_active == new

    @rule(slot=st.integers(0, 3), seed=st.integers(0, 10_000))
    def store(self, slot: int, seed: int) -> None:
        img = make_image(seed)
        prev = bytes(self.fw.active)
        try:
            store_beam(self.dev, slot, img)
        except ProgramError as exc:
            # the slot may hold the old or the new beam: the host keeps the old CRC,
            # which the board checks on select
            assert exc.holds == {self.dev.name: "previous"}
            self.outcomes["store_failed"] += 1
        else:
            self.stored[slot] = self._bytes(img)
        assert bytes(self.fw.active) == prev  # storing never touches the active image

    @rule(slot=st.integers(0, 3))
    def select(self, slot: int) -> None:
        prev = bytes(self.fw.active)
        known = slot in self.dev.beams
        try:
            select_beam(self.dev, slot)
        except ConfigError as exc:  # no CRC known for this slot in this session
            assert not known and exc.field == "slot", exc
            self.outcomes["unknown_slot"] += 1
            return
        except ProgramError as exc:
            self._judge(exc, prev, self.stored[slot])
            return
        assert known
        assert bytes(self.fw.active) == self.stored[slot]

    @rule()
    def new_host_session(self) -> None:
        """The host closes and a new one opens (on a clean link, then faults again): it
        must never be answered from the old session's replies."""
        self.dev.close()  # its BYE may be lost: then the lease must run out first
        self.now[0] += self.fw.lease_s + 1
        self.fw.faults = Faults()
        self.sessions += 1
        self.dev = open_board(PROFILE, self.fw, self.sessions)
        self.fw.faults = self.faults
        assert self.dev.verified_active is None  # a new session trusts nothing

    @rule()
    def power_cycle(self) -> None:
        before = bytes(self.fw.active)
        self.fw.reboot("test power cycle")
        assert bytes(self.fw.active) == before  # the active image survives in NVM

    @invariant()
    def active_is_a_whole_image(self) -> None:
        if hasattr(self, "fw"):
            assert len(self.fw.active) == self.fw.size


ProgramMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40,
                                            deadline=None)
TestProgramStateful = ProgramMachine.TestCase


def test_thousand_programs_with_one_percent_corruption() -> None:
    """1 % of bytes corrupted both ways (the 10,000-program run is in benchmarks/):
    no mixed state, every failure a ProgramError that names what the board holds, and
    the faults really bite (some programs fail, most succeed through retries)."""
    prof = PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
        update={"retries": 6, "chunk": 16})})
    fw = SimBoardFirmware.from_profile(prof)
    dev = open_board(prof, fw, 1)
    fw.faults = Faults(corrupt_rx=0.01, corrupt_tx=0.01, seed=11)
    fw.rng = np.random.default_rng(11)
    tally = {"ok": 0, "previous": 0, "new": 0, "unknown": 0}
    for k in range(1000):
        img = make_image(k)
        new, prev = pack_image(img, INFO, None), bytes(fw.active)
        try:
            program(dev, img)
            tally["ok"] += 1
            assert bytes(fw.active) == new
        except ProgramError as exc:
            held = exc.holds[dev.name]
            tally[held] += 1
            assert bytes(fw.active) == {"previous": prev, "new": new}.get(held,
                                                                         bytes(fw.active))
            assert bytes(fw.active) in (prev, new)
    assert 900 < tally["ok"] < 1000, tally  # the faults bite, and retries mostly win
    assert dev.stats.retries > 100, dev.stats
