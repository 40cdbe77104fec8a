"""The rfctl board protocol, host side: framing, checksums and payload layouts
(PROTOCOL.md, version 2).

Pure functions and constants of the host driver. The simulated firmware in ``sims/``
has its own codec, written from PROTOCOL.md, so that a mistake here is not mirrored
there; both are tested against byte-exact transcripts.
"""

from __future__ import annotations

import binascii
import json
import logging
import struct
from dataclasses import dataclass
from enum import IntEnum

from rfctl.errors import DeviceError

__all__ = [
    "BAD_FRAME_SEQ",
    "IDENT_CHUNK",
    "PROTOCOL_VERSION",
    "Cmd",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "Nak",
    "cobs_decode",
    "cobs_encode",
    "crc16_ccitt_false",
    "decode_frame",
    "encode_frame",
    "log_frame",
]

PROTOCOL_VERSION = 2
BAD_FRAME_SEQ = 0xFFFF
"""Sequence number of a NAK for a frame whose own sequence could not be trusted."""
REPLY_FLAG = 0x80
HEADER = struct.Struct("<BIHBH")  # version, session, seq, command, payload length
HEADER_V1 = struct.Struct("<BHBH")  # version 1: no session (told apart by the version byte)
REPLY_HEAD = struct.Struct("<BI")  # status, boot id
IDENT_CHUNK = 48
"""IDENT data bytes per reply (a long reply in one frame rarely survives a noisy line)."""
wire_log = logging.getLogger("rfctl.wire")


class Cmd(IntEnum):
    """Request command codes (a reply carries ``code | 0x80``)."""

    IDENT = 0x01
    WRITE_STAGED = 0x02
    STAGED_CRC = 0x03
    LATCH = 0x04
    READ_ACTIVE = 0x05
    ACTIVE_CRC = 0x06
    BEAM_STORE = 0x07
    BEAM_SELECT = 0x08
    RESET = 0x09
    STATUS = 0x0A
    SYNC_STAGED = 0x0B
    WRITE_LATCH = 0x0C
    HELLO = 0x0D
    BYE = 0x0E


class Nak(IntEnum):
    """Status byte of a reply: 0 is ACK, anything else a NAK with this reason."""

    ACK = 0
    BAD_FRAME = 1
    UNKNOWN_COMMAND = 2
    BAD_ARGUMENT = 3
    CRC_MISMATCH = 4
    BUSY = 5
    EMPTY_SLOT = 6
    BAD_VERSION = 7
    NO_SESSION = 8


class FrameError(DeviceError, ValueError):
    """Bytes that are not a valid frame (COBS, length or CRC): damage on the link."""


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out).

    Check value: ``crc16_ccitt_false(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no zero byte.

    Canonical form: a block of 254 non-zero bytes that ends the data is not followed by
    an empty block.
    """
    out = bytearray()
    segments = data.split(b"\x00")  # zero bytes become segment boundaries
    last = len(segments) - 1
    for k, seg in enumerate(segments):
        n = len(seg)
        pos = 0
        while n - pos >= 254:  # full blocks: code 0xFF, no implied zero
            out.append(255)
            out += seg[pos: pos + 254]
            pos += 254
        if k == last and pos == n and n > 0:
            break  # data ended exactly on a full block
        out.append(n - pos + 1)
        out += seg[pos:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`.

    Raises
    ------
    FrameError
        On a zero byte or a code that runs past the end.
    """
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("zero byte inside a COBS block")
        end = i + code
        if end > n:
            raise FrameError("COBS block runs past the end of the frame")
        block = data[i + 1: end]
        if 0 in block:
            raise FrameError("zero byte inside a COBS block")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    """A decoded frame.

    Attributes
    ----------
    seq : int
        Sequence number (u16).
    cmd : int
        Command code; replies have bit 7 set.
    payload : bytes
    version : int
        Protocol version of the frame (1: an old board; its header has no session).
    session : int
        Session id (u32; 0 in version-1 frames and in BAD_FRAME replies).
    """

    seq: int
    cmd: int
    payload: bytes
    version: int = PROTOCOL_VERSION
    session: int = 0

    @property
    def is_reply(self) -> bool:
        """True for a reply (bit 7 of the command code set)."""
        return bool(self.cmd & REPLY_FLAG)


def encode_frame(seq: int, cmd: int, payload: bytes = b"", *, session: int = 0) -> bytes:
    """Frame bytes on the wire: COBS(header + payload + CRC-16 big-endian) + 0x00,
    header = version 2, session u32le, seq u16le, command u8, length u16le."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    body = HEADER.pack(PROTOCOL_VERSION, session & 0xFFFFFFFF, seq & 0xFFFF, cmd,
                       len(payload)) + payload
    body += struct.pack(">H", crc16_ccitt_false(body))
    return cobs_encode(body) + b"\x00"


def decode_frame(wire: bytes) -> Frame:
    """Decode one frame (without its 0x00 delimiter).

    Raises
    ------
    FrameError
        Bad COBS, short frame, length mismatch or CRC mismatch.
    """
    body = cobs_decode(wire)
    if len(body) < HEADER_V1.size + 2:
        raise FrameError(f"frame too short ({len(body)} bytes)")
    crc = struct.unpack(">H", body[-2:])[0]
    if crc16_ccitt_false(body[:-2]) != crc:
        raise FrameError("CRC mismatch")
    if body[0] == 1:  # an old board: version 1 header, no session
        version, seq, cmd, length = HEADER_V1.unpack(body[: HEADER_V1.size])
        session, head = 0, HEADER_V1.size
    else:
        if len(body) < HEADER.size + 2:
            raise FrameError(f"frame too short ({len(body)} bytes)")
        version, session, seq, cmd, length = HEADER.unpack(body[: HEADER.size])
        head = HEADER.size
    payload = body[head: -2]
    if len(payload) != length:
        raise FrameError(f"length field {length} != payload {len(payload)}")
    return Frame(seq=seq, cmd=cmd, payload=payload, version=version, session=session)


class FrameSplitter:
    """Accumulates received bytes and yields complete frames' raw bytes (0x00-delimited).

    Parameters
    ----------
    limit : int
        Bytes without a delimiter kept at most, bytes; beyond it they are dropped as
        garbage (``overflows`` counts how often).
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self._buf = bytearray()
        self.limit = limit
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames they complete.

        Parameters
        ----------
        data : bytes
            Bytes as read from the link (any split).

        Returns
        -------
        list of bytes
            Each complete frame's bytes without its 0x00 delimiter (empty frames are
            skipped). Undelimited bytes beyond ``limit`` are dropped (``overflows``
            counts it).
        """
        self._buf += data
        out = []
        while True:
            i = self._buf.find(0)
            if i < 0:
                break
            chunk = bytes(self._buf[:i])
            del self._buf[: i + 1]
            if chunk:
                out.append(chunk)
        if len(self._buf) > self.limit:  # garbage without a delimiter: drop it
            self._buf.clear()
            self.overflows += 1
        return out

    def clear(self) -> None:
        """Drop any partial frame."""
        self._buf.clear()


# --------------------------------------------------------------------------- payloads
def reply_payload(status: int, boot_id: int, data: bytes = b"") -> bytes:
    """Reply payload: status u8, boot id u32le, data (for sizing replies on the host)."""
    return REPLY_HEAD.pack(status, boot_id & 0xFFFFFFFF) + data


def parse_reply(payload: bytes, version: int = PROTOCOL_VERSION) -> tuple[int, int, bytes]:
    """(status, boot_id, data) of a reply payload (version 1: boot id u16)."""
    if version == 1:
        if len(payload) < 3:
            raise FrameError("reply payload shorter than 3 bytes")
        status, boot = struct.unpack("<BH", payload[:3])
        return status, boot, payload[3:]
    if len(payload) < REPLY_HEAD.size:
        raise FrameError(f"reply payload shorter than {REPLY_HEAD.size} bytes")
    status, boot = REPLY_HEAD.unpack(payload[: REPLY_HEAD.size])
    return status, boot, payload[REPLY_HEAD.size:]


def parse_ident(data: bytes) -> dict:
    """The IDENT document (UTF-8 JSON) once all its chunks are joined."""
    return json.loads(data.decode())


def log_frame(direction: str, frame_bytes: bytes, note: str = "") -> None:
    """Log one frame on ``rfctl.wire`` at DEBUG: direction, sequence, command, hex."""
    if not wire_log.isEnabledFor(logging.DEBUG):
        return
    try:
        f = decode_frame(frame_bytes[:-1] if frame_bytes.endswith(b"\x00") else frame_bytes)
        cmd = f.cmd & ~REPLY_FLAG
        name = Cmd(cmd).name if cmd in Cmd._value2member_map_ else f"0x{cmd:02x}"
        kind = "reply" if f.is_reply else "request"
        wire_log.debug("%s session=%08x seq=%d %s %s len=%d %s%s", direction, f.session,
                       f.seq, kind, name, len(frame_bytes), frame_bytes.hex(),
                       f" ({note})" if note else "")
    except FrameError as exc:
        wire_log.debug("%s undecodable (%s) len=%d %s", direction, exc, len(frame_bytes),
                       frame_bytes.hex())
