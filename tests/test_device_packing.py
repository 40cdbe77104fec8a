"""HAL packing and delta computation, checked against plain reference code."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rfctl.hal.device import DeviceInfo
from rfctl.hal.image import BankLayout, delta_writes, pack_codes, unpack_codes


def ref_pack(codes: list[int], bits: int) -> bytes:
    s = "".join(format(c, f"0{bits}b") for c in codes)
    s += "0" * (-len(s) % 8)
    return bytes(int(s[i: i + 8], 2) for i in range(0, len(s), 8))


@given(bits=st.integers(1, 16), data=st.data())
def test_pack_matches_bit_string_reference(bits: int, data) -> None:
    codes = data.draw(st.lists(st.integers(0, 2**bits - 1), max_size=80))
    packed = pack_codes(np.array(codes, dtype=np.int64), bits)
    assert packed == ref_pack(codes, bits)
    assert unpack_codes(packed, bits, len(codes)).tolist() == codes


INFO = DeviceInfo("m", "f", (BankLayout("a", "phase", 40, 6), BankLayout("b", "pin_links", 50, 1),
                             BankLayout("c", "phase", 9, 8)))


def apply(old: bytes, writes, info: DeviceInfo) -> bytes:
    buf = bytearray(old)
    for bi, off, data in writes:
        start = info.offsets[bi] + off
        assert off + len(data) <= info.banks[bi].nbytes  # never crosses a bank boundary
        buf[start: start + len(data)] = data
    return bytes(buf)


@given(st.data())
def test_delta_turns_old_into_new(data) -> None:
    n = INFO.nbytes
    old = bytes(data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)))
    new = bytearray(old)
    for i in data.draw(st.lists(st.integers(0, n - 1), max_size=20)):
        new[i] ^= data.draw(st.integers(1, 255))
    new = bytes(new)
    chunk = data.draw(st.integers(1, 16))
    writes = delta_writes(old, new, INFO, chunk=chunk)
    assert apply(old, writes, INFO) == new
    assert all(len(w[2]) <= chunk for w in writes)
    if old == new:
        assert writes == []
    full = delta_writes(None, new, INFO, chunk=chunk)
    assert apply(bytes(n), full, INFO) == new


def test_image_module_is_pure_and_below_the_device_seam() -> None:
    """rfctl.hal.image imports nothing of the HAL (no image ↔ device ↔ quantize circle):
    device and program build on it, never the other way round."""
    import ast
    from pathlib import Path

    import rfctl.hal.image as image_mod

    tree = ast.parse(Path(image_mod.__file__).read_text())
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in names if m and m.startswith("rfctl.") and m != "rfctl.errors"]
