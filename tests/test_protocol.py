"""Byte-exact protocol tests (drivers/PROTOCOL.md).

Expected bytes are built here from the specification with independent, plain helpers:
CRC-16/CCITT-FALSE from binascii (check value 0x29B1), and a byte-by-byte reference COBS
encoder written from the COBS paper, itself checked against published vectors.
"""

from __future__ import annotations

import binascii
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rfctl.drivers.protocol import (
    Cmd,
    FrameError,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
)
from rfctl.drivers.rfctl_board import RfctlBoard, plan_frames
from rfctl.drivers.transport import InProcessTransport
from rfctl.sims.simboard import SimBoardFirmware

from rfctl.config import parse_config
from rfctl.hal.image import BankImage, DeviceImage, pack_codes
from rfctl.hal.program import program


def ref_cobs(data: bytes) -> bytes:
    """Reference COBS: emit a code byte = distance to the next zero (max 0xFF)."""
    out, block = [], []
    for i, b in enumerate(data):
        if b:
            block.append(b)
            if len(block) == 254:
                out += [255, *block]
                block = []
                if i == len(data) - 1:
                    return bytes(out)
        else:
            out += [len(block) + 1, *block]
            block = []
    out += [len(block) + 1, *block]
    return bytes(out)


# Published COBS examples (Cheshire & Baker; the Wikipedia table), without delimiter.
VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
]


@pytest.mark.parametrize(("raw", "enc"), VECTORS)
def test_cobs_vectors(raw: bytes, enc: bytes) -> None:
    assert ref_cobs(raw) == enc
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


@given(st.binary(max_size=800))
def test_cobs_matches_reference_and_roundtrips(raw: bytes) -> None:
    enc = cobs_encode(raw)
    assert enc == ref_cobs(raw)
    assert 0 not in enc
    assert cobs_decode(enc) == raw


def test_crc16_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1


SESSION = 0x12345678


def frame(seq: int, cmd: int, payload: bytes, session: int = SESSION) -> bytes:
    """A frame from the spec: version 2, session u32 LE, seq u16 LE, cmd u8, length u16 LE,
    payload, CRC-16/CCITT-FALSE big-endian over all of that; COBS; 0x00 delimiter."""
    body = bytes([2]) + struct.pack("<I", session) + bytes(
        [seq & 0xFF, seq >> 8, cmd, len(payload) & 0xFF, len(payload) >> 8])
    body += payload
    crc = binascii.crc_hqx(body, 0xFFFF)
    return ref_cobs(body + bytes([crc >> 8, crc & 0xFF])) + b"\x00"


def reply(seq: int, cmd: int, status: int, boot: int, data: bytes = b"",
          session: int = SESSION) -> bytes:
    return frame(seq, cmd | 0x80, bytes([status]) + struct.pack("<I", boot) + data, session)


def test_ident_frame_bytes() -> None:
    assert encode_frame(1, Cmd.IDENT, b"\0\0", session=SESSION) == frame(1, 0x01, b"\0\0")
    f = decode_frame(encode_frame(1, Cmd.IDENT, session=SESSION)[:-1])
    assert (f.cmd, f.session, f.version) == (0x01, SESSION, 2)


def test_corrupted_frame_is_rejected() -> None:
    wire = bytearray(encode_frame(7, Cmd.ACTIVE_CRC, session=SESSION)[:-1])
    wire[3] ^= 0x40
    with pytest.raises(FrameError):
        decode_frame(bytes(wire))


def test_version_1_frames_are_told_apart() -> None:
    # an old board's reply: version 1 header (no session), status, boot id u16
    body = bytes([1, 0xFF, 0xFF, 0x81, 3, 0]) + bytes([1, 7, 0])
    crc = binascii.crc_hqx(body, 0xFFFF)
    f = decode_frame(ref_cobs(body + bytes([crc >> 8, crc & 0xFF])))
    assert (f.version, f.session, f.seq) == (1, 0, 0xFFFF)


TINY = {
    "kind": "board", "name": "tiny", "model": "rfctl-sim",
    "banks": [
        {"name": "ph", "kind": "phase", "count": 4, "bits": 3},
        {"name": "sw", "kind": "switch_matrix", "antennas": 4, "rf_chains": 2},
    ],
}


def tiny_image() -> DeviceImage:
    import numpy as np

    ph = np.array([1, 2, 3, 4])
    sw = np.array([1, 0, 0, 1, 0, 1, 1, 0])
    z = np.zeros(4)
    return DeviceImage("tiny", "rfctl-sim", {
        "ph": BankImage("ph", "phase", ph, 3, z, z, z, "rad"),
        "sw": BankImage("sw", "switch_matrix", sw, 1, sw, sw, np.zeros(8)),
    })


class SpyTransport(InProcessTransport):
    """The in-process transport, recording every write."""

    def __init__(self, fw) -> None:
        super().__init__(fw)
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def test_image_frames_are_exact() -> None:
    # Phase codes 1, 2, 3, 4 at 3 bits: 001 010 011 100 (+ 4 pad bits) = 0x29 0xC0.
    # Switch bits 1 0 0 1 0 1 1 0 = 0x96. Image = 29 C0 96, CRC-32 over those 3 bytes.
    assert pack_codes([1, 2, 3, 4], 3) == b"\x29\xc0"
    assert pack_codes([1, 0, 0, 1, 0, 1, 1, 0], 1) == b"\x96"
    crc = zlib.crc32(b"\x29\xc0\x96")
    writes = [(0, 0, b"\x29\xc0"), (1, 0, b"\x96")]
    write0 = b"\x00\x00\x00\x29\xc0"          # bank 0, offset 0 (u16 LE), data
    crc_le = struct.pack("<I", crc)              # the expected CRC-32 of the image
    # the last write (bank 1, offset 0, data 96) travels with the latch:
    # bank, offset, expected CRC, data
    write_latch1 = b"\x01\x00\x00" + crc_le + b"\x96"
    assert plan_frames(writes, crc, sync=True, latch=True, first_seq=2, session=SESSION) == [
        frame(2, 0x0B, b""), frame(3, 0x02, write0), frame(4, 0x0C, write_latch1)]
    assert plan_frames([], crc, sync=False, latch=True, first_seq=9, session=SESSION) == [
        frame(9, 0x04, crc_le)]                  # nothing to write: LATCH alone

    profile = parse_config(TINY)
    fw = SimBoardFirmware.from_profile(profile)
    spy = SpyTransport(fw)
    dev = RfctlBoard(profile, spy, session=SESSION)
    # HELLO (seq 1), IDENT chunk at offset 0 (seq 2), then the other chunks pipelined
    assert spy.writes[:2] == [frame(1, 0x0D, b""), frame(2, 0x01, b"\0\0")]
    total = len(fw.ident_document())
    offs = list(range(48, total, 48))
    assert spy.writes[2] == b"".join(frame(3 + k, 0x01, struct.pack("<H", o))
                                     for k, o in enumerate(offs))
    seq = 3 + len(offs)
    res = program(dev, tiny_image())
    # the board's image is unknown: its active CRC is asked (is the image already
    # active?) in the same batch as the writes — every byte, no SYNC_STAGED needed —
    # and the latch goes out once the board has answered that it is not
    assert spy.writes[3] == frame(seq, 0x06, b"") + frame(seq + 1, 0x02, write0)
    assert spy.writes[4:] == [frame(seq + 2, 0x0C, write_latch1)]
    assert res.crc == crc and bytes(fw.active) == b"\x29\xc0\x96"


# ------------------------------------------------------------ the simulated firmware's side
def test_firmware_answers_a_byte_exact_transcript() -> None:
    """Requests built from the spec go into the simulated firmware; its replies must be
    exactly the spec's bytes (its codec is its own, not the driver's)."""
    fw = SimBoardFirmware.from_profile(parse_config(TINY))
    boot = fw.boot_id
    count = fw.boot_count
    crc = zlib.crc32(b"\x29\xc0\x96")
    crc_le = struct.pack("<I", crc)
    # no session yet: refused, not executed
    assert fw.receive(frame(1, 0x06, b"")) == reply(1, 0x06, 8, boot)
    # HELLO: protocol 2, boot counter, resumed = 0
    assert fw.receive(frame(1, 0x0D, b"")) == reply(1, 0x0D, 0, boot,
                                                     bytes([2]) + struct.pack("<IB", count, 0))
    assert fw.receive(frame(2, 0x02, b"\x00\x00\x00\x29\xc0")) == reply(2, 0x02, 0, boot)
    assert fw.receive(frame(3, 0x0C, b"\x01\x00\x00" + crc_le + b"\x96")) == \
        reply(3, 0x0C, 0, boot, crc_le)
    # a retransmission within the session: the cached reply, not executed again
    latches = fw.counters.latches
    assert fw.receive(frame(3, 0x0C, b"\x01\x00\x00" + crc_le + b"\x96")) == \
        reply(3, 0x0C, 0, boot, crc_le)
    assert fw.counters.latches == latches
    # a damaged frame: BAD_FRAME with seq 0xFFFF and session 0
    bad = bytearray(frame(4, 0x06, b""))
    bad[2] ^= 0x10
    assert fw.receive(bytes(bad)) == reply(0xFFFF, 0x00, 1, boot, session=0)
    # another host while this session is live: BUSY; after BYE it gets the board, and
    # the same seq is executed afresh in the new session (no stale reply)
    other = 0x0BADF00D
    assert fw.receive(frame(1, 0x0D, b"", other)) == reply(1, 0x0D, 5, boot, session=other)
    assert fw.receive(frame(4, 0x0E, b"")) == reply(4, 0x0E, 0, boot)
    assert fw.receive(frame(1, 0x0D, b"", other)) == reply(
        1, 0x0D, 0, boot, bytes([2]) + struct.pack("<IB", count, 0), session=other)
    assert fw.receive(frame(3, 0x06, b"", other)) == reply(3, 0x06, 0, boot, crc_le, other)
    # the old session's frames are refused
    assert fw.receive(frame(5, 0x06, b"")) == reply(5, 0x06, 8, boot)
    # an old host (version 1 frame) is told BAD_VERSION in its own format
    body = bytes([1, 9, 0, 0x06, 0, 0])
    c = binascii.crc_hqx(body, 0xFFFF)
    rbody = bytes([1, 9, 0, 0x86, 3, 0, 7]) + struct.pack("<H", boot & 0xFFFF)
    rc = binascii.crc_hqx(rbody, 0xFFFF)
    assert fw.receive(ref_cobs(body + bytes([c >> 8, c & 0xFF])) + b"\0") == \
        ref_cobs(rbody + bytes([rc >> 8, rc & 0xFF])) + b"\0"


def test_firmware_crc16_is_its_own_and_correct() -> None:
    from rfctl.sims.simboard import _crc16, _stuff, _unstuff

    assert _crc16(b"123456789") == 0x29B1
    for raw, enc in VECTORS:
        assert _stuff(raw) == enc and _unstuff(enc) == raw


def test_host_refuses_an_old_board_by_version() -> None:
    """A version-1 board answers a version-2 frame with BAD_FRAME in version-1 format."""
    from rfctl.drivers.rfctl_board import ProtocolVersionError

    class OldBoard:
        def receive(self, data: bytes) -> bytes:
            body = bytes([1, 0xFF, 0xFF, 0x80, 3, 0, 1, 1, 0])
            c = binascii.crc_hqx(body, 0xFFFF)
            return ref_cobs(body + bytes([c >> 8, c & 0xFF])) + b"\0"

    with pytest.raises(ProtocolVersionError, match="protocol version 1"):
        RfctlBoard(parse_config(TINY), InProcessTransport(OldBoard()))
