"""Byte-exact transcripts of the OpenSourceRIS and SCPI bias-source dialects.

Every transcript is written by hand from the protocol facts (the OpenSourceRIS notes in
/work/shared/reference/field_notes.md: ``!``/``?`` commands ending in ``\\n``, ``#``
replies, ``!0x<64 hex>`` → ``#OK``, ``?Pattern`` → ``#0X<64 hex>``, MSB = element 1,
reading order, ``?SerialNo`` → ``#SerNo:  12``, ``?Vext`` → ``#09.14 V``, ``!Reset`` → a
banner ending in ``#READY!``; for the bias source IEEE 488.2 ``*IDN?``/``*ESR?`` with the
power-on bit 128, the SCPI error queue ``SYST:ERR?`` until ``0,"No error"``, and the
source's ``CHn:VOLT <V>`` / ``CHn:VOLT?`` with four decimals), never generated with the
driver's code. The device side is a socket peer, so the driver's real stack (pyserial
``socket://``, pyvisa-py) produces the bytes that are compared.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from expected_protocol import TranscriptPeer
from rfctl.drivers.osris import open_osris
from rfctl.drivers.visa_bias import open_visa_bias

from rfctl.config import load_config
from rfctl.errors import DeviceError, ProgramError
from rfctl.hal import quantize
from rfctl.hal.image import image_from_bytes
from rfctl.hal.program import program
from rfctl.state import ArrayState

OSRIS = load_config("osris-16x16")

# elements 1 (top left), 17 (row 2, column 1) and 256 (bottom right) at phase π: bit 1
PATTERN_HEX = "80" + "00" + "80" + "00" * 28 + "01"  # digits only: case plays no role
ZEROS_HEX = "0" * 64
SERIAL = (b"?SerialNo\n", b"#SerNo:  12\n")
BANNER = b"OpenSourceRIS\nRuhr-Universitaet Bochum\nFirmware booting\n#READY!\n"


def osris_image():
    phases = np.zeros(256)
    phases[[0, 16, 255]] = np.pi
    return quantize(ArrayState(phases=phases), OSRIS)


def test_the_hand_written_pattern_is_what_quantize_makes():
    codes = osris_image().banks["pattern"].codes
    assert np.flatnonzero(codes).tolist() == [0, 16, 255]
    assert len(PATTERN_HEX) == 64


def test_osris_open_set_and_read_back():
    pairs = [
        SERIAL,                                                  # open: who is there
        (b"?Pattern\n", f"#0X{ZEROS_HEX}\n".encode()),          # plan on the board's truth
        (f"!0x{PATTERN_HEX}\n".encode(), b"#OK\n"),             # set (stage + latch)
        (b"?Pattern\n", f"#0X{PATTERN_HEX}\n".encode()),        # verify the set
        (b"?Pattern\n", f"#0X{PATTERN_HEX}\n".encode()),        # read back
        (b"?Vext\n", b"#09.14 V\n"),
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_osris(OSRIS, url=peer.tcp_url)
        try:
            assert dev.serial_no == "12"
            res = program(dev, osris_image())
            assert dev.read_active() == bytes.fromhex(PATTERN_HEX)
            assert res.crc == zlib.crc32(bytes.fromhex(PATTERN_HEX))
            assert dev.supply_voltage() == pytest.approx(9.14)
        finally:
            dev.close()


def test_osris_reset_banner_in_the_stream_during_the_read_back():
    # the board reboots after its #OK: the read-back query is lost, the banner comes
    # instead; the host checks it is the same board, finds zeros and sets again
    pairs = [
        SERIAL,
        (b"?Pattern\n", f"#0X{ZEROS_HEX}\n".encode()),
        (f"!0x{PATTERN_HEX}\n".encode(), b"#OK\n"),
        (b"?Pattern\n", BANNER),
        SERIAL,
        (b"?Pattern\n", f"#0X{ZEROS_HEX}\n".encode()),
        (f"!0x{PATTERN_HEX}\n".encode(), b"#OK\n"),
        (b"?Pattern\n", f"#0X{PATTERN_HEX}\n".encode()),
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_osris(OSRIS, url=peer.tcp_url)
        try:
            res = program(dev, osris_image())
            assert res.crc == zlib.crc32(bytes.fromhex(PATTERN_HEX))
            assert dev.stats.resets_seen == 1 and dev.stats.timeouts == 0
        finally:
            dev.close()


def test_osris_reset_command_waits_for_the_banner():
    pairs = [
        SERIAL,
        (b"!Reset\n", BANNER),
        SERIAL,
        (b"?Pattern\n", f"#0X{ZEROS_HEX}\n".encode()),
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_osris(OSRIS, url=peer.tcp_url)
        try:
            dev.reset()
            assert dev.verified_active is None
            assert dev.read_active() == bytes(32)
        finally:
            dev.close()


def test_osris_other_board_after_a_banner_is_refused():
    pairs = [
        SERIAL,
        (b"?Pattern\n", BANNER),
        (b"?SerialNo\n", b"#SerNo:  13\n"),
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_osris(OSRIS, url=peer.tcp_url)
        try:
            with pytest.raises(DeviceError, match="another board"):
                dev.read_active()
        finally:
            dev.close()


def test_a_wrong_byte_fails_the_transcript():
    # the peer itself: a transcript the driver does not follow must fail
    with pytest.raises(AssertionError, match="expected b'\\?serialno"):
        with TranscriptPeer([(b"?serialno\n", b"#SerNo:  12\n")], timeout=1.0) as peer:
            dev = None
            try:
                dev = open_osris(OSRIS.model_copy(update={"link": OSRIS.link.model_copy(
                    update={"timeout_s": 0.05, "retries": 0})}), url=peer.tcp_url)
            except DeviceError:
                pass
            finally:
                if dev is not None:
                    dev.close()


def test_an_unreached_pair_fails_the_transcript():
    with pytest.raises(AssertionError, match="closed the link before writing"):
        with TranscriptPeer([SERIAL, (b"?Pattern\n", f"#0X{ZEROS_HEX}\n".encode())],
                            timeout=1.0) as peer:
            open_osris(OSRIS, url=peer.tcp_url).close()


# ------------------------------------------------------------------ SCPI bias source
_BIAS = load_config("bias-dma-4x8")
BIAS = _BIAS.model_copy(update={"banks": [_BIAS.banks[0].model_copy(update={"count": 4})]})
# 2-bit table, bias_v = (0, 12) V: code c is 4c volts. Codes 1, 0, 3, 2 packed MSB first
# at 2 bits each: 01 00 11 10 = 0x4E
CODES_BYTE = bytes([0b01_00_11_10])
NO_ERROR = b'0,"No error"\n'
OPEN_BIAS = [
    (b"*IDN?\n", b"RFCTL,BIAS-SIM,0001,1.0\n"),
    (b"SYST:ERR?\n", NO_ERROR),
    (b"*ESR?\n", b"128\n"),  # power-on bit of the boot the session opens on
]


def read_all(volts: list[str]) -> list[tuple[bytes, bytes]]:
    """Power-on check, then every channel (the driver's read of the source's truth)."""
    return [(b"*ESR?\n", b"0\n")] + [(f"CH{k}:VOLT?\n".encode(), f"{v}\n".encode())
                                      for k, v in enumerate(volts, 1)]


def readback(volts: list[str]) -> list[tuple[bytes, bytes]]:
    return [(f"CH{k}:VOLT?\n".encode(), f"{v}\n".encode()) for k, v in enumerate(volts, 1)]


ZERO4 = ["0.0000"] * 4
NEW4 = ["4.0000", "0.0000", "12.0000", "8.0000"]
SET_NEW = [(b"CH1:VOLT 4.0000\n", b""), (b"CH3:VOLT 12.0000\n", b""),
           (b"CH4:VOLT 8.0000\n", b"")]  # settings have no reply


def test_bias_open_set_channels_check_errors_read_back():
    pairs = [
        *OPEN_BIAS,
        *read_all(ZERO4),                       # plan on the source's truth
        *SET_NEW,                               # only the channels that change
        (b"SYST:ERR?\n", NO_ERROR),
        *readback(NEW4),                        # every channel after the set
        *read_all(NEW4),                        # read back
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_visa_bias(BIAS, url=peer.visa_resource, visa_library="@py")
        try:
            assert dev.power_ons == 1 and dev.stats.resets_seen == 0
            img = image_from_bytes(CODES_BYTE, dev.info(), dev.name)
            res = program(dev, img)
            assert res.crc == zlib.crc32(CODES_BYTE)
            assert dev.read_active() == CODES_BYTE
        finally:
            dev.close()


def test_bias_error_in_the_queue_rolls_back():
    pairs = [
        *OPEN_BIAS,
        *read_all(ZERO4),
        *SET_NEW,
        (b"SYST:ERR?\n", b'-222,"Data out of range"\n'),
        (b"SYST:ERR?\n", NO_ERROR),             # the queue is drained
        (b"CH1:VOLT 0.0000\n", b""),            # roll back the changed channels
        (b"CH3:VOLT 0.0000\n", b""),
        (b"CH4:VOLT 0.0000\n", b""),
        (b"SYST:ERR?\n", NO_ERROR),
        *read_all(ZERO4),                       # what does the source hold now?
    ]
    with TranscriptPeer(pairs) as peer:
        dev = open_visa_bias(BIAS, url=peer.visa_resource, visa_library="@py")
        try:
            img = image_from_bytes(CODES_BYTE, dev.info(), dev.name)
            with pytest.raises(ProgramError, match="Data out of range") as ei:
                program(dev, img)
            assert ei.value.holds == {dev.name: "previous"}
        finally:
            dev.close()


def test_bias_power_on_seen_before_a_read_forgets_the_host_copy():
    pairs = [*OPEN_BIAS, *read_all(ZERO4)]
    pairs[3] = (b"*ESR?\n", b"128\n")  # the source rebooted since the session opened
    with TranscriptPeer(pairs) as peer:
        dev = open_visa_bias(BIAS, url=peer.visa_resource, visa_library="@py")
        try:
            dev.verified_active = bytes(1)
            assert dev.read_active() == bytes(1)
            assert dev.stats.resets_seen == 1 and dev.power_ons == 2
            assert dev.verified_active is None
        finally:
            dev.close()
