"""DMA alternation: monotone exact objective, feasible designs, a tiny brute-force check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.optimize.dma import DmaTask, analog_step, design_dma
from rfctl.optimize.dma_digital import solve_digital
from rfctl.outcome import StopReason, solved

warnings.filterwarnings("ignore", message="Solution may be inaccurate")
SPEC = load_config("dma-4x8").dma


def reference_task(rng, spec=SPEC, users: int = 3, **kw) -> DmaTask:
    m = DmaModel.from_spec(spec, origin=(0, 0, 10))
    pos = np.column_stack([rng.uniform(-20, 20, users), rng.uniform(20, 60, users),
                           np.full(users, 1.5)])
    return DmaTask(m, pos, np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944]), 1e-12, 1.0,
                   **kw)


def _check_design(task, d) -> None:
    assert all(b >= a * (1 - 1e-9) for a, b in zip(d.trace, d.trace[1:], strict=False))
    assert task.feasible(task.exact(d.b, d.B), tol=1e-6)  # exact model, not the solver
    assert len(d.margin_trace) == len(d.trace)
    assert all(min(r.values()) >= -1e-6 for r in d.margin_trace)  # every iterate feasible
    assert d.stop_reason in (StopReason.CONVERGED, StopReason.ITERATION_CAP,
                             StopReason.NO_PROGRESS)
    # one outcome shape: the final margins, the last SDR's status, the same stop reason
    assert d.outcome.residuals == d.margin_trace[-1]
    assert set(d.outcome.residuals) == {"sinr_margin_rel", "beta_margin_rel",
                                        "beta_max_margin_rel", "power_margin_rel"}
    assert solved(d.outcome.status, accept_inaccurate=True)
    assert d.outcome.stop_reason is d.stop_reason and d.outcome.iterations == d.iterations
    assert d.outcome.converged == (d.stop_reason is StopReason.CONVERGED)


def test_alternation_converges_on_its_tolerance(rng) -> None:
    """Three user draws (not the ones the defaults were tuned on): every iterate is
    feasible at 1e-6 in the exact model, the objective never falls, and the alternation
    stops on its tolerance (not the cap) in tens of iterations for at least two."""
    converged = 0
    for _ in range(3):
        task = reference_task(rng)
        d = design_dma(task, rng=rng, max_iter=100)
        _check_design(task, d)
        assert d.objective > 2 * d.trace[0]  # the analog step is worth it here
        if d.stop_reason is StopReason.CONVERGED:
            converged += 1
            assert d.iterations < 100 and d.stationarity <= 1e-4
    assert converged >= 2


def test_reduced_gradient_matches_finite_differences(rng) -> None:
    from rfctl.optimize.dma import _max_correlation, reduced_gradient
    from rfctl.optimize.dma_digital import _solve_recover, tightened

    task = reference_task(rng)
    starts = rng.normal(0, 10, (40, task.model.L))
    b = starts[int(np.argmin([_max_correlation(task, x) for x in starts]))]
    task.problem(b)

    def F(x):
        return _solve_recover(tightened(task.problem(x), 1e-4), "clarabel")

    r = F(b)
    g = reduced_gradient(task, b, r.B, r.multipliers, 1e-4)
    h = 1e-3
    for l in rng.choice(task.model.L, 5, replace=False):
        e = np.zeros(task.model.L)
        e[l] = h
        fd = (F(b + e).sdp_objective - F(b - e).sdp_objective) / (2 * h)
        assert g[l] == pytest.approx(fd, rel=2e-2, abs=1e-3 * np.max(np.abs(g)))


def test_objective_hessian_matches_finite_differences(rng) -> None:
    from rfctl.optimize.dma import objective_hessian

    task = reference_task(rng)
    b = rng.normal(0, 10, task.model.L)
    B = rng.normal(size=(4, 7)) + 1j * rng.normal(size=(4, 7))
    task.problem(b)
    H = objective_hessian(task, b, B)
    h = 1e-3
    for i, j in [(0, 0), (3, 17), (31, 8)]:
        ei, ej = np.eye(task.model.L)[i] * h, np.eye(task.model.L)[j] * h

        def f(x):
            return task.exact(x, B)["objective"]

        fd = (f(b + ei + ej) - f(b + ei - ej) - f(b - ei + ej) + f(b - ei - ej)) / (4 * h * h)
        assert H[i, j] == pytest.approx(fd, rel=1e-4, abs=1e-6 * np.abs(H).max())


@pytest.mark.slow
def test_paper_p4_alternation_is_monotone_and_feasible(rng) -> None:
    task = reference_task(rng)
    d = design_dma(task, rng=rng, max_iter=30, method="p4")
    _check_design(task, d)
    assert d.trace[-1] > d.trace[0]


def test_analog_step_stays_in_its_box(rng) -> None:
    from rfctl.optimize.dma import spectral_norm

    task = reference_task(rng)
    b = rng.normal(0, 10, task.model.L)
    dig = solve_digital(task.problem(b))
    Phi = task.model.phi(task.model.spec.r0_siemens + 1j * b)
    d_max = 1.0 / spectral_norm(Phi)
    assert d_max == pytest.approx(1.0 / np.linalg.norm(Phi, 2), rel=1e-9)
    lo, hi = b - 3.0, b + 0.5 * d_max
    z, pred, _ = analog_step(task, b, dig.B, delta=d_max, b_bounds=(lo, hi))
    assert z is not None and pred >= -1e-9
    assert np.all(np.abs(z) <= d_max * (1 + 1e-7))
    assert np.all(b + z >= lo - 1e-7) and np.all(b + z <= hi + 1e-7)


def test_tiny_dma_against_a_brute_force_grid(rng) -> None:
    """One waveguide, two elements, one user: for fixed loads the digital optimum has a
    closed form (all power in one scalar covariance r). Over a grid of tunings, the
    SDR at any tuning equals that closed form, and no tuning beats the grid's best."""
    tiny = SPEC.model_copy(update={"n_waveguides": 1, "elements_per_waveguide": 2})
    task = reference_task(rng, spec=tiny, users=1, n_sensing=1)
    b0 = np.zeros(2)
    p0 = task.problem(b0)  # fixes the default targets
    task.gamma = p0.gamma * 1e-3  # loose enough to be feasible across the grid

    def closed_form(b: np.ndarray) -> float:
        p = task.problem(b)
        v2 = np.abs(p.V[0]) ** 2  # |v_d|² (N = 1)
        ap = float(np.real(p.A_P[0, 0]))
        h2 = float(np.abs(p.H[0, 0]) ** 2)
        r = min(task.p_max / ap, task.beta_max / v2.max())
        if r < max(task.gamma[0] * task.sigma2 / h2, float(np.max(task.beta / v2))):
            return -np.inf
        return float(np.mean(v2) * r)

    grid = np.linspace(-60, 60, 13)
    values = {(x, y): closed_form(np.array([x, y])) for x in grid for y in grid}
    best = max(values.values())
    for (x, y) in [(grid[2], grid[9]), (grid[6], grid[6])]:
        if np.isfinite(values[(x, y)]):
            sdr = solve_digital(task.problem(np.array([x, y])), margin=0.0)
            assert sdr.sdp_objective == pytest.approx(values[(x, y)], rel=1e-4)
    assert np.isfinite(best)
    d = design_dma(task, rng=rng, max_iter=20, n_starts=20)
    # the design's B is the digital optimum at its own tuning (the known answer there)
    assert d.objective == pytest.approx(closed_form(d.b), rel=1e-3)
    assert d.objective >= d.trace[0] * (1 - 1e-9)  # and the alternation never lost ground


def test_p4_fast_equals_cvxpy_reference(rng) -> None:
    from rfctl.optimize.dma import (
        _linear_model,
        _max_correlation,
        _solve_p4_clarabel,
        _solve_p4_cvxpy,
        objective_hessian,
    )

    task = reference_task(rng)
    starts = rng.normal(0, 10, (60, task.model.L))
    b = starts[int(np.argmin([_max_correlation(task, x) for x in starts]))]
    B = solve_digital(task.problem(b)).B
    *lm, Phi = _linear_model(task, b, B)
    w, U = np.linalg.eigh(objective_hessian(task, b, B))
    curv = (U * np.maximum(-w, 0)) @ U.T
    for scale, radius, c in ((1.0, np.inf, None), (0.2, np.inf, None), (1.0, 0.5, curv)):
        delta = scale / np.linalg.norm(Phi, 2)
        box = (np.full(b.size, -delta), np.full(b.size, delta))
        z1, v1 = _solve_p4_clarabel(task, *lm, box, radius, c)
        _, v2 = _solve_p4_cvxpy(task, *lm, box, radius, c)
        assert v1 == pytest.approx(v2, rel=1e-5, abs=1e-9)
        assert np.max(np.abs(z1)) <= delta * (1 + 1e-7)
        assert np.linalg.norm(z1) <= radius * (1 + 1e-7)


@pytest.mark.slow
def test_dma_figure_script(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "figures" / "dma_figures.py"
    proc = subprocess.run([sys.executable, str(script), "all", "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("dma_beampattern", "dma_convergence", "dma_tradeoff", "dma_quantization"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "dma.json").read_text())
    assert [r["bits"] for r in data["quantization"]] == [None, 1, 2, 3, 4, 8, None]
    assert data["quantization"][-1]["board"] == "sim-dma-4x8"


def test_dma_cli_board_design_check_and_quantize(tmp_path) -> None:
    """``rfctl optimize dma --board sim-dma-4x8`` saves a design that meets every
    constraint on the board's codes: ``rfctl check`` (as saved and re-quantized to the
    board) exits 0, and exits 1 with the failed constraint named once B is scaled past
    P_max; ``rfctl quantize`` reports the same metrics after quantization."""
    import io

    from rfctl.cli import main
    from rfctl.state import ArrayState

    path = tmp_path / "dma.json"
    out = io.StringIO()
    # realisation 1: realisation 0's task (the continuous design's Γ) is out of the
    # board's reach (tests/test_cli.py checks that it is reported, exit 1)
    assert main(["optimize", "dma", "--scenario", "dma-4x8", "--realisation", "1",
                 "--board", "sim-dma-4x8", "--out", str(path)], out=out) == 0
    text = out.getvalue()
    for label in ("continuous", "1 bit", "8 bit", "sim-dma-4x8 (final)"):
        assert label in text
    st = ArrayState.load(path)
    assert st.dma.b.shape == (32,) and st.dma_b.shape == (4, 7)
    assert st.dma_task is not None and st.dma_task.gamma.shape == (3,)
    for extra in ([], ["--board", "sim-dma-4x8"]):
        out = io.StringIO()
        assert main(["check", str(path), *extra], out=out) == 0, out.getvalue()
    out = io.StringIO()
    assert main(["quantize", str(path), "--board", "sim-dma-4x8"], out=out) == 0
    assert "DMA constraints after quantization" in out.getvalue()
    assert "B re-opt." in out.getvalue()
    bad = tmp_path / "bad.json"
    st.replace(dma_b=st.dma_b * 1.1).save(bad)
    out = io.StringIO()
    assert main(["check", str(bad)], out=out) == 1
    import re

    # B × 1.1 puts P_t at 1.21 × the saved design's (which spends P_max less its margin)
    m = re.search(r"P_t <= P_max: ([\d.]+) W vs 1 W \(\+([\d.]+) %\)", out.getvalue())
    assert m is not None, out.getvalue()
    p_t = st.dma_task.p_max * 1.21 * (1 - 1e-3)
    assert p_t - 2e-3 <= float(m.group(1)) <= 1.21 + 1e-9
    assert float(m.group(2)) == pytest.approx(100 * (float(m.group(1)) - 1), abs=0.06)


def test_board_design_meets_every_constraint_on_the_codes(rng) -> None:
    """design_dma_for_board on two user draws: the saved state is on the board's codes
    (every tuning is a table entry) and re-checking it with the model, as saved and
    re-quantized to the board, meets every constraint at 1e-6."""
    from rfctl.hal import compile_board
    from rfctl.studies import check_dma_state, design_dma_for_board, table_arc

    prof = load_config("sim-dma-4x8")
    table = compile_board(prof).codebooks["tuning"].table
    for _ in range(2):
        task = reference_task(rng)
        bd = design_dma_for_board(task, prof, rng=rng)
        assert bd.report["feasible"], bd.report["violations"]
        assert np.allclose(bd.state.dma.response, table[bd.codes], atol=1e-12)
        lo, hi = table_arc(table)
        psi = np.angle(2 * tuning_state_response(task, bd.continuous.b) + 1j) + np.pi / 2
        psi = np.angle(np.exp(1j * psi))
        assert np.all(psi >= lo - 1e-9) and np.all(psi <= hi + 1e-9)  # inside the arc
        for board in (None, prof):
            rep = check_dma_state(bd.state, board)
            assert rep["feasible"] and not rep["violations"]
            assert rep["objective"] == pytest.approx(bd.report["objective"], rel=1e-12)


def tuning_state_response(task, b):
    from rfctl.state import lorentzian_response

    m = task.model
    return lorentzian_response(b, m.spec.r0_siemens, np.diag(m.Y_ss))


def test_reports_name_the_failed_constraint(rng) -> None:
    from rfctl.optimize.dma import describe_violations

    task = reference_task(rng)
    b = rng.normal(0, 10, task.model.L)
    dig = solve_digital(task.problem(b))
    ex = task.exact(b, dig.B * 1.2)  # 44 % over the power budget
    rep = task.report(ex)
    assert not rep["feasible"]
    names = [v["constraint"] for v in rep["violations"]]
    assert "P_t <= P_max" in names
    v = rep["violations"][names.index("P_t <= P_max")]
    assert v["value"] == pytest.approx(1.44 * dig.power, rel=1e-9)
    assert v["relative"] == pytest.approx(1.44 * dig.power / task.p_max - 1, rel=1e-9)
    assert "P_t <= P_max" in describe_violations(rep)
    ok = task.report(task.exact(b, dig.B))
    assert ok["feasible"] and describe_violations(ok) == "all constraints met"


def test_susceptance_bounds_map_the_arc(rng) -> None:
    from rfctl.optimize.dma import resonance_arc, susceptance_bounds

    task = reference_task(rng)
    arc = resonance_arc()
    assert arc[0] == pytest.approx(-0.6916 * np.pi, abs=1e-3)
    lo, hi = susceptance_bounds(task, arc)
    for b, end in ((lo, arc[1]), (hi, arc[0])):
        psi = np.angle(2 * tuning_state_response(task, b) + 1j) + np.pi / 2
        assert np.allclose(np.angle(np.exp(1j * psi)), end, atol=1e-9)
    # resonance (ψ' = 0, q = −j) lies inside every element's interval
    res = -np.imag(np.diag(task.model.Y_ss))
    assert np.all((lo < res) & (res < hi))


def test_state_round_trip_keeps_the_task(rng, tmp_path) -> None:
    from rfctl.optimize.dma import DmaTask, tuning_state
    from rfctl.state import ArrayState

    task = reference_task(rng)
    d = design_dma(task, rng=rng, max_iter=3)
    st = tuning_state(task, d)
    st.save(tmp_path / "s.json")
    back = ArrayState.load(tmp_path / "s.json")
    assert back.equals(st)
    t2 = DmaTask.from_record(back.dma_task)
    e1, e2 = task.exact(d.b, d.B), t2.exact(d.b, d.B)
    assert e2["objective"] == e1["objective"] and np.array_equal(e1["sinr"], e2["sinr"])


def test_default_sinr_targets_are_physical(rng) -> None:
    """With the received-power channel scale and σ² = k_B T B F, the default Γ (the
    interference-free SNR at P_max minus 30 dB) lands at link-budget values, 3–25 dB,
    and the interference-free SNR itself is a Friis-scale 35–55 dB at 20–60 m."""
    for _ in range(4):
        task = reference_task(rng)
        b = rng.normal(0, 10, task.model.L)
        task.problem(b)
        g_db = 10 * np.log10(task.gamma)
        assert np.all((g_db > 3) & (g_db < 25)), g_db
        assert np.all((g_db + 30 > 35) & (g_db + 30 < 55))


@pytest.mark.slow
def test_code_search_reduces_the_violation(rng) -> None:
    """From random codes of the sim-dma-4x8 table at SINR targets the digital step
    cannot meet, the greedy code search lowers the total violation of the re-optimised
    design (phase-one SDR) and never raises it."""
    from rfctl.hal import compile_board
    from rfctl.optimize.dma import tuning_state
    from rfctl.optimize.dma_digital import infeasibility
    from rfctl.studies import _code_search

    table = compile_board(load_config("sim-dma-4x8")).codebooks["tuning"].table
    task = reference_task(rng)
    d = design_dma(task, rng=rng, max_iter=2)
    st = tuning_state(task, d)
    g0 = task.gamma.copy()

    def violation(codes):
        return infeasibility(task.problem(None, loads=st.dma.from_response(
            table[codes]).load))

    codes = rng.integers(0, table.size, task.model.L)
    for factor in (3.0, 10.0, 30.0, 60.0, 100.0):  # the first that the codes cannot meet
        task.gamma = g0 * factor
        before = violation(codes)
        if 0 < before < np.inf:
            break
    assert 1e-6 < before < np.inf
    new, steps = _code_search(task, st, table, codes, max_passes=1)
    after = violation(new)
    assert steps > 0 and after < before


def test_state_task_record_rejects_malformed_entries(rng) -> None:
    from rfctl.errors import ConfigError
    from rfctl.optimize.dma import tuning_state
    from rfctl.state import ArrayState

    task = reference_task(rng)
    b = rng.normal(0, 10, task.model.L)
    dig = solve_digital(task.problem(b))
    from rfctl.optimize.dma import DmaDesign

    data = tuning_state(task, DmaDesign(b=b, B=dig.B, objective=0.0)).to_dict()
    bad = {**data, "dma_task": {**data["dma_task"], "extra": 1}}
    with pytest.raises(ConfigError, match=r"dma_task\.extra: unknown field"):
        ArrayState.from_dict(bad)
    missing = {**data, "dma_task": {k: v for k, v in data["dma_task"].items()
                                    if k != "gamma"}}
    with pytest.raises(ConfigError, match=r"dma_task\.gamma: missing field"):
        ArrayState.from_dict(missing)
    shape = {**data, "dma_task": {**data["dma_task"], "users": [[0.0, 1.0]]}}
    with pytest.raises(ConfigError, match="shapes disagree"):
        ArrayState.from_dict(shape)


def _cli_task(realisation: int):
    from rfctl.optimize.dma import task_from_scenario

    return task_from_scenario(load_config("dma-4x8"), realisation)


def test_converged_means_stationary_on_a_creeping_draw() -> None:
    """Realisation 27 (a judging draw) with plain BFGS: the old small-change test stopped
    it as ``converged`` at 227 iterations with χ = 5e-2; now converged implies χ ≤ tol."""
    task, rng = _cli_task(27)
    d = design_dma(task, rng=rng, max_iter=250, curvature_relax=1.0, method="reduced")
    _check_design(task, d)
    assert d.stop_reason is not StopReason.CONVERGED or d.stationarity <= 1e-4


@pytest.mark.slow
def test_cli_draws_0_3_4_converge_within_the_documented_bound() -> None:
    """``method="reduced"`` (the default before the Newton-bundle step) on the CLI's
    slow draws (``rfctl optimize dma --scenario dma-4x8 --realisation R``):
    converged (χ ≤ 1e-4) within 200 iterations (measured 183, 139, 179; before the
    curvature relaxation 305, 318 and the 400 cap), at objectives at least the old
    converged ones (1.5451, 1.4808)."""
    floor = {0: 1.5451427, 3: 1.4808495 * (1 - 1e-7), 4: 1.4884210}
    for r in (0, 3, 4):
        task, rng = _cli_task(r)
        d = design_dma(task, rng=rng, max_iter=200, method="reduced")
        _check_design(task, d)
        assert d.stop_reason is StopReason.CONVERGED and d.stationarity <= 1e-4
        assert d.objective >= floor[r]


# --------------------------------------------------------------- Newton-bundle step
def test_sensitivity_blocks_match_finite_differences(rng) -> None:
    """Every derivative block of a term φ = Σ_s ω_s |cᵀΦY_st B_s|² and of P_t
    (:mod:`rfctl.optimize.dma_sensitivity`) against central differences of the values."""
    from rfctl.optimize.dma_sensitivity import _power, _term

    task = reference_task(rng)
    m = task.model
    b = rng.normal(0, 10, m.L)
    N, S = m.N, m.N + 3
    B = rng.normal(size=(N, S)) + 1j * rng.normal(size=(N, S))
    x0 = np.concatenate([np.concatenate([B[:, s].real, B[:, s].imag]) for s in range(S)])
    om = np.ones(S)
    om[1] = -0.3

    def unpack(x):
        x = x.reshape(S, 2, N)
        return (x[:, 0] + 1j * x[:, 1]).T

    def blocks(bb, x, which):
        Phi = m.phi(m.spec.r0_siemens + 1j * bb)
        P = Phi @ m.Y_st
        if which == "term":
            return _term(Phi, P, task.Y_RS[1], om, unpack(x))
        Yp = m.Y_tt - m.Y_st.T @ Phi @ m.Y_st
        return _power(Phi, P, (Yp + Yp.conj().T) / 4, unpack(x))

    eb, ex = 1e-4, 1e-6
    Eb, Ex = np.eye(m.L), np.eye(x0.size)
    for which in ("term", "power"):
        _, hbb, _, hxx, hbx = blocks(b, x0, which)
        fd_bb = np.array([(blocks(b + eb * e, x0, which)[0]
                           - blocks(b - eb * e, x0, which)[0]) / (2 * eb) for e in Eb])
        fd_bx = np.array([(blocks(b, x0 + ex * e, which)[0]
                           - blocks(b, x0 - ex * e, which)[0]) / (2 * ex) for e in Ex]).T
        fd_xx = np.array([(blocks(b, x0 + ex * e, which)[2]
                           - blocks(b, x0 - ex * e, which)[2]) / (2 * ex) for e in Ex])
        fd_xb = np.array([(blocks(b + eb * e, x0, which)[2]
                           - blocks(b - eb * e, x0, which)[2]) / (2 * eb) for e in Eb]).T
        for got, ref in ((hbb, fd_bb), (hbx, fd_bx), (hxx, fd_xx), (hbx, fd_xb.T)):
            assert np.linalg.norm(got - ref) <= 1e-5 * np.linalg.norm(ref)


@pytest.mark.parametrize(("realisation", "iters"), [(1, 0), (4, 3)])
def test_value_hessian_matches_the_sdr_curvature(realisation, iters) -> None:
    """∇²F from the SDR's sensitivity predicts how the SDR's own gradient changes (central
    differences over two SDR solves); the Lagrangian's b-Hessian alone, with B and μ
    frozen, is off by 60–120× (measured), so the B-response term is what matters."""
    from rfctl.optimize.dma import reduced_gradient
    from rfctl.optimize.dma_sensitivity import lagrangian_blocks, value_hessian

    task, rng = _cli_task(realisation)
    b = design_dma(task, rng=rng, max_iter=iters).b
    dig = solve_digital(task.problem(b))
    H = value_hessian(task, b, dig.B, dig.multipliers, dig.margin)
    L_bb = lagrangian_blocks(task, b, dig.B, dig.multipliers, dig.margin).L_bb
    assert np.allclose(H, H.T)

    def grad(x):
        d = solve_digital(task.problem(x))
        return reduced_gradient(task, x, d.B, d.multipliers, d.margin)

    v = np.random.default_rng(0).normal(size=b.size)
    v /= np.abs(v).max()
    fd = (grad(b + 1e-2 * v) - grad(b - 1e-2 * v)) / 2e-2
    assert np.linalg.norm(H @ v - fd) <= 0.1 * np.linalg.norm(fd)  # measured 3.5e-2, 2.4e-3
    assert np.linalg.norm(L_bb @ v - fd) >= 1.0 * np.linalg.norm(fd)


# objectives of method="reduced" (the default before the Newton-bundle step) on the
# CLI's draws, converged (χ ≤ 1e-4)
REDUCED_OBJECTIVE = {0: 1.5454536, 1: 1.2141906, 3: 1.4808495, 4: 1.4978764,
                     5: 0.8835591, 6: 1.3747474, 7: 1.0918731}


@pytest.mark.parametrize(("realisation", "bound"), [(1, 25), (5, 15), (6, 25), (7, 30)])
def test_newton_converges_in_tens_of_iterations(realisation, bound) -> None:
    """The default step (``method="newton"``) on the CLI's tuning draws
    (``rfctl optimize dma --scenario dma-4x8 --realisation R``): its stopping test fires
    (χ ≤ 1e-4) within ``bound`` iterations (counted; measured 16, 7, 14, 21 vs 37, 11,
    34, 28 for ``"reduced"``) at an objective no worse than ``"reduced"``'s."""
    task, rng = _cli_task(realisation)
    d = design_dma(task, rng=rng, max_iter=bound)
    _check_design(task, d)
    assert d.stop_reason is StopReason.CONVERGED and d.iterations <= bound
    assert d.stationarity <= 1e-4
    assert d.objective >= REDUCED_OBJECTIVE[realisation] * (1 - 1e-6)


@pytest.mark.slow
def test_newton_on_the_slow_cli_draws() -> None:
    """Realisations 0, 3, 4 (183, 139, 179 iterations with ``"reduced"``): converged
    (χ ≤ 1e-4) within 80 (measured 70, 68, 63). 0 and 4 end higher than ``"reduced"``
    (1.6143, 1.5600); 3 ends at another local maximum, 1.4640 vs 1.4808 (documented in
    BENCHMARKS.md)."""
    floor = {0: REDUCED_OBJECTIVE[0], 3: 1.4640, 4: REDUCED_OBJECTIVE[4]}
    for r in (0, 3, 4):
        task, rng = _cli_task(r)
        d = design_dma(task, rng=rng, max_iter=80)
        _check_design(task, d)
        assert d.stop_reason is StopReason.CONVERGED and d.stationarity <= 1e-4
        assert d.objective >= floor[r] * (1 - 1e-6)


def test_bundle_model_stops_at_the_crest_of_its_planes() -> None:
    """max min(gᵀz, g₁ᵀz + e₁) − ½|z|² with g = e₁, g₁ = −e₁, e₁ = 0.5 peaks where the
    planes cross (z₁ = 0.25); without the plane the Newton step is z₁ = 1."""
    from rfctl.optimize.dma import _box_qp, _bundle_qp

    g, H = np.array([1.0, 0.0, 0.0]), np.eye(3)
    lo, hi = np.full(3, -2.0), np.full(3, 2.0)
    z, gain = _bundle_qp(g, H, lo, hi, [(-g, 0.5)])
    assert z is not None and np.allclose(z, [0.25, 0, 0], atol=1e-6)
    assert gain == pytest.approx(0.25 - 0.5 * 0.25**2, abs=1e-6)
    assert np.allclose(_box_qp(g, H, lo, hi), [1, 0, 0], atol=1e-6)
