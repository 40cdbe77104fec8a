"""Lab loop on a one-bit board and third-party-style SCPI instruments: instrument
profiles, synchronised readings, blind optimisation, one-bit calibration, CLI exit codes
and records. Draws here (seeds 101…) differ from the benchmark's (seeds 0…)."""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from rfctl.drivers.instrument_profiles import load_instrument_profile
from rfctl.drivers.instruments import open_instrument
from rfctl.drivers.osris import open_osris
from rfctl.sims.onebit_bench import OneBitBench, best_onebit_pattern
from rfctl.sims.osris_firmware import OsrisFirmwareSim
from rfctl.sims.sim_bench import SimBench

from rfctl.cli import main
from rfctl.config import load_config
from rfctl.errors import ConfigError, DeviceError
from rfctl.lab import (
    CalibrationInterruptedError,
    OptimizeInterruptedError,
    best_onebit,
    channel_estimation,
    greedy_flips,
    onebit_calibration,
    optimize_board,
)

OSRIS = load_config("osris-16x16")


def noisy_power(bench: OneBitBench, seed: int):
    """Power readings of ``bench``'s field with unit complex receiver noise, seeded by
    ``seed + 50`` (the readings of the estimation and greedy tests)."""
    g, d = bench.affine()
    nr = np.random.default_rng(seed + 50)

    def meas(x):
        return abs(g + x @ d + (nr.standard_normal() + 1j * nr.standard_normal())
                   / np.sqrt(2)) ** 2

    return meas


@pytest.fixture
def onebit():
    fw = OsrisFirmwareSim()
    model = OneBitBench.random(fw, seed=101, noise=1.0, direct_path=1.0)
    with SimBench(model, freq_hz=model.f0) as b:
        res = b.start()
        yield fw, model, b, res


def test_exact_onebit_optimum_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 10))
        d = rng.normal(size=n) + 1j * rng.normal(size=n)
        g = complex(rng.normal(), rng.normal()) * rng.uniform(0, 3)
        X = np.array(list(itertools.product([0, 1], repeat=n)))
        brute = np.abs(g + X @ d).max()
        x, v, _ = best_onebit(g, d)
        assert abs(v - brute) <= 1e-9 * max(1, brute)
        assert abs(abs(g + x @ d) - brute) <= 1e-9 * max(1, brute)
        assert abs(best_onebit_pattern(g, d)[1] - brute) <= 1e-9 * max(1, brute)


@pytest.mark.slow
def test_channel_estimation_is_exact_without_noise() -> None:
    for seed in (111, 112):
        b = OneBitBench.random(None, seed=seed, noise=0.0, direct_path=1.0)
        g, d = b.affine()
        res = channel_estimation(lambda x, g=g, d=d: abs(g + x @ d) ** 2, 256,
                                 budget=4 * 256, rng=np.random.default_rng(seed))
        assert b.gap_db(res.codes) < 0.05
    with pytest.raises(ConfigError, match=r"at least 2\(N \+ R\) = 544"):
        channel_estimation(lambda x: 1.0, 256, budget=500, rng=np.random.default_rng(0))


def _toggle_problem(rng: np.random.Generator, n: int, k: int, reps: int = 3):
    """K random bases, each read ``reps`` times and with every element toggled once, and
    powers of a random field with an offset and noise."""
    bases = rng.integers(0, 2, (k, n))
    base_of = np.repeat(np.arange(k), n + reps)
    tog = np.concatenate([np.r_[rng.permutation(n), [-1] * reps] for _ in range(k)])
    X = bases[base_of].copy()
    hit = tog >= 0
    X[np.flatnonzero(hit), tog[hit]] ^= 1
    d = rng.normal(size=n) + 1j * rng.normal(size=n)
    P = np.abs(0.3 * np.sqrt(n) + X @ d) ** 2 + 0.5 + np.sqrt(n) * rng.normal(size=len(X))
    return X.astype(float), P, (bases.astype(float), base_of, tog), d


def test_structured_lm_step_matches_the_dense_reference() -> None:
    """The Woodbury solve of the toggle-structured normal equations gives the dense
    path's LM step to 1e-9 (and solves the dense system to 1e-12 backward error); a
    wrong structure (one toggle misdeclared) is far off, so the check can fail."""
    from rfctl.lab.blind import _DenseRows, _ToggleRows

    rng = np.random.default_rng(17)
    cases = [(24, 4, 0.0, True), (256, 8, 0.0, True), (256, 8, 0.1, False), (256, 2, 0.0, True)]
    for n, k, ridge, offset in cases:
        X, P, st, d = _toggle_problem(rng, n, k)
        th = np.concatenate([[2.0], d.real + 0.2 * rng.normal(size=n),
                             d.imag + 0.2 * rng.normal(size=n), [0.3]])
        y = th[0] + X @ (th[1:n + 1] + 1j * th[n + 1:2 * n + 1])
        w = 1 / np.sqrt(np.abs(P))
        a, c = 2 * w * y.real, 2 * w * y.imag
        r = (np.abs(y) ** 2 + th[-1] - P) * w
        reg = np.r_[0.0, np.full(2 * n, ridge), 0.0]
        free = np.arange(2 * n + 2 if offset else 2 * n + 1)
        dense, fast = _DenseRows(X), _ToggleRows(st, n, X)
        g = np.concatenate([[a @ r], X.T @ (a * r), X.T @ (c * r), [w @ r]]) + reg * th
        g_fast = np.concatenate([[a @ r], fast.xt(a * r), fast.xt(c * r), [w @ r]]) + reg * th
        assert np.max(np.abs(g_fast - g)) <= 1e-12 * np.max(np.abs(g))
        assert np.max(np.abs(fast.field(d) - X @ d)) <= 1e-12 * np.max(np.abs(X @ d))
        dn, fn = dense.normal(a, c, w, reg, free), fast.normal(a, c, w, reg, free)
        assert np.max(np.abs(fn.diag - dn.diag)) <= 1e-12 * np.max(dn.diag)
        for lam in (1e-9, 1e-3, 1.0):
            s_dense, s_fast = dn.step(g, lam), fn.step(g, lam)
            H = (dn.A + np.diag(lam * (dn.diag + 1e-12 * dn.diag.max())))[np.ix_(free, free)]
            backward = np.linalg.norm(H @ s_fast[free] + g[free]) / np.linalg.norm(g[free])
            assert backward <= 1e-12, (n, k, lam, backward)
            if offset is False:
                assert s_fast[-1] == 0.0
            if k == 2 and lam < 1e-6:
                continue  # condition number ~4e11: both solve it to 1e-15, differ at 1e-7
            err = np.max(np.abs(s_fast - s_dense)) / np.max(np.abs(s_dense))
            assert err <= 1e-9, (n, k, ridge, offset, lam, err)
        # misdeclare one toggle: the structured step no longer solves the system
        bad = (st[0], st[1], st[2].copy())
        bad[2][0] = (bad[2][0] + 1) % n
        s_bad = _ToggleRows(bad, n, X).normal(a, c, w, reg, free).step(g, 1e-3)
        assert np.max(np.abs(s_bad - dn.step(g, 1e-3))) > 1e-6 * np.max(np.abs(s_bad))


def test_failed_structured_solve_falls_back_to_the_dense_step(monkeypatch) -> None:
    from rfctl.lab.blind import _ArrowNormal, _DenseRows, _ToggleRows

    rng = np.random.default_rng(19)
    n = 24
    X, P, st, d = _toggle_problem(rng, n, 4)
    y = 2.0 + X @ d
    w = 1 / np.sqrt(np.abs(P))
    a, c = 2 * w * y.real, 2 * w * y.imag
    r = (np.abs(y) ** 2 - P) * w
    reg, free = np.zeros(2 * n + 2), np.arange(2 * n + 2)
    g = np.concatenate([[a @ r], X.T @ (a * r), X.T @ (c * r), [w @ r]])
    monkeypatch.setattr(_ArrowNormal, "_binv", lambda self, V, damp: V * np.nan)
    step = _ToggleRows(st, n, X).normal(a, c, w, reg, free).step(g, 1e-3)
    assert np.array_equal(step, _DenseRows(X).normal(a, c, w, reg, free).step(g, 1e-3))


def test_structured_fit_matches_the_dense_reference() -> None:
    from rfctl.lab.blind import fit_affine_field

    rng = np.random.default_rng(18)
    for n, k in ((24, 4), (128, 6)):
        X, P, st, d = _toggle_problem(rng, n, k)
        P = np.abs(2.5 + X @ d) ** 2 + 0.05 * rng.normal(size=len(X))
        d0 = d + 0.2 * (rng.normal(size=n) + 1j * rng.normal(size=n))
        a = fit_affine_field(X, P, d0, 2.0)
        b = fit_affine_field(X, P, d0, 2.0, structure=st)
        assert a[4] and b[4] and a[3] < 100 and b[3] < 100  # converged, not capped
        assert a[3] == b[3]  # the same LM path
        assert np.max(np.abs(a[1] - b[1])) <= 1e-9 * np.max(np.abs(a[1]))
        assert abs(a[0] - b[0]) <= 1e-9 * a[0] and abs(a[2] - b[2]) <= 1e-9 * abs(a[0]) ** 2
        assert abs(a[0] - 2.5) < 0.05 and np.max(np.abs(a[1] - d)) < 0.1


@pytest.mark.parametrize(("seed", "dp"), [
    (160, 0.3),
    pytest.param(161, 3.0, marks=pytest.mark.slow),
    pytest.param(162, 0.3, marks=pytest.mark.slow),
])
def test_estimation_with_the_structured_fit_matches_the_dense_reference(seed, dp) -> None:
    """The whole estimation (every fit of every stage) with the structured solve and with
    the dense reference: the same LM iterations, the same result, estimates equal to
    1e-9 (N = 64 so that the dense path is quick; one draw by default, three with
    ``-m slow``)."""
    b = OneBitBench.random(None, seed=seed, n=64, noise=1.0, direct_path=dp)
    out = []
    for dense in (False, True):  # the same noise draws for both paths
        out.append(channel_estimation(noisy_power(b, seed), 64, budget=8 * 64,
                                      rng=np.random.default_rng(seed), dense_fit=dense))
    fast, ref = out
    assert np.array_equal(fast.codes, ref.codes)
    assert fast.estimate["fit_iterations"] == ref.estimate["fit_iterations"]
    assert fast.estimate["candidates"] == ref.estimate["candidates"] > 1
    e = np.max(np.abs(fast.estimate["d"] - ref.estimate["d"]))
    assert e <= 1e-9 * np.max(np.abs(ref.estimate["d"]))


def test_greedy_reaches_within_1db_at_4n_on_held_out_draws() -> None:
    gaps = []
    for seed in range(120, 126):
        b = OneBitBench.random(None, seed=seed, noise=1.0, direct_path=1.0)
        meas = noisy_power(b, seed)

        r = greedy_flips(meas, 256, budget=4 * 256, rng=np.random.default_rng(seed))
        assert r.measurements <= 4 * 256
        gaps.append(b.gap_db(r.codes))
    # the target is on the mean over draws; single draws can stop in a local optimum
    assert np.mean(gaps) < 1.0 and max(gaps) < 2.5, gaps


def test_profiles_pick_dialect_warn_on_unknown_and_strict_refuses(onebit, caplog) -> None:
    _, _, bench, res = onebit
    sa = open_instrument("spectrum-analyzer", res["spectrum-analyzer"], visa_library="@py")
    assert sa.profile.name == "rfctl-sim-spectrum-analyzer"
    got = sa.configure(frequency=5.3e9, span=2e6, rbw=3e3, average=2)
    assert got == {"frequency": 5.3e9, "span": 2e6, "rbw": 3e3, "average": 2}
    with pytest.raises(ConfigError, match="rbw = 1e\\+09 above the maximum"):
        sa.configure(rbw=1e9)
    # a known power meter opened as a VNA: a wrong --sensor, named
    with pytest.raises(ConfigError, match="claims as a power-meter, not a vna"):
        open_instrument("vna", res["power-meter"], visa_library="@py")
    # a model no profile claims is accepted with the generic dialect and a warning …
    bench.instruments["power-meter"].model = "ZX-9000"
    with caplog.at_level(logging.WARNING):
        v = open_instrument("vna", res["power-meter"], visa_library="@py")
    assert v.profile.name == "generic-vna" and "not in any instrument profile" in caplog.text
    v.close()  # the simulated server takes one client at a time
    # … or refused
    with pytest.raises(DeviceError, match="strict-model"):
        open_instrument("vna", res["power-meter"], visa_library="@py", strict_model=True)


def test_profile_errors_name_file_field_and_reason(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('kind = "instrument"\nname = "x"\ninstrument = "vna"\nbogus = 1\n'
                 '[dialect]\nmeasure = "X?"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: bogus: Extra inputs") as ei:
        load_instrument_profile(p)
    assert ei.value.field == "bogus"
    p.write_text('kind = "instrument"\nname = "x"\ninstrument = "vna"\n[dialect]\n'
                 'measure = "X?"\n[dialect.settings.f]\nset = "F"\n')
    with pytest.raises(ConfigError, match=r"dialect\.settings\.f"):
        load_instrument_profile(p)


def test_readings_are_taken_after_the_board_latched(onebit) -> None:
    fw, model, bench, res = onebit
    dev = open_osris(OSRIS, firmware=fw)
    sa = open_instrument("spectrum-analyzer", res["spectrum-analyzer"], visa_library="@py")
    sa.configure(frequency=model.f0)
    x_best, p_best = model.optimum(model.f0)
    from rfctl.hal.program import program
    from rfctl.lab import codes_image

    worst = 1 - x_best
    bench.instruments["spectrum-analyzer"].sweep_time_s = 10.0  # continuous sweeps are slow
    for x in (worst, x_best, worst, x_best):
        program(dev, codes_image(OSRIS, x))
        p = sa.read_power()  # INIT;*OPC?;:CALC:MARK:MAX;:CALC:MARK:Y?
        assert abs(10 * np.log10(p / model.power_w(x, model.f0))) < 0.5
    # the same query without INIT in continuous mode returns the stale trace
    sim = bench.instruments["spectrum-analyzer"]
    sim.continuous = True
    program(dev, codes_image(OSRIS, worst))
    stale = float(sa.query("CALC:MARK:Y?"))
    assert abs(stale - (10 * np.log10(p_best) + 30)) < 0.5  # still the best pattern's


def test_reading_round_trip_on_loopback_is_under_2_ms(onebit) -> None:
    _, _, _, res = onebit
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    pm.read_power()
    runs = []
    for _ in range(3):
        t = []
        for _ in range(40):
            t0 = time.perf_counter()
            pm.read_power()
            t.append(time.perf_counter() - t0)
        runs.append(statistics.median(t))
    assert min(runs) <= 2e-3, runs


def test_optimize_board_leaves_the_best_verified_and_restores_on_failure(onebit) -> None:
    fw, model, _, res = onebit
    dev = open_osris(OSRIS, firmware=fw)
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    pm.configure(frequency=model.f0)
    r = optimize_board(dev, OSRIS, pm, method="greedy", budget=4 * 256,
                       rng=np.random.default_rng(3), verify=3)
    assert np.array_equal(model.pattern(), r.codes.astype(bool))
    assert model.gap_db(r.codes, model.f0) < 1.5
    assert len(r.verified_w) == 3 and r.rows[-1]["phase"] == "verify"
    assert abs(10 * np.log10(r.power_w / model.power_w(r.codes, model.f0))) < 0.3
    # a failure mid-run: the board goes back to what it held before the run
    before = bytes(fw.pattern)
    calls = []

    def stop(done: int, total: int) -> None:
        calls.append(done)
        if done == 50:
            raise KeyboardInterrupt

    with pytest.raises(OptimizeInterruptedError, match="stopped after") as ei:
        optimize_board(dev, OSRIS, pm, method="csm", budget=500,
                       rng=np.random.default_rng(4), progress=stop)
    assert ei.value.restored and bytes(fw.pattern) == before and len(ei.value.rows) == 50


@pytest.mark.slow
def test_onebit_calibration_fixes_the_global_phase(onebit) -> None:
    fw, model, _, res = onebit
    model.noise = 0.3
    dev = open_osris(OSRIS, firmware=fw)
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    pm.configure(frequency=model.f0)
    cal = onebit_calibration(dev, OSRIS, pm, rng=np.random.default_rng(5), budget=8 * 256)
    assert cal.reference.startswith("optimum")
    # the calibrated zero-phase beam is the best configuration found, near the optimum
    assert 10 * np.log10(cal.power_after_w / model.optimum(model.f0)[1]) > -1.0
    assert cal.power_after_w > 10 * cal.power_before_w
    with pytest.raises(ConfigError, match="needs a budget"):
        onebit_calibration(dev, OSRIS, pm, rng=np.random.default_rng(5), budget=100)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [151, 152, 153])
def test_onebit_calibration_at_the_default_budget_on_held_out_draws(seed: int) -> None:
    # the default budget (8N) is the one that works: 4N left a draw 5.8 dB short
    fw = OsrisFirmwareSim()
    model = OneBitBench.random(fw, seed=seed, noise=1.0, direct_path=1.0)
    with SimBench(model, freq_hz=model.f0) as bench:
        res = bench.start()
        dev = open_osris(OSRIS, firmware=fw)
        pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
        pm.configure(frequency=model.f0)
        cal = onebit_calibration(dev, OSRIS, pm, rng=np.random.default_rng(seed))
        pm.close()
    assert cal.measurements <= 8 * 256 + 2
    # the calibrated zero-phase beam, judged on the bench's noiseless optimum
    assert 10 * np.log10(model.optimum(model.f0)[1] / model.power_w(model.pattern(), model.f0)
                         ) < 1.0


def _bench_args(tmp_path: Path, res: dict, url: str) -> list[str]:
    return ["lab", "--board", "osris-16x16", "--url", url, "--sensor", "spectrum-analyzer",
            "--meter", res["spectrum-analyzer"], "--out", str(tmp_path)]


@pytest.fixture
def served(tmp_path):
    from rfctl.hal.discovery import open_sim

    lab = open_sim("lab-bench", OSRIS, rows=16, cols=16, seed=131, noise=1.0)
    yield lab
    lab.stop()


def test_cli_optimize_records_and_show(served, tmp_path: Path, capsys) -> None:
    args = _bench_args(tmp_path, served.resources, served.url)
    assert main(["lab", "optimize", *args[1:], "--frequency", "5.3e9", "--span", "1e6",
                 "--rbw", "1e3", "--budget", "300", "--method", "greedy"]) == 0
    (run,) = tmp_path.glob("optimize-*")
    snap = json.loads((run / "snapshot.json").read_text())
    assert snap["outcome"] == "completed" and snap["link_url"] == served.url
    assert snap["board_ident"]["serial"] == "12"
    assert snap["instruments"][0]["settings"]["rbw"] == 1e3
    assert snap["image_before"] != snap["image_after"] and snap["end_time"]
    assert snap["versions"]["numpy"] and snap["argv"] is not None
    assert (run / "objective.png").stat().st_size > 5000
    capsys.readouterr()
    assert main(["lab", "show", str(run)]) == 0
    shown = capsys.readouterr().out
    data = json.loads((run / "data.json").read_text())
    assert "outcome: completed" in shown and "method greedy" in shown
    assert f"{data['measurements']} readings" in shown
    assert ("left on the start" in shown) == data["kept_start"]
    # a run that kept its start is shown as such, never as a result from the start
    data["kept_start"] = True
    (run / "data.json").write_text(json.dumps(data))
    assert main(["lab", "show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "board was left on the start" in shown and "→" not in shown.split("result")[1]


def test_cli_sweep_on_onebit_board_and_exit_codes(served, tmp_path: Path, capsys) -> None:
    args = _bench_args(tmp_path, served.resources, served.url)
    assert main(["lab", "sweep", *args[1:], "--rows", "16", "--cols", "16",
                 "--points", "5"]) == 0
    # the panel comes from the board's phase bank (256 elements: 16 × 16) when not given
    assert main(["lab", "sweep", *args[1:], "--points", "5"]) == 0
    capsys.readouterr()
    # a panel that does not match the board is a usage error (exit 2), refused before
    # the board is opened
    assert main(["lab", "sweep", *args[1:], "--rows", "8", "--cols", "8", "--points", "5"]) == 2
    assert "--rows 8 × --cols 8 = 64, but board" in capsys.readouterr().err
    # invalid numbers are usage errors (exit 2) naming the option
    capsys.readouterr()
    assert main(["lab", "sweep", *args[1:], "--points", "0"]) == 2
    assert "--points: 0 is outside [2, " in capsys.readouterr().err
    assert main(["lab", "sweep", *args[1:], "--start", "5"]) == 2
    assert main(["lab", "optimize", *args[1:], "--budget", "0"]) == 2
    # an instrument failure mid-run: exit 1 (not 130), board restored, partial plot
    served.bench.instruments["spectrum-analyzer"].silent = True
    before = bytes(served.server.firmware.pattern)
    assert main(["lab", "sweep", *args[1:], "--rows", "16", "--cols", "16",
                 "--points", "5"]) in (1,)
    assert bytes(served.server.firmware.pattern) == before


def test_records_never_switch_the_matplotlib_backend() -> None:
    src = (Path(__file__).resolve().parents[1] / "rfctl/lab/records.py").read_text()
    assert "matplotlib.use" not in src and "pyplot" not in src


@pytest.mark.slow
@pytest.mark.parametrize(("direct_path", "bound_db"), [(0.3, 0.5), (3.0, 0.3)])
def test_estimation_at_8n_on_held_out_draws(direct_path: float, bound_db: float) -> None:
    # the target: within 0.5 dB of the optimum at 8N, here on draws not used for
    # tuning (the benchmark tuned on seeds 0–9), weak and strong direct path
    gaps = []
    for seed in range(140, 146):
        b = OneBitBench.random(None, seed=seed, noise=1.0, direct_path=direct_path)
        meas = noisy_power(b, seed)

        r = channel_estimation(meas, 256, budget=8 * 256, rng=np.random.default_rng(seed))
        assert r.measurements <= 8 * 256 and r.estimate["references"] >= 7
        assert r.estimate["reference_readings"] == 16
        gaps.append(b.gap_db(r.codes))
    assert np.mean(gaps) < bound_db, gaps


@pytest.mark.slow
@pytest.mark.parametrize("direct_path", [0.3, 3.0])
def test_estimation_at_4n_on_held_out_draws(direct_path: float) -> None:
    # the 4N target (within 1 dB) for the estimation too, on draws not used for
    # tuning (the benchmark tuned on seeds 0–9); the estimate before the strong second
    # reference and the read candidates missed by 7–26 dB on some draws
    gaps = []
    for seed in range(170, 176):
        b = OneBitBench.random(None, seed=seed, noise=1.0, direct_path=direct_path)
        meas = noisy_power(b, seed)

        r = channel_estimation(meas, 256, budget=4 * 256, rng=np.random.default_rng(seed))
        assert r.measurements <= 4 * 256 and r.estimate["candidates"] > 1
        gaps.append(b.gap_db(r.codes))
    assert np.mean(gaps) < 1.0, gaps


def test_cli_onebit_calibrate_writes_table_plots_and_record(served, tmp_path: Path,
                                                           capsys) -> None:
    args = _bench_args(tmp_path, served.resources, served.url)
    table = tmp_path / "cal.csv"
    assert main(["lab", "calibrate", *args[1:], "--budget", "100",
                 "--write-calibration", str(table)]) == 2  # below 2(N + R) + 2: usage
    assert not list(tmp_path.glob("calibrate-*"))  # refused before the run folder
    assert main(["lab", "calibrate", *args[1:], "--budget", str(3 * 257 + 1),
                 "--write-calibration", str(table)]) == 0
    run = sorted(tmp_path.glob("calibrate-*"))[-1]
    data = json.loads((run / "data.json").read_text())
    assert data["table"] == table.read_text() and len(data["offsets"]) == 256
    assert data["reference"].startswith("optimum") and len(data["rows"]) > 700
    assert (run / "offsets.png").stat().st_size > 5000
    assert (run / "readings.png").stat().st_size > 5000
    # lab show summarises the beam at the probe before and after, and the table file
    # (issue 13, a new user's third trial, finding 15)
    capsys.readouterr()
    assert main(["lab", "show", str(run)]) == 0
    out = capsys.readouterr().out
    db = [10 * np.log10(data[k]) + 30 for k in ("power_before_w", "power_after_w")]
    assert (f"  beam     at the probe {db[0]:.2f} → {db[1]:.2f} dBm ({db[1] - db[0]:+.2f} dB) "
            "after calibrating 256 elements with") in out, out
    assert f"  table    {table}" in out


def test_cli_partial_sweep_is_recorded_and_plotted(served, tmp_path: Path) -> None:
    sim = served.bench.instruments["spectrum-analyzer"]
    real = sim._sweep

    def failing() -> None:
        if sim.sweeps >= 4:
            sim.silent = True
        real()

    sim._sweep = failing
    args = _bench_args(tmp_path, served.resources, served.url)
    assert main(["lab", "sweep", *args[1:], "--rows", "16", "--cols", "16",
                 "--points", "9"]) == 1
    (run,) = tmp_path.glob("sweep-*")
    snap = json.loads((run / "snapshot.json").read_text())
    assert snap["outcome"].startswith("stopped") and "restored" in snap["outcome"]
    assert 1 <= len(json.loads((run / "data.json").read_text())["rows"]) < 9
    assert (run / "sweep.png").stat().st_size > 3000


def test_optimize_budget_counts_every_search_reading_and_never_leaves_worse(onebit) -> None:
    """--budget is the number of search readings (the start's included; the
    verification comes on top); an estimation budget below its minimum is refused before
    the first reading; and a result that re-measures below the start is not left on the
    board (a new user saw the estimate end 2.3 dB below its starting pattern)."""
    from rfctl.lab.blind import estimation_budget
    from rfctl.lab.optimize import codes_image

    fw, model, bench, res = onebit
    dev = open_osris(OSRIS, firmware=fw)
    pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
    pm.configure(frequency=model.f0)
    r = optimize_board(dev, OSRIS, pm, method="greedy", budget=300,
                       rng=np.random.default_rng(8), verify=3)
    search = [row for row in r.rows if not row["phase"].startswith("verify")]
    assert len(search) == 300 == r.blind.measurements
    need, _ = estimation_budget(256)
    before = bytes(fw.pattern)
    sweeps = bench.instruments["power-meter"].sweeps
    with pytest.raises(ConfigError, match=f"at least {need + 1} readings"):
        optimize_board(dev, OSRIS, pm, method="estimate", budget=need,
                       rng=np.random.default_rng(8))
    assert bytes(fw.pattern) == before
    assert bench.instruments["power-meter"].sweeps == sweeps  # not a single reading
    # start on the optimum: the estimation at its minimum budget (which ignores the
    # start) ends on a worse pattern, re-measured below the start: the start is kept
    best, _ = model.optimum(model.f0)
    from rfctl.hal.program import program

    program(dev, codes_image(OSRIS, best.astype(np.int64)))
    r = optimize_board(dev, OSRIS, pm, method="estimate", budget=need + 1,
                       rng=np.random.default_rng(9), verify=3)
    assert not np.array_equal(r.blind.codes, best)  # the search itself ended elsewhere
    assert r.kept_start
    assert np.array_equal(r.codes, best.astype(np.int64))
    assert np.array_equal(model.pattern(), best.astype(bool))
    assert [row["phase"] for row in r.rows].count("verify start") == 3
    assert r.start_w == r.verified_w and len(r.start_w) == 3


def test_a_dead_reference_element_is_refused_after_the_readings_and_keeps_them() -> None:
    """Element 7's PIN diode is dead (no contribution): with ``reference=7`` the
    calibration cannot fix the global phase. It says so after its readings, keeps them
    (CalibrationInterruptedError, the ConfigError as cause) and restores the board."""
    fw = OsrisFirmwareSim()
    model = OneBitBench.random(fw, seed=161, noise=0.02, direct_path=1.0)
    model.a[7] = 0.0
    with SimBench(model, freq_hz=model.f0) as bench:
        res = bench.start()
        dev = open_osris(OSRIS, firmware=fw)
        pm = open_instrument("power-meter", res["power-meter"], visa_library="@py")
        pm.configure(frequency=model.f0)
        before = bytes(fw.pattern)
        # at the default budget (8N): at the least one (2(N + R) + 2) the estimated
        # contributions are too rough to tell a dead element (0.19 of the median)
        budget = 8 * 256
        with pytest.raises(CalibrationInterruptedError, match="not identifiable") as ei:
            onebit_calibration(dev, OSRIS, pm, rng=np.random.default_rng(1), reference=7)
        pm.close()
    assert isinstance(ei.value.__cause__, ConfigError)
    assert ei.value.restored and bytes(fw.pattern) == before
    # every reading taken is kept (the estimation may stop short of the budget)
    n = len(ei.value.readings)
    assert 2 * (256 + 16) < n < budget and f"stopped after {n} of {budget} readings" in str(
        ei.value)


def test_cli_optimize_that_finds_nothing_says_the_board_is_on_the_start(served, tmp_path,
                                                                         capsys) -> None:
    """With a budget of one reading the search's result is the start itself: the CLI
    and ``lab show`` say the board is on the start, never a gain (a new user's trial saw
    "-1.06 dB … board left on it" for an unchanged start)."""
    args = _bench_args(tmp_path, served.resources, served.url)
    capsys.readouterr()
    assert main(["lab", "optimize", *args[1:], "--frequency", "5.3e9", "--budget", "1",
                 "--method", "greedy", "--verify", "1"]) == 0
    said = capsys.readouterr().out
    assert "no configuration better than the start was found, so the board is on the " \
        "start" in said and " dB, " not in said
    (run,) = tmp_path.glob("optimize-*")
    data = json.loads((run / "data.json").read_text())
    assert data["unchanged"] and not data["kept_start"]
    assert main(["lab", "show", str(run)]) == 0
    assert "nothing better than the start was found" in capsys.readouterr().out
