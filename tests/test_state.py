"""ArrayState: JSON round trip is exact; bad files give clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rfctl.config import load_config
from rfctl.errors import ConfigError, OutputError
from rfctl.optimize.steering import steering_design
from rfctl.state import ArrayState, DesignRecord, DmaTuning


def test_json_roundtrip_is_bit_exact(tmp_path: Path, rng) -> None:
    awkward = np.array([1 / 3, -0.0, 5e-324, 9999.999999999998, np.pi, -2.5e-17])
    f_bb = (rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3)))
    f_bb[0, 0] = complex(-0.0, -0.0)
    st = ArrayState(
        phases=awkward,
        switch=rng.random((6, 4)) < 0.5,
        selection=np.eye(3, dtype=bool),
        f_bb=f_bb,
        f_s=rng.standard_normal((9, 2)) + 1j * awkward[:2],
        dma=DmaTuning(b=rng.normal(0, 10, 5), r0=1.0, y_self=rng.standard_normal(5) + 3j,
                      g=np.full(5, 0.9)),
        dma_b=rng.standard_normal((4, 4)) * (1 + 1j),
        record=DesignRecord(scenario={"name": "x"}, seed=3, realisation=7,
                            channels={"mmwave": f_bb}, notes={"k": 1}),
    )
    st.save(tmp_path / "s.json")
    back = ArrayState.load(tmp_path / "s.json")
    assert back.equals(st)
    assert np.signbit(back.f_bb[0, 0].real) and np.signbit(back.f_bb[0, 0].imag)
    assert back.phases[2] == 5e-324


def test_saved_design_records_what_it_was_designed_for(tmp_path: Path) -> None:
    sc = load_config("dbraa-14x14")
    res = steering_design(sc, realisation=1)
    res.state.save(tmp_path / "d.json")
    back = ArrayState.load(tmp_path / "d.json")
    assert back.record.seed == sc.seed and back.record.realisation == 1
    assert back.record.scenario["name"] == "dbraa-14x14"
    # the channel stored in the record is the one the seed regenerates
    again = steering_design(sc, realisation=1)
    assert np.array_equal(back.record.channels["mmwave"], again.state.record.channels["mmwave"])


def test_bad_state_files(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match=r"x\.json: invalid JSON"):
        ArrayState.load(p)
    p.write_text('{"format": "rfctl-state/1", "phasez": [1]}')
    with pytest.raises(ConfigError, match="phasez: unknown field"):
        ArrayState.load(p)
    p.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="format"):
        ArrayState.load(p)
    p.write_text('{"format": "rfctl-state/1", "f_bb": {"re": [1, 2], "im": [1]}}')
    with pytest.raises(ConfigError, match="shapes differ"):
        ArrayState.load(p)
    p.write_text('{"format": "rfctl-state/1", "switch": [[0, 2]]}')
    with pytest.raises(ConfigError, match="0 or 1"):
        ArrayState.load(p)


def test_dma_tuning_response_on_lorentzian_circle(rng) -> None:
    t = DmaTuning(b=rng.normal(0, 50, 20), r0=1.0, y_self=12.37 + rng.normal(0, 30, 20) * 1j)
    q = t.response
    assert np.allclose(np.abs(q + 0.5j), 0.5)  # |q + j/2| = 1/2
    assert np.allclose(q, (-1j + np.exp(1j * t.psi)) / 2)
    back = t.from_response(q)
    assert back.g is None and np.allclose(back.b, t.b)


def test_lorentzian_resonance_frequency_round_trip(rng) -> None:
    """ω₀ from ψ: the normalised polarizability Γω/(ω₀² − ω² + jΓω) equals (−j + e^{jψ})/2."""
    t = DmaTuning(b=rng.normal(0, 30, 16), r0=1.0, y_self=12.37 + 1j * rng.normal(0, 30, 16))
    f, damping = 10e9, 2 * np.pi * 0.5e9
    f0 = t.resonance_frequency(f, damping)
    w, w0 = 2 * np.pi * f, 2 * np.pi * f0
    ok = np.isfinite(f0)
    q = damping * w / (w0[ok] ** 2 - w**2 + 1j * damping * w)
    assert np.allclose(q, (-1j + np.exp(1j * t.psi[ok])) / 2)


# ------------------------------------------------------------------ issue 14: state edges
def _good() -> dict:
    st = ArrayState(
        phases=np.linspace(-3, 3, 4), switch=np.eye(4, 2, dtype=bool),
        dma=DmaTuning(b=np.array([0.5, -0.5]), r0=1.0, y_self=np.array([0.1 + 0.2j, 0.1])),
        record=DesignRecord(scenario=load_config("dma-4x8").model_dump(mode="json"),
                            seed=3, realisation=1),
    )
    return json.loads(st.to_json())


def _set(d: dict, path: str, value: object) -> dict:
    keys = path.split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    if isinstance(cur, list):
        cur[int(keys[-1])] = value
    else:
        cur[keys[-1]] = value
    return d


@pytest.mark.parametrize("path,value,field", [
    ("record", [1, 2], "record"),
    ("record.realisation", "abc", "record.realisation"),
    ("record.realisation", None, "record.realisation"),
    ("record.realisation", -1, "record.realisation"),
    ("record.realisation", True, "record.realisation"),
    ("record.seed", 1.5, "record.seed"),
    ("record.channels", [1], "record.channels"),
    ("record.scenario.dma.frequency_hz", 1e300, "dma.frequency_hz"),
    ("phases", "abc", "phases"),
    ("phases", {}, "phases"),
    ("phases.0", "1.5", "phases"),
    ("phases.0", True, "phases"),
    ("phases.0", 1e17, "phases"),
    ("phases.0", None, "phases"),
    ("phases", {"re": [1, 2, 3, 4], "im": [0, 0, 0, 1]}, "phases"),
    ("phases", [[1, 2], [3]], "phases"),
    ("switch", [1, 0, 0, 1], "switch"),
    ("switch.0.0", 2, "switch"),
    ("switch.0.0", 0.5, "switch"),
    ("dma", [1], "dma"),
    ("dma.r0", "abc", "dma.r0"),
    ("dma.r0", 0, "dma.r0"),
    ("dma.r0", -1.0, "dma.r0"),
    ("dma.r0", True, "dma.r0"),
    ("dma.y_self", {"re": [0.1], "im": [0.2]}, "dma.y_self"),
    ("dma.y_self.re.0", -5.0, "dma.y_self"),
    ("dma.b.0", 1e300, "dma.b"),
])
def test_bad_state_values_name_the_field(tmp_path: Path, path: str, value: object,
                                         field: str) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_set(_good(), path, value)))
    with pytest.raises(ConfigError) as ei:
        ArrayState.load(p)
    assert str(ei.value).startswith(str(p))
    assert field in str(ei.value)


def test_non_finite_json_tokens_and_bytes(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_good()).replace('"b": [0.5', '"b": [NaN', 1))
    with pytest.raises(ConfigError, match="NaN"):
        ArrayState.load(p)
    p.write_bytes(b'{"format": "rfctl-state/1", "notes": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        ArrayState.load(p)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="JSON"):
        ArrayState.load(p)
    with pytest.raises(ConfigError, match="is a directory"):
        ArrayState.load(tmp_path)


def test_good_state_loads_and_save_errors_are_clear(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_good()))
    st = ArrayState.load(p)
    assert st.record.realisation == 1 and st.dma.r0 == 1.0
    with pytest.raises(OutputError, match="is a directory"):
        st.save(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        st.save(tmp_path / "no" / "s.json")


def test_complex_phases_are_refused_in_memory() -> None:
    with pytest.raises(ConfigError, match="real"):
        ArrayState(phases=np.array([1 + 1j, 0]))
    for bad in (["1.5"], [True], [1e17]):
        with pytest.raises(ConfigError, match="phases"):
            ArrayState(phases=bad)
    with pytest.raises(ConfigError, match="f_bb"):
        ArrayState(f_bb=[["a"]])
    assert ArrayState(phases=np.array([1 + 0j])).phases.dtype == float
