"""Config validation: errors name the source, the field path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfctl.config import BoardProfile, Scenario, builtin_names, load_config, parse_config
from rfctl.errors import ConfigError
from rfctl.hal import compile_board


def test_builtins_load_and_validate() -> None:
    names = builtin_names()
    assert {"dbraa-14x14", "dma-4x8", "sim-dbraa-14x14", "sim-dma-4x8"} <= set(names)
    for n in names:
        cfg = load_config(n)
        assert cfg.name == n
        if isinstance(cfg, BoardProfile):
            compile_board(cfg)
    sc = load_config("dbraa-14x14")
    assert isinstance(sc, Scenario)
    assert sc.dbraa.n_candidates == 169 and sc.dbraa.wavelength_ratio == pytest.approx(1 / 6)


def _board(**bank) -> dict:
    return {"kind": "board", "name": "b",
            "banks": [{"name": "ph", "kind": "phase", "count": 8, "bits": 4, **bank}]}


def test_unknown_field_names_the_field() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(_board(colour="red"), source="x.toml")
    assert ei.value.field == "banks.0.colour"
    assert "unknown field" in ei.value.reason
    assert str(ei.value).startswith("x.toml: banks.0.colour")


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(_board(bits="six"))
    assert ei.value.field == "banks.0.bits"


def test_negative_count_names_the_field() -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config(_board(count=-3))
    assert ei.value.field == "banks.0.count"
    assert "greater than 0" in ei.value.reason


def test_cross_field_rules() -> None:
    sc = load_config("dbraa-14x14").model_dump()
    sc["sub6g"]["users"] = 5  # K_s > N_s = 4
    with pytest.raises(ConfigError, match=r"K_s ≤ N_s"):
        parse_config(sc)
    sc = load_config("dbraa-14x14").model_dump()
    sc["dbraa"]["n_sub6"] = 500
    with pytest.raises(ConfigError, match=r"dbraa: .*169 candidate"):
        parse_config(sc)
    with pytest.raises(ConfigError, match="exactly one of bits"):
        parse_config(_board(table_file="t.csv"))


def test_dma_below_cutoff_is_refused() -> None:
    sc = load_config("dma-4x8").model_dump()
    sc["dma"]["waveguide_a_m"] = 0.01  # λ/2 = 15 mm at 10 GHz
    with pytest.raises(ConfigError, match="cut-off") as ei:
        parse_config(sc)
    assert ei.value.field == "dma"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "board"\nname = "x"\nbanks = [ { name = "p", kind = "phase" ')
    with pytest.raises(ConfigError, match=r"bad\.toml: TOML syntax error"):
        load_config(bad)
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match=r"none\.toml: cannot read"):
        load_config(missing)
    with pytest.raises(ConfigError, match="no built-in config"):
        load_config("no-such-board")
    nokind = tmp_path / "nokind.toml"
    nokind.write_text('name = "x"\n')
    with pytest.raises(ConfigError, match=r"nokind\.toml: kind"):
        load_config(nokind)


def test_table_files_resolve_and_fail_clearly(tmp_path: Path) -> None:
    (tmp_path / "tab.csv").write_text("code,i\n0,1\n")  # no q column
    (tmp_path / "b.toml").write_text(
        'kind = "board"\nname = "b"\n[[banks]]\nname = "ph"\nkind = "phase"\ncount = 4\n'
        'table_file = "tab.csv"\n')
    prof = load_config(tmp_path / "b.toml")
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['q'\]"):
        compile_board(prof)
    (tmp_path / "tab.csv").write_text("code,i,q\n0,1,0\n1,0,1\n2,-1,0\n3,0,-1\n")
    assert compile_board(prof).codebooks["ph"].n_codes == 4
