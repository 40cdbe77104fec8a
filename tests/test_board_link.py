"""Atomic programming over the rfctl protocol: in process, and through pyserial to the
simulated board on a pseudo-terminal and on a loopback socket."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rfctl.drivers.protocol import decode_frame
from rfctl.drivers.rfctl_board import RfctlBoard, open_rfctl_board
from rfctl.drivers.transport import InProcessTransport, SerialTransport
from rfctl.sims.simboard import Faults, SimBoardFirmware
from rfctl.sims.simserver import SimServer

from rfctl.cli import main
from rfctl.config import load_config, parse_config
from rfctl.errors import (
    BusyError,
    DeviceError,
    DeviceTimeoutError,
    HardwareConstraintError,
    NakError,
    ProgramError,
)
from rfctl.hal import quantize
from rfctl.hal.image import delta_writes, image_crc, pack_image
from rfctl.hal.program import (
    MAX_ATTEMPTS,
    board_key,
    program,
    program_many,
    select_beam,
    store_beam,
)
from rfctl.optimize.steering import steering_design
from rfctl.state import ArrayState

PROFILE = load_config("sim-dbraa-14x14")
SCENARIO = load_config("dbraa-14x14")


def images(n: int) -> list:
    return [quantize(steering_design(SCENARIO, k).state, PROFILE) for k in range(n)]


IMAGES = images(3)


def board(faults: Faults | None = None, profile=PROFILE,
          **link) -> tuple[RfctlBoard, SimBoardFirmware]:
    if link:
        profile = profile.model_copy(update={"link": profile.link.model_copy(update=link)})
    fw = SimBoardFirmware.from_profile(profile, faults=faults)
    return open_rfctl_board(profile, firmware=fw), fw


def test_program_verify_and_delta() -> None:
    dev, fw = board()
    r1 = program(dev, IMAGES[0])
    assert r1.payload_bytes == r1.full_bytes == 295
    assert bytes(fw.active) == dev.verified_active == dev.read_active()
    # a second image with the same switches, diodes and feeds: only phases are written
    r2 = program(dev, IMAGES[1])
    assert 0 < r2.payload_bytes <= 147 and r2.writes == 1
    assert bytes(fw.active) == pack_image(IMAGES[1], dev.info(), None)
    # the same image again writes nothing
    assert program(dev, IMAGES[1]).payload_bytes == 0


def test_image_for_another_layout_is_refused_before_a_byte_is_sent() -> None:
    dev, fw = board()
    other = parse_config({**load_config("sim-dbraa-14x14").model_dump(),
                          "banks": [{"name": "phase", "kind": "phase", "count": 196,
                                     "bits": 5}]})
    img = quantize(ArrayState(phases=np.zeros(196)), other)
    before = dev.stats.bytes_tx
    with pytest.raises(HardwareConstraintError, match="5 bits"):
        program(dev, img)
    assert dev.stats.bytes_tx == before and fw.counters.latches == 0


def test_board_with_another_layout_is_refused_at_connect() -> None:
    fw = SimBoardFirmware.from_profile(load_config("sim-dma-4x8"))
    fw.model = PROFILE.model
    with pytest.raises(HardwareConstraintError, match="layout"):
        RfctlBoard(PROFILE, InProcessTransport(fw))


def test_latch_that_does_not_take_leaves_previous_image() -> None:
    dev, fw = board()
    program(dev, IMAGES[0])
    prev = bytes(fw.active)
    fw.faults.latch_fails = 1.0
    with pytest.raises(ProgramError, match="latch did not take") as ei:
        program(dev, IMAGES[1])
    assert ei.value.holds == {dev.name: "previous"}
    assert bytes(fw.active) == prev
    fw.faults.latch_fails = 0.0
    program(dev, IMAGES[1])  # recovers: staged is re-synced first
    assert bytes(fw.active) == pack_image(IMAGES[1], dev.info(), None)


def test_reset_in_the_middle_of_a_transfer() -> None:
    dev, fw = board(chunk=32)
    program(dev, IMAGES[0])
    prev = bytes(fw.active)
    fw.faults.reset_mid_transfer = 1.0
    with pytest.raises(ProgramError) as ei:
        program(dev, IMAGES[1])
    assert ei.value.holds == {dev.name: "previous"}
    assert bytes(fw.active) == prev and fw.counters.reboots >= 1
    # the driver noticed the reboot, re-identified, and kept the cache (CRC re-checked)
    assert dev.verified_active == prev
    fw.faults.reset_mid_transfer = 0.0
    program(dev, IMAGES[1])


def test_busy_naks_and_corruption_are_retried() -> None:
    dev, fw = board(Faults(busy=0.3, corrupt_rx=0.002, corrupt_tx=0.002, seed=4), retries=10,
                    chunk=64)
    for img in IMAGES:
        res = program(dev, img)
        assert bytes(fw.active) == pack_image(img, dev.info(), None)
    assert dev.stats.retries > 0 and res.crc == image_crc(bytes(fw.active))


def test_power_cycle_after_latch_is_resolved_by_active_crc() -> None:
    dev, fw = board()
    program(dev, IMAGES[0])
    fw.faults.power_cycle = 1.0  # every request executes, then the board reboots silently
    try:
        with pytest.raises(ProgramError) as ei:
            program(dev, IMAGES[1])
    finally:
        fw.faults.power_cycle = 0.0
    held = ei.value.holds[dev.name]
    expect = {"previous": pack_image(IMAGES[0], dev.info(), None),
              "new": pack_image(IMAGES[1], dev.info(), None)}
    assert held in ("previous", "new", "unknown")
    if held != "unknown":
        assert bytes(fw.active) == expect[held]
    assert bytes(fw.active) in expect.values()  # never a mixture


def test_beams_store_and_select_and_kept_in_nvm_across_reboot() -> None:
    dev, fw = board()
    program(dev, IMAGES[0])
    crcs = [store_beam(dev, s, img) for s, img in enumerate(IMAGES)]
    assert bytes(fw.active) == pack_image(IMAGES[0], dev.info(), None)  # unchanged
    for s in (2, 1, 2, 0):
        assert select_beam(dev, s) == crcs[s]
        assert image_crc(bytes(fw.active)) == crcs[s]
    program(dev, IMAGES[1])  # after a select, programming still verifies correctly
    dev.reset()
    assert dev.beams == {}  # the host forgets what it knew; the board's NVM keeps the slots
    assert select_beam(dev, 2, crcs[2]) == crcs[2] == image_crc(bytes(fw.active))
    with pytest.raises(ProgramError, match="EMPTY_SLOT") as ei:
        select_beam(dev, 7, crcs[2])
    nak = ei.value.cause.cause  # ProgramError ← StageError ← the board's refusal
    assert isinstance(nak, NakError) and nak.code == 6 and nak.command == "BEAM_SELECT"
    with pytest.raises(ProgramError, match="does not exist"):
        select_beam(dev, 16, crcs[2])


def test_program_many_stage_all_then_latch_all() -> None:
    (a, fa), (b, fb) = board(), board()
    b.name = "board-b"
    program_many([(a, IMAGES[0]), (b, IMAGES[0])])
    prev_a, prev_b = bytes(fa.active), bytes(fb.active)
    fb.faults.reset_mid_transfer = 1.0  # b fails while staging: nothing is latched
    with pytest.raises(ProgramError, match="nothing latched") as ei:
        program_many([(a, IMAGES[1]), (b, IMAGES[1])])
    assert ei.value.holds == {a.name: "previous", b.name: "previous"}
    assert bytes(fa.active) == prev_a and bytes(fb.active) == prev_b
    fb.faults.reset_mid_transfer = 0.0
    fb.faults.latch_fails = 1.0  # b's latch does not take: a holds new, b previous
    with pytest.raises(ProgramError) as ei:
        program_many([(a, IMAGES[1]), (b, IMAGES[1])])
    assert ei.value.holds == {a.name: "new", b.name: "previous"}
    assert "board-b holds the previous image" in str(ei.value)


def test_wire_log_records_every_frame(caplog) -> None:
    dev, _ = board()
    with caplog.at_level(logging.DEBUG, logger="rfctl.wire"):
        program(dev, IMAGES[0])
    lines = [r.getMessage() for r in caplog.records if r.name == "rfctl.wire"]
    # ACTIVE_CRC (a new session: is the image already active?), 3 writes, WRITE_LATCH
    assert sum(m.startswith("tx ") for m in lines) == 5
    assert sum(m.startswith("rx ") for m in lines) == 5
    assert any("WRITE_LATCH" in m and "seq=" in m for m in lines)


# ------------------------------------------------------------------ through pyserial
@pytest.mark.parametrize("kind", ["pty", "socket"])
def test_serial_path_through_pyserial(kind: str) -> None:
    fw = SimBoardFirmware.from_profile(PROFILE)
    with SimServer(fw, baud=921_600) as srv:
        url = srv.start_pty() if kind == "pty" else srv.start_socket()
        dev = open_rfctl_board(PROFILE, url=url)
        assert isinstance(dev.transport, SerialTransport)
        try:
            for img in IMAGES:
                program(dev, img)
                assert dev.read_active() == bytes(fw.active) == dev.verified_active
        finally:
            dev.close()


def test_busy_pty_port() -> None:
    fw = SimBoardFirmware.from_profile(PROFILE)
    with SimServer(fw) as srv:
        path = srv.start_pty()
        first = SerialTransport(path)
        try:
            with pytest.raises(BusyError, match="in use"):
                SerialTransport(path)
        finally:
            first.close()


def test_busy_socket_board() -> None:
    fw = SimBoardFirmware.from_profile(PROFILE)
    with SimServer(fw) as srv:
        url = srv.start_socket()
        first = open_rfctl_board(PROFILE, url=url)
        # the refusal comes at once; the bound only has to outlast a loaded CI machine's
        # thread scheduling (0.1 s did not, once: a timeout instead of BUSY)
        quick = PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
            update={"timeout_s": 1.0, "retries": 1})})
        try:
            with pytest.raises(BusyError, match="busy"):
                open_rfctl_board(quick, url=url)  # retried within its bound, then refused
        finally:
            first.close()


def test_silent_device_times_out_within_its_bound() -> None:
    # bound: deadline = (retries + 1) × timeout = 3 × 0.1 s; every silence of timeout_s
    # sends the HELLO again, so the board hears exactly 3 (counted, not timed)
    prof = PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
        update={"timeout_s": 0.1, "retries": 2})})
    fw = SimBoardFirmware.from_profile(prof, faults=Faults(silent=True))
    with pytest.raises(DeviceTimeoutError, match="no valid reply"):
        open_rfctl_board(prof, firmware=fw)
    assert fw.counters.frames == 3
    fw = SimBoardFirmware.from_profile(prof, faults=Faults(silent=True))
    with SimServer(fw) as srv:  # the same through a pseudo-terminal
        with pytest.raises(DeviceTimeoutError, match="no valid reply"):
            open_rfctl_board(prof, url=srv.start_pty())
    assert 1 <= fw.counters.frames <= 4


# ------------------------------------------------------------------ CLI
def test_cli_dry_run_opens_no_port(tmp_path: Path) -> None:
    st = steering_design(SCENARIO).state
    st.save(tmp_path / "s.json")
    prof = tmp_path / "b.toml"
    text = (Path(load_config("sim-dbraa-14x14").base_dir) / "sim-dbraa-14x14.toml").read_text()
    prof.write_text(text.replace('url = "sim://"', 'url = "/dev/does-not-exist"'))
    out = io.StringIO()
    assert main(["program", "--board", str(prof), "--state", str(tmp_path / "s.json"),
                 "--dry-run"], out=out) == 0
    text = out.getvalue()
    # four frames: three writes and a write-and-latch (295 image bytes + framing)
    assert "no port opened" in text and "4 frames, 367 bytes" in text


def test_cli_program_and_beams_through_socket(tmp_path: Path) -> None:
    st = steering_design(SCENARIO).state
    st.save(tmp_path / "s.json")
    fw = SimBoardFirmware.from_profile(PROFILE)
    log_file = tmp_path / "wire.log"
    with SimServer(fw) as srv:
        url = srv.start_socket()
        out = io.StringIO()
        assert main(["--log-wire", str(log_file), "program", "--board", "sim-dbraa-14x14",
                     "--state", str(tmp_path / "s.json"), "--url", url], out=out) == 0
        assert "read-back matches" in out.getvalue()
        out = io.StringIO()
        assert main(["beams", "store", "3", "--board", "sim-dbraa-14x14", "--state",
                     str(tmp_path / "s.json"), "--url", url], out=out) == 0
        crc = out.getvalue().split()[-1]
        out = io.StringIO()
        assert main(["beams", "select", "3", "--crc", crc, "--board", "sim-dbraa-14x14",
                     "--url", url], out=out) == 0
        assert crc in out.getvalue()
    assert "LATCH" in log_file.read_text()


def test_sim_board_command_serves_pyserial_clients() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rfctl", "sim-board", "--board",
                             "sim-dbraa-14x14", "--listen", "socket://127.0.0.1:0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split(";")[0].strip()
        assert url.startswith("socket://127.0.0.1:")
        dev = open_rfctl_board(PROFILE, url=url)
        program(dev, IMAGES[2])
        assert dev.read_active() == dev.verified_active
        dev.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_drivers_are_found_through_entry_points() -> None:
    from importlib.metadata import entry_points

    from rfctl.errors import ConfigError
    from rfctl.hal.discovery import open_device

    names = {ep.name for ep in entry_points(group="rfctl.drivers")}
    assert {"rfctl-serial", "osris", "visa-bias"} <= names
    bad = PROFILE.model_copy(update={"driver": "no-such-driver"})
    with pytest.raises(ConfigError, match="nothing named 'no-such-driver' is installed"):
        open_device(bad)


def test_partial_image_keeps_the_other_banks() -> None:
    """An image that leaves banks out programs only its banks; on a board whose image
    is unknown the rest is read back first and kept."""
    dev, fw = board()
    program(dev, IMAGES[0])
    before = fw.bank_bytes()
    with pytest.raises(BusyError, match="session with another host"):
        open_rfctl_board(PROFILE, firmware=fw)  # the first session is live: refused
    dev.close()  # BYE: the board is free at once
    dev2 = open_rfctl_board(PROFILE, firmware=fw)  # a new session: image unknown
    st = steering_design(SCENARIO, 2).state
    P = np.zeros((13, 13), bool)
    P[1, 1] = P[1, 8] = P[8, 1] = P[8, 8] = True
    img = quantize(ArrayState(selection=P), PROFILE)  # pin + feed banks only
    assert set(img.banks) == {"pin", "feed"} and st is not None
    program(dev2, img)
    after = fw.bank_bytes()
    assert after["phase"] == before["phase"] and after["rf_switch"] == before["rf_switch"]
    assert after["pin"] != before["pin"]


# ------------------------------------------------------------------ issue 10 regressions
class DyingTransport(InProcessTransport):
    """Delivers the n-th write to the board, then the link dies (the reply is lost)."""

    def __init__(self, fw, die_on_write: int) -> None:
        super().__init__(fw)
        self.n = 0
        self.die_on_write = die_on_write

    def write(self, data: bytes) -> None:
        self.n += 1
        super().write(data)
        if self.n == self.die_on_write:
            self._rx.clear()
            self.closed = True
            raise DeviceError("link lost (test)")

    def read(self, timeout: float) -> bytes:
        if self.closed:
            raise DeviceError("link lost (test)")
        return super().read(timeout)


@pytest.mark.parametrize("reopen", [True, False])
def test_link_loss_after_the_latch_reconnects_and_asks_the_board(reopen: bool) -> None:
    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE, firmware=fw)
    program(dev, IMAGES[0])
    prev = bytes(fw.active)
    # the next write carries every frame of the program, WRITE_LATCH last: it executes,
    # and the link dies before any reply comes back
    dev.transport = DyingTransport(fw, die_on_write=1)
    dev._reopen = (lambda: InProcessTransport(fw)) if reopen else None
    new = pack_image(IMAGES[1], dev.info(), prev)
    if reopen:
        program(dev, IMAGES[1])  # the board, asked after the reconnect, says: new
        assert bytes(fw.active) == new and dev.stats.reconnects == 1
    else:
        with pytest.raises(ProgramError, match="could not be asked") as ei:
            program(dev, IMAGES[1])
        assert ei.value.holds == {dev.name: "unknown"} and bytes(fw.active) == new


def test_every_failure_of_program_has_holds() -> None:
    """A failed pre-read (partial image, board silent) is a ProgramError, not a bare
    StageError/DeviceError."""
    dev, fw = board(timeout_s=0.05, retries=1)
    fw.faults.silent = True
    P = np.zeros((13, 13), bool)
    P[1, 1] = P[1, 8] = P[8, 1] = P[8, 8] = True
    img = quantize(ArrayState(selection=P), PROFILE)
    with pytest.raises(ProgramError) as ei:
        program(dev, img)
    assert ei.value.holds == {dev.name: "previous"}
    with pytest.raises(ProgramError) as ei:
        store_beam(dev, 0, IMAGES[0])
    assert ei.value.holds == {dev.name: "previous"}


class DropFirstWrite(InProcessTransport):
    """Loses the first WRITE_STAGED frame on its way to the board, once."""

    def __init__(self, fw) -> None:
        super().__init__(fw)
        self.done = False

    def write(self, data: bytes) -> None:
        if not self.done:
            frames = data.split(b"\x00")
            for k, f in enumerate(frames):
                if f and decode_frame(f).cmd == 0x02:
                    self.done = True
                    data = b"\x00".join(frames[:k] + frames[k + 1:])
                    break
        super().write(data)


def test_a_latch_refused_before_a_lost_write_is_executed_afresh() -> None:
    """The board executes WRITE_LATCH before the lost write arrives again and refuses
    it (CRC_MISMATCH). The host re-sends the latch with a new sequence number after the
    write, instead of getting the cached refusal again."""
    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
        update={"chunk": 64})}), firmware=fw)
    program(dev, IMAGES[2])
    dev.transport = DropFirstWrite(fw)
    res = program(dev, IMAGES[0])  # a delta of several writes, the first one lost
    assert bytes(fw.active) == pack_image(IMAGES[0], dev.info(), None)
    # the lost write sent once more, and the latch once more under a new sequence number
    assert res.writes > 1 and res.stats.retries == 1
    assert res.stats.frames_tx == res.writes + 2
    assert fw.counters.replays == 0 and fw.counters.latches == 2


def test_a_new_sessions_first_program_asks_the_board_ahead_of_its_writes() -> None:
    """Board truth without a round trip of its own: ACTIVE_CRC goes out ahead of the
    writes and the latch waits for its answer — so a write lost meanwhile is sent again
    before the latch, and an image the board already shows is not latched again."""
    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
        update={"chunk": 64})}), firmware=fw)
    dev.transport = DropFirstWrite(fw)
    res = program(dev, IMAGES[0])
    assert bytes(fw.active) == pack_image(IMAGES[0], dev.info(), None)
    # ACTIVE_CRC, the writes, the lost one again, one WRITE_LATCH: no refused latch
    assert res.stats.retries == 1 and res.stats.frames_tx == res.writes + 2
    assert fw.counters.latches == 1 and dev.asked_active_crc == fw._crc(b"\0" * len(fw.active))
    dev.close()
    dev = open_rfctl_board(PROFILE, firmware=fw)  # a new session, the image already there
    res = program(dev, IMAGES[0])
    assert fw.counters.latches == 1 and res.crc == fw._crc(fw.active)
    assert dev.verified_active == bytes(fw.active) and dev.staged_clean


def test_delta_between_images_of_other_lengths_is_an_rfctl_error() -> None:
    dev, _ = board()
    with pytest.raises(HardwareConstraintError, match="layout has 295"):
        delta_writes(b"\x00" * 4, b"\x00" * 295, dev.info(), chunk=64)


def test_same_image_in_a_new_session_asks_the_board() -> None:
    """Issue 10, case 1, in process: every session starts at sequence 1; the second
    session's first requests are never answered from the first session's cache."""
    fw = SimBoardFirmware.from_profile(PROFILE)
    for k in range(4):
        dev = open_rfctl_board(PROFILE, firmware=fw)
        assert dev.read_active() == bytes(fw.active)
        res = program(dev, IMAGES[k % 2])
        assert bytes(fw.active) == pack_image(IMAGES[k % 2], dev.info(), None)
        assert res.payload_bytes == 295  # a new session never trusts an old copy
        dev.close()
    assert fw.counters.sessions == 4


def test_a_vanished_host_is_replaced_after_the_lease() -> None:
    """The first host never says BYE (it crashed). A second host is refused while the
    session is live, and gets the board once the board's lease has run out (the board's
    clock is injected: no sleeping)."""
    now = [0.0]
    fw = SimBoardFirmware.from_profile(PROFILE, lease_s=2.0, clock=lambda: now[0])
    first = open_rfctl_board(PROFILE, firmware=fw)
    program(first, IMAGES[0])
    quick = PROFILE.model_copy(update={"link": PROFILE.link.model_copy(
        update={"timeout_s": 0.05, "retries": 1})})
    with pytest.raises(BusyError):
        open_rfctl_board(quick, firmware=fw)
    now[0] += 2.5
    second = open_rfctl_board(quick, firmware=fw)
    assert second.read_active() == bytes(fw.active)
    with pytest.raises(ProgramError, match="another host took it over"):
        program(first, IMAGES[1])  # the first host's session is gone: refused, not run
    assert bytes(fw.active) == pack_image(IMAGES[0], second.info(), None)


def test_sim_board_help_says_where_memory_lives(capsys) -> None:
    assert main(["sim-board", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--nvm FILE" in text and "lost when this process exits" in text


def test_a_board_without_beam_memory_refuses_beams() -> None:
    from rfctl.drivers.osris import open_osris
    from rfctl.sims.osris_firmware import OsrisFirmwareSim

    dev = open_osris(load_config("osris-16x16"), firmware=OsrisFirmwareSim())
    assert dev.capabilities.beam_slots == 0 and not dev.capabilities.staged_buffer
    img = quantize(ArrayState(phases=np.zeros(256)), load_config("osris-16x16"))
    with pytest.raises(ProgramError, match="0 slot"):
        store_beam(dev, 0, img)


def test_drivers_implement_the_device_seam_with_honest_capabilities() -> None:
    from rfctl.drivers.osris import open_osris
    from rfctl.sims.osris_firmware import OsrisFirmwareSim

    from rfctl.hal.device import Device

    dev, _ = board()
    ris = open_osris(load_config("osris-16x16"), firmware=OsrisFirmwareSim())
    assert isinstance(dev, Device) and isinstance(ris, Device)
    c = dev.capabilities
    assert (c.staged_buffer, c.atomic_latch, c.beam_slots, c.sessions) == (True, True, 16, True)
    assert c.max_chunk == dev.max_chunk
    c = ris.capabilities
    assert (c.staged_buffer, c.atomic_latch, c.beam_slots, c.sessions) == (False, True, 0, False)


def test_plans_are_checked_against_the_board_not_the_hosts_memory() -> None:
    """Someone changes the board behind the host's back (a debugger, a second port):
    the same image again is not a no-op, and a delta on the stale base is refused by the
    board's CRC check and replaced by a whole-image write."""
    dev, fw = board()
    program(dev, IMAGES[0])
    other = bytearray(pack_image(IMAGES[0], dev.info(), None))
    other[-1] ^= 1  # a feed code changed behind the host's back
    other = bytes(other)
    fw.active = bytearray(other)
    fw.staged = bytearray(other)
    res = program(dev, IMAGES[0])  # the host's copy says "nothing to do"; the board not
    assert res.payload_bytes == 295 and bytes(fw.active) == pack_image(IMAGES[0],
                                                                       dev.info(), None)
    fw.active = bytearray(other)
    fw.staged = bytearray(other)
    res = program(dev, IMAGES[1])  # a phase-only delta against a base that is not there
    assert bytes(fw.active) == pack_image(IMAGES[1], dev.info(), None)
    assert res.payload_bytes == 295  # refused by CRC, then the whole image


# ------------------------------------------------- issue 10, round 2 (a new user's report)
def test_program_many_reports_every_board_of_the_same_profile() -> None:
    """Two boards of one profile, the second's latch never takes: `holds` had one entry
    ({'sim-dbraa-14x14': 'previous'}) while the first board held the new image."""
    (a, fa), (b, fb) = board(), board()
    program_many([(a, IMAGES[0]), (b, IMAGES[0])])
    prev_b = bytes(fb.active)
    fb.faults.latch_fails = 1.0
    with pytest.raises(ProgramError, match="mixed outcome") as ei:
        program_many([(a, IMAGES[1]), (b, IMAGES[1])])
    assert ei.value.holds == {"sim-dbraa-14x14#0": "new", "sim-dbraa-14x14#1": "previous"}
    assert bytes(fa.active) == pack_image(IMAGES[1], a.info(), None)  # true for board 0
    assert bytes(fb.active) == prev_b  # and for board 1
    fb.faults.latch_fails = 0.0
    fb.faults.reset_mid_transfer = 1.0  # staging fails: every board keeps its image
    with pytest.raises(ProgramError, match="nothing latched") as ei:
        program_many([(a, IMAGES[2]), (b, IMAGES[2])])
    assert ei.value.holds == {"sim-dbraa-14x14#0": "previous", "sim-dbraa-14x14#1": "previous"}


def test_program_many_keys_boards_of_one_name_by_url() -> None:
    (a, _), (b, _) = board(), board()
    a.url, b.url = "socket://127.0.0.1:1", "socket://127.0.0.1:2"
    assert [board_key(d, i, [a, b]) for i, d in enumerate([a, b])] == [
        "sim-dbraa-14x14@socket://127.0.0.1:1", "sim-dbraa-14x14@socket://127.0.0.1:2"]
    a.name = "left"
    assert board_key(a, 0, [a, b]) == "left"


def test_program_many_retries_an_untaken_latch_until_the_deadline() -> None:
    """A board whose latch does not take is staged again and latched again (the other
    boards already latched): the call succeeds once the latch takes, and gives up after
    MAX_ATTEMPTS with the true holdings."""
    (a, fa), (b, fb) = board(), board()
    b.name = "board-b"
    program_many([(a, IMAGES[0]), (b, IMAGES[0])])
    calls: list[int] = []
    latch = b.latch

    def counted(crc: int, until: int) -> int:
        calls.append(crc)
        if len(calls) == until:
            fb.faults.latch_fails = 0.0
        return latch(crc)

    fb.faults.latch_fails = 1.0
    b.latch = lambda crc: counted(crc, 3)  # takes at the third attempt
    program_many([(a, IMAGES[1]), (b, IMAGES[1])])
    assert len(calls) == 3 and fa.counters.latches == 2
    want = pack_image(IMAGES[1], b.info(), None)
    assert bytes(fa.active) == bytes(fb.active) == want == b.verified_active
    calls.clear()
    fb.faults.latch_fails = 1.0
    prev = bytes(fb.active)
    b.latch = lambda crc: counted(crc, -1)  # never takes
    with pytest.raises(ProgramError, match=f"after {MAX_ATTEMPTS} attempts") as ei:
        program_many([(a, IMAGES[2]), (b, IMAGES[2])])
    assert ei.value.holds == {a.name: "new", b.name: "previous"}
    assert len(calls) == MAX_ATTEMPTS and bytes(fb.active) == prev


def test_untaken_latches_and_reboots_are_retried_until_the_deadline() -> None:
    """A latch that did not take, and a reboot during a write, failed the call after one
    retry; now they are re-planned from the board's truth until the operation deadline
    (bounded by MAX_ATTEMPTS), then fail with the true holding."""
    for faults in (Faults(latch_fails=0.5, seed=3), Faults(reset_mid_transfer=0.15, seed=3)):
        dev, fw = board(faults, chunk=64)
        for img in IMAGES:
            program(dev, img)
            assert bytes(fw.active) == pack_image(img, dev.info(), None)
    dev, fw = board()
    program(dev, IMAGES[0])
    prev = bytes(fw.active)
    fw.faults.latch_fails = 1.0
    before = fw.counters.latches
    with pytest.raises(ProgramError, match=f"after {MAX_ATTEMPTS} attempt") as ei:
        program(dev, IMAGES[1])
    assert ei.value.holds == {dev.name: "previous"} and bytes(fw.active) == prev
    assert fw.counters.latches - before == MAX_ATTEMPTS


def test_cli_program_names_the_board_it_programmed(tmp_path: Path) -> None:
    """Without --url (the profile's sim:// link) success named no target."""
    steering_design(SCENARIO).state.save(tmp_path / "s.json")
    out = io.StringIO()
    assert main(["program", "--board", "sim-dbraa-14x14", "--state",
                 str(tmp_path / "s.json")], out=out) == 0
    text = out.getvalue()
    assert f"at {PROFILE.link.url} (in-process simulated board)" in text, text


def test_one_write_is_singular(tmp_path: Path) -> None:
    """A 56-byte image fits one write frame: "in 1 write", not "in 1 writes"."""
    ArrayState(phases=np.full(64, 0.5)).save(tmp_path / "s.json")
    out = io.StringIO()
    assert main(["program", "--board", "sim-lab-8x8", "--state", str(tmp_path / "s.json")],
                out=out) == 0
    assert " in 1 write, " in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("when", ["before the stage", "after the latch"])
def test_ctrl_c_during_program_says_what_the_board_holds(when, monkeypatch) -> None:
    """A Ctrl-C in the middle of program(): the board is asked, and the ProgramError
    (chained from the KeyboardInterrupt, so the CLI exits 130) says which image it holds
    — the previous one when nothing was staged, the new one when the latch went out."""
    dev, fw = board()
    program(dev, IMAGES[0])
    first = bytes(fw.active)
    real = dev.stage

    def stage(*a, **kw):
        if when == "before the stage":
            raise KeyboardInterrupt
        real(*a, **kw)
        raise KeyboardInterrupt  # after the board latched

    monkeypatch.setattr(dev, "stage", stage)
    with pytest.raises(ProgramError) as err:
        program(dev, IMAGES[1])
    monkeypatch.undo()
    e = err.value
    assert isinstance(e.__cause__, KeyboardInterrupt) and "interrupted (Ctrl-C)" in str(e)
    if when == "before the stage":
        assert e.holds[dev.name] == "previous" and bytes(fw.active) == first
    else:
        assert e.holds[dev.name] == "new" and bytes(fw.active) != first
    # the host's copy follows the board: the next program of the held image is a no-op
    held = IMAGES[0] if when == "before the stage" else IMAGES[1]
    assert program(dev, held).payload_bytes == 0
