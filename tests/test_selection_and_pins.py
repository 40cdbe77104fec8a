"""Selection-map validation and the PIN-diode / feed-switch derivation, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfctl.errors import HardwareConstraintError
from rfctl.hal import feed_codes, links_to_selection, selection_to_links
from rfctl.state import check_selection


def test_single_antenna_on_3x3_panel_closes_its_four_links() -> None:
    # 3×3 pixels, candidate grid 2×2; antenna at candidate (0, 0) = pixels (0..1, 0..1).
    P = np.array([[1, 0], [0, 0]], dtype=bool)
    h, v = selection_to_links(P)
    # h[r, c] joins (r, c)-(r, c+1): rows 0 and 1, column 0
    assert h.astype(int).tolist() == [[1, 0], [1, 0], [0, 0]]
    # v[r, c] joins (r, c)-(r+1, c): row 0, columns 0 and 1
    assert v.astype(int).tolist() == [[1, 1, 0], [0, 0, 0]]


def test_bottom_right_antenna_on_3x3_panel() -> None:
    P = np.array([[0, 0], [0, 1]], dtype=bool)
    h, v = selection_to_links(P)
    assert h.astype(int).tolist() == [[0, 0], [0, 1], [0, 1]]
    assert v.astype(int).tolist() == [[0, 0, 0], [0, 1, 1]]


def test_two_antennas_on_4x6_panel_link_count_and_readback() -> None:
    # candidates (0,0) and (2,3) on a 4×6 panel: 8 links, disjoint
    P = np.zeros((3, 5), dtype=bool)
    P[0, 0] = P[2, 3] = True
    h, v = selection_to_links(P)
    assert h.sum() + v.sum() == 8
    assert {tuple(x) for x in np.argwhere(h)} == {(0, 0), (1, 0), (2, 3), (3, 3)}
    assert {tuple(x) for x in np.argwhere(v)} == {(0, 0), (0, 1), (2, 3), (2, 4)}
    assert np.array_equal(links_to_selection(h, v), P)
    assert feed_codes(P).tolist() == [0, 2 * 5 + 3]


def test_stray_link_is_refused_on_readback() -> None:
    P = np.zeros((3, 3), dtype=bool)
    P[0, 0] = True
    h, v = selection_to_links(P)
    h[3, 2] = True  # a diode on that belongs to no antenna
    with pytest.raises(HardwareConstraintError, match="whole 2×2"):
        links_to_selection(h, v)


def test_box_rule_accepts_the_seed_grid_on_14x14() -> None:
    # Seed §VI: H_s = V_s = 6 on 13 × 13 candidates. (0,0),(0,6),(6,0),(6,6) share rows
    # or columns, so the literal reading of eq. 15 (|ΔH| ≥ 6 AND |ΔV| ≥ 6) refuses them;
    # the box reading (|ΔH| ≥ 6 OR |ΔV| ≥ 6) accepts them.
    P = np.zeros((13, 13), dtype=bool)
    for r, c in [(0, 0), (0, 6), (6, 0), (6, 6)]:
        P[r, c] = True
    check_selection(P, h_s=6, v_s=6, n_selected=4, shape=(13, 13))


def test_box_rule_refuses_a_pair_inside_the_box_and_names_it() -> None:
    P = np.zeros((13, 13), dtype=bool)
    P[0, 0] = P[5, 5] = True  # |ΔH| = 5 < 6 and |ΔV| = 5 < 6
    with pytest.raises(HardwareConstraintError, match=r"\(0, 0\) and \(5, 5\)"):
        check_selection(P, h_s=6, v_s=6)


def test_overlap_is_refused_even_with_unit_spacing() -> None:
    P = np.zeros((4, 4), dtype=bool)
    P[1, 1] = P[2, 2] = True  # diagonal neighbours share pixel (2, 2)
    with pytest.raises(HardwareConstraintError, match="share a pixel"):
        check_selection(P, h_s=1, v_s=1)
    P = np.zeros((4, 4), dtype=bool)
    P[1, 1] = P[1, 3] = True  # two columns apart: disjoint pixels
    check_selection(P, h_s=1, v_s=1)


def test_wrong_count_and_shape_are_refused() -> None:
    P = np.zeros((13, 13), dtype=bool)
    P[0, 0] = True
    with pytest.raises(HardwareConstraintError, match="N_s = 4"):
        check_selection(P, h_s=6, v_s=6, n_selected=4)
    with pytest.raises(HardwareConstraintError, match="shape"):
        check_selection(P, h_s=6, v_s=6, shape=(12, 12))


@given(st.data())
def test_links_roundtrip_for_any_valid_map(data) -> None:
    rows, cols = data.draw(st.integers(2, 12)), data.draw(st.integers(2, 12))
    hs, vs = data.draw(st.integers(2, 6)), data.draw(st.integers(2, 6))
    P = np.zeros((rows - 1, cols - 1), dtype=bool)
    cells = data.draw(st.lists(st.tuples(st.integers(0, rows - 2), st.integers(0, cols - 2)),
                               max_size=8))
    for r, c in cells:  # greedy: keep those that respect the box rule
        others = np.argwhere(P)
        if all(abs(r - a) >= vs or abs(c - b) >= hs for a, b in others):
            P[r, c] = True
    check_selection(P, h_s=hs, v_s=vs)
    h, v = selection_to_links(P)
    assert h.sum() + v.sum() == 4 * P.sum()
    assert np.array_equal(links_to_selection(h, v), P)
