"""Direct tests of ``check_layout`` and ``image_from_bytes`` (rfctl.hal.image)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rfctl.drivers.rfctl_board import open_rfctl_board
from rfctl.sims.simboard import SimBoardFirmware

from rfctl.config import parse_config
from rfctl.errors import HardwareConstraintError
from rfctl.hal.device import DeviceInfo, layout_from_profile
from rfctl.hal.image import (
    BankImage,
    DeviceImage,
    ImageLayout,
    check_layout,
    image_from_bytes,
    pack_image,
    unpack_image,
)
from rfctl.hal.program import program

# odd sizes: banks end mid-byte (7 × 3 bits = 21 bits → 3 bytes; 7 × 2 = 14 bits → 2)
PROFILE = parse_config({
    "kind": "board", "name": "lay", "model": "rfctl-sim",
    "link": {"url": "sim://", "timeout_s": 0.05, "retries": 2},
    "banks": [
        {"name": "ph", "kind": "phase", "count": 7, "bits": 3},
        {"name": "sw", "kind": "switch_matrix", "antennas": 7, "rf_chains": 2},
    ],
})
LAYOUT = ImageLayout("rfctl-sim", layout_from_profile(PROFILE))


def bank(name, kind, codes, bits) -> BankImage:
    codes = np.asarray(codes)
    z = np.zeros(codes.size)
    return BankImage(name, kind, codes, bits, z, z, z)


def image(ph=(0,) * 7, sw=(0,) * 14, **over) -> DeviceImage:
    banks = {"ph": bank("ph", "phase", ph, 3), "sw": bank("sw", "switch_matrix", sw, 1)}
    return DeviceImage(over.get("board", "lay"), over.get("model", "rfctl-sim"), banks)


# ------------------------------------------------------------------ check_layout
def test_layout_sizes_by_hand():
    assert [b.nbytes for b in LAYOUT.banks] == [3, 2] and LAYOUT.nbytes == 5
    assert LAYOUT.offsets[:2] == [0, 3]


def test_check_layout_accepts_the_whole_image_and_a_subset():
    check_layout(image(), LAYOUT)
    img = image()
    del img.banks["sw"]
    check_layout(img, LAYOUT)  # banks left out keep their contents when packing
    info = DeviceInfo(model="rfctl-sim", firmware="x", banks=LAYOUT.banks)
    check_layout(image(), info)  # what a device reports is a layout too


def test_check_layout_refuses_another_model():
    with pytest.raises(HardwareConstraintError,
                       match=r"model 'other', the device reports 'rfctl-sim'"):
        check_layout(image(model="other"), LAYOUT)


def test_check_layout_refuses_an_unknown_bank_and_names_it():
    img = image()
    img.banks["extra"] = bank("extra", "phase", [0, 1], 3)
    with pytest.raises(HardwareConstraintError,
                       match=r"'extra' does not exist on the device \(banks: ph, sw\)") as ei:
        check_layout(img, LAYOUT)
    assert ei.value.bank == "extra"


@pytest.mark.parametrize("ph, text", [
    (bank("ph", "pin_links", [0] * 7, 3), "image is pin_links/7 elements/3 bits"),
    (bank("ph", "phase", [0] * 6, 3), "image is phase/6 elements/3 bits"),
    (bank("ph", "phase", [0] * 7, 4), "image is phase/7 elements/4 bits"),
])
def test_check_layout_refuses_kind_count_or_width(ph, text):
    img = image()
    img.banks["ph"] = ph
    with pytest.raises(HardwareConstraintError,
                       match=f"bank 'ph': {text}, device has phase/7/3") as ei:
        check_layout(img, LAYOUT)
    assert ei.value.bank == "ph"


def test_a_misfit_image_sends_nothing():
    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE, firmware=fw)
    try:
        before = dev.stats.copy()
        with pytest.raises(HardwareConstraintError):
            program(dev, image(model="other"))
        assert dev.stats.since(before).frames_tx == 0
    finally:
        dev.close()


# ------------------------------------------------------------------ image_from_bytes
def test_image_from_bytes_by_hand():
    # ph codes 5 2 7 1 0 6 3 at 3 bits: 101 010 111 001 000 110 011 + 000 padding
    # sw 1 0 0 1 1 0 0 0 | 0 1 1 1 0 1 + 00 padding
    data = bytes([0b10101011, 0b10010001, 0b10011000, 0b10011000, 0b01110100])
    img = image_from_bytes(data, LAYOUT, "lay")
    assert (img.board, img.model) == ("lay", "rfctl-sim")
    assert list(img.banks) == ["ph", "sw"]
    assert img.banks["ph"].codes.tolist() == [5, 2, 7, 1, 0, 6, 3]
    assert img.banks["sw"].codes.tolist() == [1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1]
    for b, lay in zip(img.banks.values(), LAYOUT.banks, strict=True):
        assert (b.kind, b.bits, b.count) == (lay.kind, lay.bits, lay.count)
        assert np.array_equal(b.realised, b.codes) and not np.any(b.error)
    assert pack_image(img, LAYOUT, None) == data


def test_image_from_bytes_round_trips_many_images():
    rng = np.random.default_rng(20261127)
    for _ in range(200):
        codes = {"ph": rng.integers(0, 8, 7), "sw": rng.integers(0, 2, 14)}
        data = pack_image(image(codes["ph"], codes["sw"]), LAYOUT, None)
        img = image_from_bytes(data, LAYOUT, "lay")
        assert pack_image(img, LAYOUT, None) == data
        for name, c in unpack_image(data, LAYOUT).items():
            assert np.array_equal(img.banks[name].codes, codes[name]) and \
                np.array_equal(c, codes[name])


@pytest.mark.parametrize("n", [0, 4, 6])
def test_image_from_bytes_refuses_a_wrong_length(n):
    with pytest.raises(HardwareConstraintError, match=f"{n} image bytes for a layout of 5"):
        image_from_bytes(bytes(n), LAYOUT, "lay")


def test_image_from_bytes_restores_a_board():
    fw = SimBoardFirmware.from_profile(PROFILE)
    dev = open_rfctl_board(PROFILE, firmware=fw)
    try:
        program(dev, image([5, 2, 7, 1, 0, 6, 3], [1, 0] * 7))
        saved = dev.read_active()
        program(dev, image([1] * 7, [0, 1] * 7))
        assert bytes(fw.active) != saved
        program(dev, image_from_bytes(saved, dev.info(), dev.name))
        assert bytes(fw.active) == saved
        before = dev.stats.copy()
        with pytest.raises(HardwareConstraintError):  # another board's read-back: refused
            program(dev, image_from_bytes(saved, dataclasses.replace(
                dev.info(), model="other"), dev.name))
        assert dev.stats.since(before).frames_tx == 0 and bytes(fw.active) == saved
    finally:
        dev.close()
