"""Third-party SCPI instruments in the lab loop (a new user's trial, issue 13): readings
that are not finite numbers, ``*OPC?`` spellings, read timeouts, the error queue, the
generic-dialect warning, the profile in the run record and ``rfctl validate`` on a
profile.

The instruments are rfctl's simulated ones (``rfctl.sims.scpi_instruments``) with their
fault injection: after K readings they send SCPI's "not a number" (or another reply),
queue an error with every reading, answer ``*OPC?`` with ``+1`` or slowly. A profile in
our own words, like a user's for a meter whose readings are in W, is written per test.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rfctl.drivers.instrument_profiles import InstrumentProfile, load_instrument_profile
from rfctl.drivers.instruments import open_instrument
from rfctl.sims.sim_bench import BenchModel, SimBench
from rfctl.sims.simboard import SimBoardFirmware

from rfctl.cli import main
from rfctl.config import load_config
from rfctl.errors import ConfigError, DeviceError

LAB = load_config("sim-lab-8x8")

# a user's profile for a power meter that reads in W (our words; the trial's was alike)
W_METER = """\
kind = "instrument"
name = "watt-meter"
instrument = "power-meter"
description = "a power meter set to read in W"
idn = ["NOBODY,NOTHING,*"]
reading = "w"
{extra}
[dialect]
setup = ["*CLS", "INIT:CONT OFF", "UNIT:POW W"]
measure = "INIT;*OPC?;:FETC?"

[dialect.settings.frequency]
set = "SENS:FREQ {{v:.9e}}"
query = "SENS:FREQ?"
min = 1e6
max = 110e9
"""


def w_profile(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "watt-meter.toml"
    p.write_text(W_METER.format(extra=extra))
    return p


@pytest.fixture
def bench():
    fw = SimBoardFirmware.from_profile(LAB)
    model = BenchModel.random(fw, LAB, 8, 8, seed=21, noise=0.05)
    with SimBench(model) as b:
        yield b, b.start()


@pytest.fixture
def served():
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", LAB, rows=8, cols=8, seed=8, noise=0.05)
    yield lab
    lab.stop()


# ------------------------------------------------------------- findings 1–3: readings
SENTINELS = ["+9.91000000E+37", "9.91E37", "+9.9E37", "-9.90000000E+37", "NAN", "nan",
             "INF", "-INF", "+inf"]


@pytest.mark.parametrize("reply", SENTINELS)
@pytest.mark.parametrize("unit", ["dbm", "w"])
def test_scpi_sentinels_and_nan_are_refused_in_any_unit(bench, tmp_path, reply, unit) -> None:
    """SCPI's NaN (9.91E37) and ±INF (±9.9E37), and NaN/INF written out, are no
    readings: a DeviceError naming the instrument and the raw reply, in dBm and in W
    (in W, 9.91E37 used to be taken as 4e37 W, "peak 409.96 dBm")."""
    b, res = bench
    sim = b.instruments["power-meter"]
    prof = "rfctl-sim-power-meter" if unit == "dbm" else w_profile(tmp_path)
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py", profile=prof)
    try:
        good = pm.read_power()
        assert math.isfinite(good) and 0 < good < 1
        sim.fault_after, sim.fault_reply = sim.readings, reply
        with pytest.raises(DeviceError) as ei:
            pm.read_power()
        msg = str(ei.value)
        assert pm.name in msg and repr(reply) in msg, msg
    finally:
        pm.close()


def test_watt_readings_agree_with_dbm_readings_and_overflowing_dbm_is_refused(bench,
                                                                             tmp_path) -> None:
    b, res = bench
    sim = b.instruments["power-meter"]
    sim.continuous = False
    pw = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                         profile=w_profile(tmp_path))
    w = pw.read_power()
    assert w == pytest.approx(sim._trace, rel=1e-7)  # the sweep just read, in W
    pw.close()
    pd = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    assert sim.unit == "DBM"  # the dBm profile's setup set it back
    d = pd.read_power()
    assert d == pytest.approx(sim._trace, rel=1e-4)  # dBm with 4 decimals
    for big in ("+4000", "1e300"):  # 10^(v/10) overflows: no power an instrument measures
        sim.fault_after, sim.fault_reply = sim.readings, big
        with pytest.raises(DeviceError, match=re.escape(pd.name) + ".*" + re.escape(repr(big))):
            pd.read_power()
    pd.close()


def test_vna_sentinel_is_refused(bench) -> None:
    b, res = bench
    sim = b.instruments["vna"]
    v = open_instrument("vna", res["vna"], visa_library="@py")
    assert math.isfinite(abs(v.s21()))
    sim.fault_after, sim.fault_reply = sim.readings, "9.91E37,0"
    with pytest.raises(DeviceError, match="not a number"):
        v.s21()
    v.close()


@pytest.mark.parametrize("action,reply", [("sweep", "+9.91000000E+37"),
                                          ("optimize", "+9.91000000E+37"),
                                          ("optimize", "NAN"),
                                          ("calibrate", "9.9E37")])
def test_cli_run_hit_by_a_sentinel_exits_1_restored_with_partial_records(served, tmp_path,
                                                                        capsys, action,
                                                                        reply) -> None:
    """End to end through the CLI: the meter starts sending the sentinel after 25
    readings. Exit 1 (not an internal error, not exit 0 with "nan dBm"), the board back
    on its image from before the run, the 25 readings and a plot kept, the outcome
    "stopped" naming the raw reply."""
    sim = served.bench.instruments["power-meter"]
    sim.fault_after, sim.fault_reply = 25, reply
    before = bytes(served.server.firmware.active)
    out = tmp_path / "runs"
    out.mkdir()
    extra = {"sweep": ["--points", "60"], "optimize": ["--budget", "60"],
             "calibrate": ["--states", "4", "--passes", "1"]}[action]
    capsys.readouterr()
    code = main(["lab", action, "--url", served.url, "--meter",
                 served.resources["power-meter"], "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1, err
    assert repr(reply) in err and "restored to its previous image" in err, err
    assert bytes(served.server.firmware.active) == before
    (run,) = out.iterdir()
    data = json.loads((run / "data.json").read_text())
    n = len(data["rows"])
    assert 0 < n <= 25 and all(math.isfinite(r["power_w"]) for r in data["rows"]), n
    assert list(run.glob("*.png")), list(run.iterdir())
    snap = json.loads((run / "snapshot.json").read_text())
    assert snap["outcome"].startswith("stopped") and repr(reply) in snap["outcome"]


def test_cli_watt_profile_sentinel_is_not_a_peak(served, tmp_path, capsys) -> None:
    """Finding 3: with readings in W, a sweep whose meter answers 9.91E37 from the
    start used to report "peak 409.96 dBm" and exit 0."""
    sim = served.bench.instruments["power-meter"]
    sim.fault_after, sim.fault_reply = 0, "+9.91000000E+37"
    assert main(["lab", "sweep", "--url", served.url, "--meter",
                 served.resources["power-meter"], "--instrument-profile",
                 str(w_profile(tmp_path)), "--points", "10", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "'+9.91000000E+37'" in err and "peak" not in err


# ------------------------------------------------------------- finding 5: *OPC?
@pytest.mark.parametrize("opc", ["1", "+1", "1.0", "+1.000E+00", " 1"])
def test_opc_replies_numerically_one_are_accepted(bench, opc) -> None:
    b, res = bench
    b.instruments["power-meter"].opc_reply = opc
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    assert 0 < pm.read_power() < 1
    pm.close()


@pytest.mark.parametrize("opc", ["0", "+2", "1.5", "ON", "", "9.91E37"])
def test_opc_replies_other_than_one_are_refused(bench, opc) -> None:
    b, res = bench
    b.instruments["power-meter"].opc_reply = opc
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    with pytest.raises(DeviceError, match=r"expected '1;<reading>'"):
        pm.read_power()
    pm.close()


# ------------------------------------------------------------- finding 6: timeout
@pytest.mark.parametrize("value,why", [("-1", "-1.0 s"), ("0", "0.0 s"), ("nan", "nan s"),
                                       ("1e6", "3600"), ('"x"', "valid number")])
def test_profile_timeout_is_validated(tmp_path, value, why) -> None:
    p = w_profile(tmp_path, f"timeout_s = {value}")
    with pytest.raises(ConfigError, match=rf"watt-meter\.toml: timeout_s: .*{why}") as ei:
        load_instrument_profile(p)
    assert ei.value.field == "timeout_s"


def test_timeout_from_the_profile_or_the_caller(bench, tmp_path) -> None:
    _, res = bench
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                         profile=w_profile(tmp_path, "timeout_s = 7.5"))
    assert pm.timeout_s == 7.5 and pm.describe()["timeout_s"] == 7.5
    pm.close()
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                         profile=w_profile(tmp_path, "timeout_s = 7.5"), timeout_s=0.25)
    assert pm.timeout_s == 0.25
    pm.close()
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    assert pm.timeout_s == 2.0  # the default
    pm.close()
    for bad in (0.0, -1.0, math.nan, math.inf, 4000.0):
        with pytest.raises(ConfigError, match="timeout_s"):
            open_instrument("power-meter", res["power-meter"], visa_library="@py",
                            timeout_s=bad)


def test_cli_meter_timeout_waits_for_a_slow_sweep_and_is_recorded(served, tmp_path,
                                                                  capsys) -> None:
    """A sweep that takes 0.3 s: --meter-timeout 0.1 fails at reading 0 naming the
    timeout (exit 1); --meter-timeout 2.5 completes and the run record says 2.5 s."""
    sim = served.bench.instruments["power-meter"]
    sim.opc_delay_s = 0.3
    base = ["lab", "sweep", "--url", served.url, "--meter", served.resources["power-meter"],
            "--points", "3"]
    capsys.readouterr()
    assert main([*base, "--meter-timeout", "0.1", "--out", str(tmp_path / "a")]) == 1
    assert "within 100 ms" in capsys.readouterr().err
    assert main([*base, "--meter-timeout", "2.5", "--out", str(tmp_path / "b")]) == 0
    (run,) = (tmp_path / "b").glob("sweep-*")
    snap = json.loads((run / "snapshot.json").read_text())
    assert snap["instruments"][0]["timeout_s"] == 2.5
    assert snap["params"]["meter_timeout"] == 2.5


# ------------------------------------------------------------- finding 4: error queue
def test_error_queue_is_read_every_k_readings_and_at_the_end(bench, caplog) -> None:
    import logging

    b, res = bench
    sim = b.instruments["power-meter"]
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                         error_check_every=10)
    sim.fault_after, sim.fault_error = sim.readings, '-231,"Data questionable; UNCAL"'
    with caplog.at_level(logging.WARNING, logger="rfctl"):
        for _ in range(25):
            pm.read_power()
        assert [e["reading"] for e in pm.reported_errors] == [10] * 10 + [20] * 10
        assert "reported 10 error(s) by reading 10: 10 × -231" in caplog.text
        assert len(pm.poll_errors()) == 5  # the end of a run: the last five
    assert len(pm.reported_errors) == 25 and not sim.errors
    pm.close()
    # 0: never during the readings
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py",
                         error_check_every=0)
    for _ in range(12):
        pm.read_power()
    assert pm.reported_errors == [] and len(sim.errors) == 12
    pm.close()


@pytest.mark.parametrize("action", ["optimize", "sweep"])
def test_cli_errors_of_the_instrument_are_warned_and_recorded(served, tmp_path,
                                                              action) -> None:
    """Finding 4, end to end in a real CLI process (logging not configured): the meter
    queues -231 with every reading; a completed run prints ``rfctl: warning:`` naming
    the errors and lists all of them in the run record, with the checks every 100
    readings and at the end."""
    sim = served.bench.instruments["power-meter"]
    sim.fault_after, sim.fault_error = 0, '-231,"Data questionable; UNCAL"'
    extra = ["--budget", "150"] if action == "optimize" else ["--points", "150"]
    proc = subprocess.run([sys.executable, "-m", "rfctl", "lab", action, "--url", served.url,
                           "--meter", served.resources["power-meter"], "--out", str(tmp_path),
                           *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "rfctl: warning: power-meter@" in proc.stderr
    assert "× -231,\"Data questionable; UNCAL\"" in proc.stderr, proc.stderr
    (run,) = tmp_path.glob(f"{action}-*")
    snap = json.loads((run / "snapshot.json").read_text())
    (entry,) = snap["instrument_errors"].values()
    assert len(entry["errors"]) == sim.readings > 150 - 1
    assert {e["reading"] for e in entry["errors"]} >= {100}
    assert any("-231" in w for w in snap["warnings"])


def test_a_silent_instrument_is_not_asked_for_its_errors_at_the_end(served, tmp_path) -> None:
    sim = served.bench.instruments["power-meter"]
    sim.fault_after = 5
    orig = sim._reading

    def then_silent() -> str:
        r = orig()
        if sim.readings > 5:
            sim.silent = True
        return r

    sim._reading = then_silent
    assert main(["lab", "sweep", "--url", served.url, "--meter",
                 served.resources["power-meter"], "--points", "20", "--out", str(tmp_path),
                 "--meter-timeout", "0.3"]) == 1
    (run,) = tmp_path.glob("sweep-*")
    snap = json.loads((run / "snapshot.json").read_text())
    (entry,) = snap["instrument_errors"].values()
    assert entry["unread"] == "the instrument stopped answering"


# ------------------------------------------------------------- finding 7: generic dialect
def test_cli_unknown_model_warns_without_v_and_its_failure_names_the_dialect(served,
                                                                            tmp_path) -> None:
    """A model no profile claims: the generic-dialect warning on stderr of a real CLI
    process without -v, in the record of a completed run; when the model does not
    understand the generic dialect (here: it never answers the frequency query), the
    timeout says the generic dialect was used and how to give a profile."""
    sim = served.bench.instruments["power-meter"]
    sim.model = "ZX-9000"
    argv = [sys.executable, "-m", "rfctl", "lab", "sweep", "--url", served.url, "--meter",
            served.resources["power-meter"], "--points", "5", "--out", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    want = "'RFCTL,ZX-9000,0001,2.0' is not in any instrument profile; using the generic"
    assert "rfctl: warning: power-meter@" in proc.stderr and want in proc.stderr
    (run,) = tmp_path.glob("sweep-*")
    snap = json.loads((run / "snapshot.json").read_text())
    assert any(want in w for w in snap["warnings"])
    assert snap["instruments"][0]["profile_generic_fallback"] is True
    orig = sim._one
    sim._one = lambda cmd: None if cmd.upper() == "SENS:FREQ?" else orig(cmd)
    proc = subprocess.run([*argv, "--meter-timeout", "0.3"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert want in proc.stderr, proc.stderr
    assert "no reply to 'SENS:FREQ?'" in proc.stderr
    assert "driven with the generic power-meter SCPI dialect" in proc.stderr


def test_a_record_lists_warnings_of_an_instrument_opened_before_it(bench, tmp_path) -> None:
    from rfctl.lab import RunRecord

    b, res = bench
    b.instruments["power-meter"].model = "ZX-9000"
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    rec = RunRecord(tmp_path, "sweep")
    rec.snapshot(instruments=[pm])
    rec.finish("completed")
    snap = json.loads((rec.path / "snapshot.json").read_text())
    assert any("not in any instrument profile" in w for w in snap["warnings"])
    pm.close()


# ------------------------------------------------------------- 15, 16: records, schema
def test_the_record_holds_the_profile_contents(served, tmp_path) -> None:
    prof = w_profile(tmp_path, "timeout_s = 3.0\nerror_check_every = 50")
    assert main(["lab", "sweep", "--url", served.url, "--meter",
                 served.resources["power-meter"], "--instrument-profile", str(prof),
                 "--points", "4", "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.glob("sweep-*")
    inst = json.loads((run / "snapshot.json").read_text())["instruments"][0]
    assert inst["profile"] == "watt-meter" and inst["profile_file"] == str(prof.resolve())
    assert inst["profile_toml"] == prof.read_text()
    c = inst["profile_contents"]
    assert c["reading"] == "w" and c["timeout_s"] == 3.0 and c["error_check_every"] == 50
    assert c["dialect"]["setup"] == ["*CLS", "INIT:CONT OFF", "UNIT:POW W"]
    assert c["dialect"]["settings"]["frequency"]["max"] == 110e9
    assert InstrumentProfile.model_validate(c).name == "watt-meter"  # reloadable


def test_validate_accepts_instrument_profiles_and_names_file_field_reason(tmp_path,
                                                                          capsys) -> None:
    good = w_profile(tmp_path)
    assert main(["validate", str(good), "generic-vna"]) == 0
    out = capsys.readouterr().out
    assert "OK  instrument watt-meter: power-meter; reading w;" in out
    assert "OK  instrument generic-vna: vna" in out
    child = tmp_path / "child.toml"  # `base` names a built-in profile
    child.write_text('kind = "instrument"\nname = "child"\nbase = "generic-spectrum-analyzer"\n'
                     'idn = ["ME,SA-1,*"]\n[dialect.settings.rbw]\nmax = 3e6\n')
    assert main(["validate", str(child)]) == 0
    assert "OK  instrument child: spectrum-analyzer" in capsys.readouterr().out
    for body, field in [(W_METER.format(extra='reading = "volts"'), "reading"),
                        (W_METER.format(extra="timeout_s = -2"), "timeout_s"),
                        (W_METER.format(extra="error_check_every = -1"), "error_check_every"),
                        (W_METER.format(extra="").replace("{v:.9e}", "{v:d}"),
                         "dialect.settings.frequency"),
                        (W_METER.format(extra="bogus = 1"), "bogus"),
                        # an unknown base is the profile's error, not "not a board config"
                        ('kind = "instrument"\nbase = "nope"\n', "base")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(body.replace('reading = "w"\n', "", 1) if field == "reading" else body)
        assert main(["validate", str(bad)]) == 1
        err = capsys.readouterr().err
        assert f"{bad}: {field}:" in err, (field, err)


def test_readme_documents_every_instrument_profile_field() -> None:
    """Finding 16: every field of the schema (incl. ``reading`` and ``base``) is named
    in the README's lab section."""
    from rfctl.drivers.instrument_profiles import Dialect, SettingSpec

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    lab = text[text.index("## Lab measurements"):text.index("## Layout")]
    names = ({"base"} | set(InstrumentProfile.model_fields) | set(Dialect.model_fields)
             | set(SettingSpec.model_fields))
    # `name`, `name = …`, [name] or [dialect.name…] (a TOML table)
    missing = sorted(n for n in names
                     if not re.search(rf"(`{n}[` ]|[\[.]{n}[\].])", lab))
    assert not missing, missing


def test_an_error_of_a_model_on_the_generic_dialect_names_the_dialect(bench) -> None:
    b, res = bench
    b.instruments["power-meter"].model = "ZX-9000"
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    with pytest.raises(DeviceError, match=r"-113.*generic power-meter SCPI dialect"):
        pm.set("SENS:FREQ:CW 1e9")  # a command the meter does not know
    pm.close()


def test_configs_lists_the_builtin_instrument_profiles(capsys) -> None:
    """`rfctl configs` names every built-in instrument profile (the names `base =` and
    --instrument-profile accept), after the board profiles and scenarios."""
    from rfctl.drivers.instrument_profiles import builtin_names

    assert main(["configs"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    listed = {r[0] for r in rows if r[1] == "instrument"}
    assert listed == set(builtin_names()) and "generic-spectrum-analyzer" in listed
