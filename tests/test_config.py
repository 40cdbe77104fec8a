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
    assert "greater than or equal to 1" in ei.value.reason


def test_cross_field_rules() -> None:
    sc = load_config("dbraa-14x14").model_dump()
    sc["sub6g"]["users"] = 5  # K_s > N_s = 4
    with pytest.raises(ConfigError, match=r"K_s ≤ N_s"):
        parse_config(sc)
    sc = load_config("dbraa-14x14").model_dump()
    sc["dbraa"]["n_sub6"] = 200
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
    with pytest.raises(ConfigError, match=r"cannot read .*none\.toml: No such file"):
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


# ------------------------------------------------------------------ issue 14: edges
def _scenario(name: str) -> dict:
    return load_config(name).model_dump()


@pytest.mark.parametrize("path,value", [
    (("dbraa", "f_m"), float("inf")),
    (("dbraa", "f_m"), float("nan")),
    (("dma", "frequency_hz"), float("inf")),
    (("dma", "waveguide_b_m"), float("inf")),
    (("dma", "r0_siemens"), float("inf")),
    (("dma", "r0_siemens"), 0.0),
    (("dma", "r0_siemens"), -1.0),
    (("dma_task", "max_power"), float("inf")),
    (("dma_task", "noise_power"), float("inf")),
    (("dma_task", "user_region_m"), [0.0, float("nan"), 0.0, 1.0, 1.5]),
    (("dma_task", "directions"), [[float("nan"), 0.0]]),
    (("dma_task", "directions"), [[1e17, 0.0]]),
    (("sub6g", "sinr_threshold"), float("inf")),
    (("mmwave", "gain_threshold"), 1e300),
    (("total_power",), float("inf")),
    (("dbraa", "rows"), "6"),
    (("dbraa", "rows"), True),
    (("dbraa", "f_m"), 3e10 + 1j),
    (("dbraa", "n_rf"), 4.0),
    (("seed",), 10**30),
])
def test_bad_scenario_numbers_are_refused(path: tuple, value: object) -> None:
    sc = _scenario("dma-4x8" if path[0].startswith("dma") else "dbraa-14x14")
    d = sc
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = value
    with pytest.raises(ConfigError) as ei:
        parse_config(sc, source="s.toml")
    assert ei.value.field.startswith(".".join(path[:1]))
    assert str(ei.value).startswith("s.toml: ")


@pytest.mark.parametrize("link", [{"timeout_s": float("inf")}, {"timeout_s": 0.0},
                                  {"timeout_s": 1e6}, {"baud": "9600"}, {"retries": True}])
def test_link_timeouts_are_bounded_and_typed(link: dict) -> None:
    with pytest.raises(ConfigError, match="link"):
        parse_config({**_board(), "link": link})


@pytest.mark.parametrize("bank", [
    {"bits": "6"}, {"bits": True}, {"count": 10**12}, {"count": 8.0},
    {"bits": None, "table_file": "a\x00b.csv"}, {"max_on": 9},
])
def test_bank_fields_are_strict_and_bounded(bank: dict) -> None:
    with pytest.raises(ConfigError, match=r"banks\.0"):
        parse_config(_board(**bank))


def test_lorentzian_tuple_fields_are_finite() -> None:
    base = {"kind": "board", "name": "d", "banks": [
        {"name": "t", "kind": "lorentzian", "count": 4, "arc": {"bits": 2}}]}
    assert parse_config(base).banks[0].bias_v == (0.0, 10.0)
    for bad in ([0.0, float("nan")], [0.0, float("inf")], [0, 1e9], ["0", "1"]):
        b = {**base, "banks": [{**base["banks"][0], "bias_v": bad}]}
        with pytest.raises(ConfigError, match="bias_v"):
            parse_config(b)
    b = {**base, "banks": [{**base["banks"][0], "arc": {"bits": 2, "psi_max": float("inf")}}]}
    with pytest.raises(ConfigError, match="psi_max"):
        parse_config(b)


def test_banks_cross_check_each_other() -> None:
    prof = load_config("sim-dbraa-14x14").model_dump()
    prof["banks"][1]["antennas"] = 197  # next to 196 phase shifters
    with pytest.raises(ConfigError, match=r"antennas = 197 .*196 phase shifters"):
        parse_config(prof)
    prof = load_config("sim-dbraa-14x14").model_dump()
    prof["banks"][3]["rows"] = 13
    with pytest.raises(ConfigError, match=r"pin_links .* 14 × 14 .* 13 × 14"):
        parse_config(prof)


def test_board_must_fit_the_scenario() -> None:
    from rfctl.config import check_board_for_scenario

    check_board_for_scenario(load_config("sim-dbraa-14x14"), load_config("dbraa-14x14"))
    check_board_for_scenario(load_config("sim-dma-4x8"), load_config("dma-4x8"))
    with pytest.raises(ConfigError, match="needs 196") as ei:
        check_board_for_scenario(load_config("sim-lab-8x8"), load_config("dbraa-14x14"))
    assert ei.value.field == "banks.phase.count"
    prof = load_config("sim-dbraa-14x14").model_dump()
    prof["banks"][1]["rf_chains"] = 3
    with pytest.raises(ConfigError, match="N_RF"):
        check_board_for_scenario(parse_config(prof), load_config("dbraa-14x14"))
    prof = load_config("sim-dbraa-14x14").model_dump()
    prof["banks"][3]["rf_chains"] = 3
    with pytest.raises(ConfigError, match="feed count = N_s"):
        check_board_for_scenario(parse_config(prof), load_config("dbraa-14x14"))


def test_missing_bank_is_a_clear_error() -> None:
    prof = load_config("sim-dma-4x8")
    assert prof.bank("lorentzian").name == "tuning"
    assert prof.find_bank("phase") is None
    with pytest.raises(ConfigError, match=r"'sim-dma-4x8' has no phase bank .*tuning"):
        prof.bank("phase")


def test_file_edges_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'kind = "board"\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml.*not UTF-8"):
        load_config(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="NUL"):
        load_config("a\x00b.toml")
    deep = tmp_path / "deep.toml"
    deep.write_text("kind = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.toml"):
        load_config(deep)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)


def _table_board(tmp_path: Path, csv_bytes: bytes, kind: str = "lorentzian") -> BoardProfile:
    (tmp_path / "t.csv").write_bytes(csv_bytes)
    (tmp_path / "b.toml").write_text(
        f'kind = "board"\nname = "b"\n[[banks]]\nname = "t"\nkind = "{kind}"\ncount = 4\n'
        'table_file = "t.csv"\n')
    return load_config(tmp_path / "b.toml")


@pytest.mark.parametrize("data,match", [
    (b"code,re,im\n0,0.5,-0.5\n", "at least two entries"),
    (b"code,re,im\n0,0.5,-0.5\n1,\xff,0\n", "not UTF-8"),
    (b"code,re,im\n0,0.5,-0.5\n1,0\x00,0\n", "t.csv"),
    (b"code,re,im\n0,0.5,-0.5\n1,1e300,0\n", "non-finite or huge"),
    (b"code,re,im\n0,0.5,-0.5\n1,nan,0\n", "non-finite"),
    (b"", "missing column"),
])
def test_table_edges_are_config_errors(tmp_path: Path, data: bytes, match: str) -> None:
    prof = _table_board(tmp_path, data)
    with pytest.raises(ConfigError, match=match) as ei:
        compile_board(prof)
    assert "banks.t.table_file" in str(ei.value)


def test_nul_byte_in_table_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "b.toml").write_text(
        'kind = "board"\nname = "b"\n[[banks]]\nname = "t"\nkind = "lorentzian"\ncount = 4\n'
        'table_file = "t\\u0000.csv"\n')
    with pytest.raises(ConfigError, match=r"banks\.0\.table_file: .*NUL"):
        load_config(tmp_path / "b.toml")


def test_panel_and_feed_cross_checks_and_size_bounds() -> None:
    prof = load_config("sim-dbraa-14x14").model_dump()
    prof["banks"] = [b for b in prof["banks"] if b["kind"] in ("phase", "pin_links")]
    prof["banks"][0]["count"] = 195
    with pytest.raises(ConfigError, match=r"195 elements .* 14 × 14 panel"):
        parse_config(prof)
    feed = {"kind": "board", "name": "f", "banks": [
        {"name": "feed", "kind": "feed_mux", "rf_chains": 5, "rows": 3, "cols": 3}]}
    with pytest.raises(ConfigError, match="exceeds the 4 candidate"):
        parse_config(feed)
    sc = _scenario("dbraa-14x14")
    sc["dbraa"]["rows"] = 257
    with pytest.raises(ConfigError, match=r"dbraa\.rows"):
        parse_config(sc)


def test_numpy_numbers_from_a_sweep_grid_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    prof = parse_config(_board(count=np.int64(8), bits=np.int32(4)))
    assert prof.banks[0].count == 8 and type(prof.banks[0].count) is int
    sc = _scenario("dbraa-14x14")
    sc["mmwave"]["power"] = np.float32(7.0)
    assert parse_config(sc).mmwave.power == 7.0
    for bad in (np.bool_(True), np.complex128(8), np.float64("nan"), np.float64(8.0)):
        with pytest.raises(ConfigError, match=r"banks\.0\.count"):
            parse_config(_board(count=bad))
