"""DMA alternation: monotone exact objective, feasible designs, a tiny brute-force check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rfctl.admittance import DmaModel
from rfctl.config import load_config
from rfctl.optimize.dma import DmaTask, analog_step, design_dma
from rfctl.optimize.dma_digital import solve_digital

warnings.filterwarnings("ignore", message="Solution may be inaccurate")
SPEC = load_config("dma-4x8").dma


def reference_task(rng, spec=SPEC, users: int = 3, **kw) -> DmaTask:
    m = DmaModel.from_spec(spec, origin=(0, 0, 10))
    pos = np.column_stack([rng.uniform(-20, 20, users), rng.uniform(20, 60, users),
                           np.full(users, 1.5)])
    return DmaTask(m, pos, np.full(3, 0.5236), np.array([0.0, 1.0472, 2.0944]), 1e-12, 1.0,
                   **kw)


@pytest.mark.slow
def test_alternation_is_monotone_and_feasible() -> None:
    rng = np.random.default_rng(7)
    task = reference_task(rng)
    d = design_dma(task, rng=rng, max_iter=3)
    assert all(b >= a * (1 - 1e-9) for a, b in zip(d.trace, d.trace[1:], strict=False))
    assert d.trace[-1] > d.trace[0]  # the analog step found improvements
    assert task.feasible(task.exact(d.b, d.B), tol=1e-5)  # exact model, not the solver
    assert d.start_correlation < 0.95
    assert len(d.residuals) == len(d.trace)
    assert all(min(r.values()) >= -1e-5 for r in d.residuals)  # every iterate feasible


def test_analog_step_accepts_only_exact_improvements(rng) -> None:
    task = reference_task(rng)
    b = rng.normal(0, 10, task.model.L)
    dig = solve_digital(task.problem(b))
    before = task.exact(b, dig.B)
    bn, info = analog_step(task, b, dig.B, delta=50.0)
    after = task.exact(bn, dig.B)
    if info["accepted"]:
        assert after["objective"] > before["objective"] and task.feasible(after)
        # the trust region and the Neumann bound held
        Phi = task.model.phi(task.model.spec.r0_siemens + 1j * b)
        assert np.max(np.abs(bn - b)) <= 1.0 / np.linalg.norm(Phi, 2) + 1e-9
    else:
        assert np.array_equal(bn, b)


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
            sdr = solve_digital(task.problem(np.array([x, y])))
            assert sdr.sdp_objective == pytest.approx(values[(x, y)], rel=1e-4)
    assert np.isfinite(best)
    d = design_dma(task, rng=rng, max_iter=4, n_starts=20)
    # the design's B is the digital optimum at its own tuning (the known answer there)
    assert d.objective == pytest.approx(closed_form(d.b), rel=1e-3)
    assert d.objective >= d.trace[0] * (1 - 1e-9)  # and the alternation never lost ground


def test_p4_fast_equals_cvxpy_reference(rng) -> None:
    from rfctl.optimize.dma import (
        _linear_model,
        _max_correlation,
        _solve_p4_clarabel,
        _solve_p4_cvxpy,
    )

    task = reference_task(rng)
    starts = rng.normal(0, 10, (60, task.model.L))
    b = starts[int(np.argmin([_max_correlation(task, x) for x in starts]))]
    B = solve_digital(task.problem(b)).B
    *lm, Phi = _linear_model(task, b, B)
    for scale in (1.0, 0.2):
        delta = scale / np.linalg.norm(Phi, 2)
        z1, v1 = _solve_p4_clarabel(task, *lm, delta)
        _, v2 = _solve_p4_cvxpy(task, *lm, delta)
        assert v1 == pytest.approx(v2, rel=1e-5, abs=1e-9)
        assert np.max(np.abs(z1)) <= delta * (1 + 1e-7)


def test_dma_figure_script_and_cli(tmp_path) -> None:
    import io
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "figures" / "dma_figures.py"
    proc = subprocess.run([sys.executable, str(script), "all", "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("dma_beampattern", "dma_convergence", "dma_tradeoff", "dma_quantization"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "dma.json").read_text())
    assert [r["bits"] for r in data["quantization"]] == [None, 1, 2, 3, 4, 8]

    from rfctl.cli import main
    from rfctl.state import ArrayState

    out = io.StringIO()
    assert main(["optimize", "dma", "--scenario", "dma-4x8", "--out",
                 str(tmp_path / "dma.json")], out=out) == 0
    assert "after quantizing the tunings" in out.getvalue()
    st = ArrayState.load(tmp_path / "dma.json")
    assert st.dma.b.shape == (32,) and st.dma_b.shape == (4, 7)
