"""Hypothesis properties of every quantizer (DESIGN.md, Quantization).

For each code book: codes are in range; the realised value is the nearest representable
one (circular distance for phases, complex distance for tables), checked against the
brute-force reference; quantizing a representable value returns it unchanged; the
uniform-phase error is at most half a step, across ±π too; calibration offsets are
applied before quantizing.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rfctl.hal import (
    LorentzianCodebook,
    TablePhaseCodebook,
    UniformPhaseCodebook,
    lorentzian_arc_table,
    wrap_phase,
)
from rfctl.hal.reference import nearest_complex, nearest_phase

TOL = 1e-9
angles = st.floats(min_value=-50.0, max_value=50.0, allow_nan=False, allow_infinity=False)
near_pi = st.floats(min_value=math.pi - 1e-3, max_value=math.pi + 1e-3).flatmap(
    lambda x: st.sampled_from([x, -x])
)


def phase_arrays(n_min: int = 1, n_max: int = 40):
    return st.integers(n_min, n_max).flatmap(
        lambda n: hnp.arrays(np.float64, n, elements=st.one_of(angles, near_pi))
    )


@given(bits=st.integers(1, 10), phases=phase_arrays())
def test_uniform_codes_in_range_and_nearest(bits: int, phases: np.ndarray) -> None:
    book = UniformPhaseCodebook(bits, phases.size)
    codes, realised, err = book.quantize(phases)
    assert codes.dtype.kind == "i"
    assert np.all((codes >= 0) & (codes < 2**bits))
    # nearest: no code is closer on the circle (brute force over every code)
    _, dmin = nearest_phase(2 * np.pi * np.arange(2**bits) / 2**bits, phases)
    assert np.all(np.abs(err) <= dmin + TOL)
    # half a step at most, including targets just either side of ±π
    assert np.all(np.abs(err) <= np.pi / 2**bits + TOL)
    # the error is the wrapped difference of realised and target
    assert np.allclose(wrap_phase(realised - phases), err, atol=TOL)


@given(bits=st.integers(1, 10), codes=st.lists(st.integers(0, 1023), min_size=1, max_size=30))
def test_uniform_idempotent_on_representable(bits: int, codes: list[int]) -> None:
    c = np.array(codes) % 2**bits
    book = UniformPhaseCodebook(bits, c.size)
    values = book.values(c)
    c2, r2, e2 = book.quantize(values)
    assert np.array_equal(c2, c)
    assert np.allclose(e2, 0.0, atol=TOL)
    c3, _, _ = book.quantize(r2)
    assert np.array_equal(c3, c)


@given(bits=st.integers(1, 8), phases=phase_arrays(), data=st.data())
def test_uniform_calibration_applied_before_quantizing(bits, phases, data) -> None:
    offsets = data.draw(hnp.arrays(np.float64, phases.size,
                                   elements=st.floats(-np.pi, np.pi)))
    book = UniformPhaseCodebook(bits, phases.size, offsets)
    codes, realised, err = book.quantize(phases)
    # element k realises code·step + δ_k; that is what 'realised' must say
    assert np.allclose(wrap_phase(realised - (2 * np.pi * codes / 2**bits + offsets)), 0,
                       atol=TOL)
    _, dmin = nearest_phase(2 * np.pi * np.arange(2**bits) / 2**bits, phases, offsets)
    assert np.all(np.abs(err) <= dmin + TOL)
    assert np.all(np.abs(err) <= np.pi / 2**bits + TOL)


def phase_tables():
    return st.integers(2, 64).flatmap(
        lambda m: st.tuples(
            hnp.arrays(np.float64, m, elements=st.floats(-np.pi, np.pi)),
            hnp.arrays(np.float64, m, elements=st.floats(0.2, 2.0)),
        )
    )


@given(table=phase_tables(), phases=phase_arrays(), data=st.data())
def test_table_phase_nearest_on_circle(table, phases, data) -> None:
    ang, amp = table
    entries = amp * np.exp(1j * ang)
    offsets = data.draw(hnp.arrays(np.float64, phases.size, elements=st.floats(-3.0, 3.0)))
    book = TablePhaseCodebook(entries, phases.size, offsets)
    codes, realised, err = book.quantize(phases)
    assert np.all((codes >= 0) & (codes < entries.size))
    _, dmin = nearest_phase(np.angle(entries), phases, offsets)
    assert np.all(np.abs(err) <= dmin + TOL)
    assert np.allclose(wrap_phase(realised - np.angle(entries[codes]) - offsets), 0, atol=TOL)


distinct_tables = st.integers(2, 64).flatmap(
    lambda m: st.tuples(
        # distinct phases on a 2π/4096 grid, so every entry has a unique phase
        hnp.arrays(np.int64, m, elements=st.integers(0, 4095), unique=True),
        hnp.arrays(np.float64, m, elements=st.floats(0.2, 2.0)),
    )
)


@given(table=distinct_tables, data=st.data())
def test_table_phase_idempotent(table, data) -> None:
    k, amp = table
    ang = 2 * np.pi * k / 4096
    entries = amp * np.exp(1j * ang)
    codes = np.array(data.draw(st.lists(st.integers(0, ang.size - 1), min_size=1,
                                        max_size=20)))
    book = TablePhaseCodebook(entries, codes.size)
    c2, _, e2 = book.quantize(book.values(codes))
    assert np.array_equal(c2, codes)
    assert np.allclose(e2, 0, atol=TOL)


def test_128_entry_table_matches_uniform_7_bit() -> None:
    # an ideal 128-entry I/Q table is the 7-bit uniform code book (2.8125° steps)
    entries = np.exp(2j * np.pi * np.arange(128) / 128)
    rng = np.random.default_rng(1)
    phases = rng.uniform(-10, 10, 500)
    _, _, e_t = TablePhaseCodebook(entries, 500).quantize(phases)
    _, _, e_u = UniformPhaseCodebook(7, 500).quantize(phases)
    assert np.allclose(np.abs(e_t), np.abs(e_u), atol=1e-12)
    assert np.max(np.abs(e_t)) <= np.deg2rad(2.8125 / 2) + 1e-12


complex_targets = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float64, n, elements=st.floats(-1.5, 1.5)),
        hnp.arrays(np.float64, n, elements=st.floats(-1.5, 1.5)),
    )
)


@given(bits=st.integers(1, 8), tgt=complex_targets,
       rho=st.floats(0.5, 1.0), lo=st.floats(-3.0, 0.0), span=st.floats(0.2, 6.0))
def test_lorentzian_nearest_complex(bits, tgt, rho, lo, span) -> None:
    table = rho * lorentzian_arc_table(bits, lo, lo + span)
    q = tgt[0] + 1j * tgt[1]
    book = LorentzianCodebook(table, q.size)
    codes, realised, err = book.quantize(q)
    assert np.all((codes >= 0) & (codes < table.size))
    _, dmin = nearest_complex(table, q)
    assert np.allclose(err, dmin, atol=TOL)
    assert np.allclose(np.abs(realised - q), err, atol=TOL)


@given(bits=st.integers(1, 8), data=st.data())
def test_lorentzian_idempotent(bits, data) -> None:
    table = lorentzian_arc_table(bits, -1.4, 4.0)
    codes = np.array(data.draw(st.lists(st.integers(0, table.size - 1), min_size=1,
                                        max_size=20)))
    book = LorentzianCodebook(table, codes.size)
    c2, r2, e2 = book.quantize(book.values(codes))
    assert np.array_equal(c2, codes)
    assert np.allclose(e2, 0, atol=TOL)
    assert not np.any(book.out_of_range(r2))


def test_lorentzian_arc_lies_on_circle() -> None:
    # |q + j/2| = 1/2 for every ideal entry (the Lorentzian constraint)
    t = lorentzian_arc_table(8, -1.5, 4.5)
    assert np.allclose(np.abs(t + 0.5j), 0.5, atol=1e-15)


def test_lorentzian_out_of_range_detection() -> None:
    # table ψ = −π/2, −π/3, −π/6, 0 (spacing π/6): covered arc is [−π/2, 0] widened by
    # half a gap, π/12, each side. q = 0 (ψ = π/2) is never reachable.
    table = lorentzian_arc_table(2, -np.pi / 2, 0.0)
    book = LorentzianCodebook(table, 5)
    edge = np.pi / 12
    psi = np.array([-np.pi / 4, np.pi / 4, edge - 1e-6, edge + 1e-3,
                    -np.pi / 2 - edge + 1e-6])
    q = (-1j + np.exp(1j * psi)) / 2
    assert book.out_of_range(q).tolist() == [False, True, False, True, False]
