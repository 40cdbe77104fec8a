"""quantize(state, profile): every bank kind, bad input refused before an image exists."""

from __future__ import annotations

import numpy as np
import pytest

from rfctl.config import load_config, parse_config
from rfctl.errors import HardwareConstraintError
from rfctl.hal import compile_board, dequantize, quantize, selection_to_links
from rfctl.state import ArrayState, DmaTuning


def _board(**bank_overrides) -> dict:
    return {
        "kind": "board", "name": "t", "banks": [
            {"name": "ph", "kind": "phase", "count": 16, "bits": 3},
            {"name": "sw", "kind": "switch_matrix", "antennas": 16, "rf_chains": 2},
            {"name": "pin", "kind": "pin_links", "rows": 4, "cols": 4, "h_s": 2,
             "v_s": 2, **bank_overrides},
            {"name": "feed", "kind": "feed_mux", "rf_chains": 1, "rows": 4, "cols": 4},
        ],
    }


def _state(rng: np.random.Generator) -> ArrayState:
    P = np.zeros((3, 3), dtype=bool)
    P[1, 1] = True
    S = rng.random((16, 2)) < 0.5
    return ArrayState(phases=rng.uniform(-np.pi, np.pi, 16), switch=S, selection=P)


def test_all_dbraa_banks(rng) -> None:
    prof = parse_config(_board())
    st = _state(rng)
    img = quantize(st, prof)
    assert list(img.banks) == ["ph", "sw", "pin", "feed"]
    ph = img.banks["ph"]
    assert ph.bits == 3 and ph.max_error <= np.pi / 8 + 1e-12
    assert np.array_equal(img.banks["sw"].codes, st.switch.ravel().astype(int))
    h, v = selection_to_links(st.selection)
    assert np.array_equal(img.banks["pin"].codes,
                          np.concatenate([h.ravel(), v.ravel()]).astype(int))
    assert img.banks["feed"].codes.tolist() == [1 * 3 + 1]
    assert img.banks["feed"].bits == 4  # 9 candidates need 4 bits
    # dequantize gives back what the codes realise
    back = dequantize(img, st)
    assert np.array_equal(back.selection, st.selection)
    assert np.array_equal(back.switch, st.switch)
    assert np.allclose(np.exp(1j * back.phases), np.exp(1j * ph.realised))


def test_safety_limit_on_diodes(rng) -> None:
    prof = parse_config(_board(max_on=3))  # one antenna needs 4 links
    with pytest.raises(HardwareConstraintError, match="max_on = 3") as ei:
        quantize(_state(rng), prof)
    assert ei.value.bank == "pin"


def test_spacing_violation_refused(rng) -> None:
    prof = parse_config(_board())
    st = _state(rng)
    P = np.zeros((3, 3), dtype=bool)
    P[0, 0] = P[1, 1] = True
    with pytest.raises(HardwareConstraintError, match="share a pixel"):
        quantize(st.replace(selection=P), prof)


def test_wrong_sizes_and_nonfinite_refused(rng) -> None:
    prof = parse_config(_board())
    st = _state(rng)
    with pytest.raises(HardwareConstraintError, match="16 elements"):
        quantize(st.replace(phases=np.zeros(15), switch=None), prof)
    bad = st.phases.copy()
    bad[5] = np.nan
    with pytest.raises(HardwareConstraintError, match="element 5") as ei:
        quantize(st.replace(phases=bad), prof)
    assert ei.value.element == 5
    with pytest.raises(HardwareConstraintError, match="16 × 2"):
        quantize(st.replace(switch=np.zeros((16, 3), bool)), prof)


def test_state_part_without_a_bank_is_refused(rng) -> None:
    prof = parse_config({"kind": "board", "name": "p", "banks": [
        {"name": "ph", "kind": "phase", "count": 16, "bits": 3}]})
    st = _state(rng)
    with pytest.raises(HardwareConstraintError,
                       match=r"sets switch but board 'p' has no bank for it \(a switch_matrix"):
        quantize(st.replace(selection=None), prof)
    with pytest.raises(HardwareConstraintError, match=r"sets selection but .* feed_mux or pin_"):
        quantize(st.replace(switch=None), prof)


def _dma_state(b: np.ndarray) -> ArrayState:
    y_self = np.full(b.size, 12.37 + 30j)
    return ArrayState(dma=DmaTuning(b=b, r0=1.0, y_self=y_self))


def test_lorentzian_bank_raises_out_of_range_by_default() -> None:
    prof = parse_config({"kind": "board", "name": "d", "banks": [
        {"name": "tune", "kind": "lorentzian", "count": 4,
         "arc": {"bits": 2, "psi_min": -1.5, "psi_max": 0.0}}]})
    # b = −Im y_ss puts every element at resonance: q = −j, ψ = −π/2 — inside the arc
    ok = _dma_state(np.full(4, -30.0))
    img = quantize(ok, prof)
    assert img.banks["tune"].out_of_range == 0
    far = _dma_state(np.array([-30.0, -30.0, 1e3, -30.0]))  # ψ → π/2, far outside
    with pytest.raises(HardwareConstraintError, match="element 2") as ei:
        quantize(far, prof)
    assert ei.value.element == 2


def test_lorentzian_nearest_policy_reports_and_dequantizes() -> None:
    prof = load_config("sim-dma-4x8")
    rng = np.random.default_rng(3)
    st = _dma_state(rng.normal(-30.0, 20.0, 32))
    img = quantize(st, prof)
    tb = img.banks["tune" if "tune" in img.banks else "tuning"]
    assert tb.bits == 2 and np.all(tb.codes < 4)
    back = dequantize(img, st)
    # the dequantized tuning realises exactly the table responses the codes select
    assert np.allclose(back.dma.response, tb.realised, atol=1e-12)
    # the shipped table has lossy entries (ρ = 0.97): the implied Re Y_s differs from R0
    assert back.dma.g is not None


def test_builtin_table_board_with_calibration(rng) -> None:
    board = compile_board(load_config("sim-dbraa-14x14-table"))
    book = board.codebooks["phase"]
    phases = rng.uniform(-np.pi, np.pi, 196)
    st = ArrayState(phases=phases)
    img = quantize(st, board)
    ph = img.banks["phase"]
    assert ph.bits == 7
    # table phases are within ±0.6° of the 2.8125° grid, so the error is at most half
    # a step plus that ripple
    assert ph.max_error <= np.deg2rad(2.8125 / 2 + 0.6) + 1e-12
    # realised = table phase + calibration offset of the element
    assert np.allclose(np.exp(1j * ph.realised),
                       np.exp(1j * (np.angle(book.entries[ph.codes]) + book.offsets)))


def test_every_configurable_bank_kind_has_exactly_one_handler() -> None:
    """The bank union in rfctl.config and the handler registry in rfctl.hal.banks name the
    same kinds, and each handler's state part is an ArrayState field."""
    import dataclasses
    import typing

    from rfctl.config import Bank
    from rfctl.hal.banks import registry

    union = typing.get_args(Bank)[0]
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0]
             for m in typing.get_args(union)}
    assert kinds == set(registry())
    fields = {f.name for f in dataclasses.fields(ArrayState)}
    for kind, h in registry().items():
        assert h.kind == kind and h.state_part in fields


def test_a_handler_missing_part_of_the_interface_is_refused_at_registration() -> None:
    import pytest

    from rfctl.hal.banks import BankHandler, register, registry

    class Half(BankHandler):
        kind = "half-made"
        state_part = "phases"

        def bits(self, bank, codebook=None) -> int:
            return 1

    with pytest.raises(TypeError, match="abstract"):
        register(Half)
    assert "half-made" not in registry()
