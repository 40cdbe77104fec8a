"""Studies that need both an optimizer's design and the HAL: what quantization costs.

This module sits above the HAL and the optimizers (see the import contract), so that
neither of them has to know the other.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rfctl.config import BoardProfile, load_config, parse_config
from rfctl.errors import ConfigError, InfeasibleError
from rfctl.hal import compile_board, dequantize, quantize
from rfctl.metrics import beam_gain, hybrid_precoder, sinr, sum_rate
from rfctl.optimize.dma import (
    DmaDesign,
    DmaTask,
    describe_violations,
    design_dma,
    resonance_arc,
    susceptance_bounds,
    tuning_state,
)
from rfctl.optimize.dma_digital import infeasibility, solve_digital
from rfctl.optimize.mmwave import MmwaveResult, MmwaveTask
from rfctl.state import ArrayState, DesignRecord

logger = logging.getLogger(__name__)

__all__ = [
    "BoardDesign",
    "check_dma_state",
    "design_dma_for_board",
    "lorentzian_bits_study",
    "mmwave_state_report",
    "phase_bits_study",
    "realised_on_board",
    "table_arc",
]


def _mmwave_constraints(task: MmwaveTask, g: NDArray, F: NDArray, tol: float) -> dict:
    """Sensing (gain ≥ Υ per target) and power (‖F‖² ≤ P) of a precoder, SI/linear."""
    ups = np.broadcast_to(np.asarray(task.upsilon, float), g.shape)
    ratio = g / ups
    power = float(np.linalg.norm(F) ** 2)
    fails = [f"sensing gain target {int(t)} >= Υ: {ratio[t]:.4g} of the bound"
             for t in np.flatnonzero(ratio < 1 - tol)]
    if power > task.power * (1 + tol):
        fails.append(f"power <= P: {power:.4g} W vs {task.power:.4g} W")
    return {"power": power, "sensing_margin": float(ratio.min()),
            "power_margin": power / task.power, "feasible": not fails,
            "fails": "; ".join(fails)}


def phase_bits_study(result: MmwaveResult, task: MmwaveTask,
                     bits: Iterable[int] = range(1, 9), tol: float = 1e-6) -> list[dict]:
    """Sum-rate and sensing gains of a hybrid design after b-bit phase quantization.

    For each bit width, a board with uniform b-bit phase shifters and the design's switch
    network quantizes the state through the HAL. The dequantized phases, the switches and
    F_BB are then evaluated with rfctl.metrics on the design's channel.

    Parameters
    ----------
    result : MmwaveResult
        The continuous hybrid design (phases, switches, F_BB).
    task : MmwaveTask
        Its channel ``H`` (N × K), steering vectors ``A`` (N × T) and noise power σ², W.
    bits : iterable of int
        Phase-shifter widths to quantize to.
    tol : float
        Relative tolerance of the feasibility check.

    Returns
    -------
    list of dict
        One row per bit width, SI and linear only (dB and degrees are for the edge):
        ``bits``, ``sum_rate``, ``rate_loss`` (bit/s/Hz), ``min_gain`` (the weakest
        target's beam gain, a linear power gain), ``gain_loss_ratio`` (the worst
        target's continuous-to-quantized gain ratio, linear, 1 = no loss) and
        ``max_phase_error`` (rad); the constraints: ``power`` (‖F‖²_F, W),
        ``sensing_margin`` (min over targets of gain/Υ, ≥ 1 meets), ``power_margin``
        (power / P, ≤ 1 meets), ``feasible`` (both, to ``tol`` relative) and ``fails``
        (the failed constraints named, "" when feasible). A first row with
        ``bits = None`` holds the continuous design.
    """
    state = result.state()
    N, nrf = state.switch.shape
    F0 = hybrid_precoder(state.phases, state.switch, state.f_bb)
    g0 = beam_gain(task.A, F0)
    r0 = sum_rate(sinr(task.H, F0, task.sigma2))
    rows = [{"bits": None, "sum_rate": r0, "rate_loss": 0.0, "min_gain": float(g0.min()),
             "gain_loss_ratio": 1.0, "max_phase_error": 0.0,
             **_mmwave_constraints(task, g0, F0, tol)}]
    for b in bits:
        prof = parse_config({"kind": "board", "name": f"study-{b}bit", "banks": [
            {"name": "phase", "kind": "phase", "count": N, "bits": b},
            {"name": "switch", "kind": "switch_matrix", "antennas": N, "rf_chains": nrf}]})
        img = quantize(state.replace(f_bb=None), prof)
        q = dequantize(img, state)
        F = hybrid_precoder(q.phases, q.switch, q.f_bb)
        g = beam_gain(task.A, F)
        r = sum_rate(sinr(task.H, F, task.sigma2))
        rows.append({"bits": b, "sum_rate": r, "rate_loss": r0 - r,
                     "min_gain": float(g.min()), "gain_loss_ratio": float(np.max(g0 / g)),
                     "max_phase_error": float(img.banks["phase"].max_error),
                     **_mmwave_constraints(task, g, F, tol)})
    return rows


def mmwave_state_report(state: ArrayState, board: BoardProfile | str,
                        tol: float = 1e-6) -> dict | None:
    """A saved hybrid (mmWave / dual-band) design before and after a board's quantization.

    The task comes from the state's record: its scenario and realisation
    (:func:`rfctl.optimize.mmwave.task_from_scenario`; P_m from the dual-band notes when
    present) with the recorded mmWave channel ``H`` in place of a regenerated one.

    Returns
    -------
    dict or None
        None for a state without phases, switches, F_BB or a scenario record; else
        ``before`` / ``after``: ``sum_rate`` (bit/s/Hz), ``min_sinr`` (linear),
        ``min_gain`` (linear) and the keys of the constraint check (``power`` W,
        ``sensing_margin``, ``power_margin``, ``feasible``, ``fails``), plus
        ``upsilon`` (linear, per target) and ``p_max`` (W).
    """
    from rfctl.optimize.mmwave import task_from_scenario

    rec = state.record
    if (state.phases is None or state.switch is None or state.f_bb is None or rec is None
            or rec.scenario is None):
        return None
    scenario = parse_config(rec.scenario)
    if getattr(scenario, "mmwave", None) is None:
        return None
    power = rec.notes.get("mmwave_power_w") if rec.notes else None
    task = task_from_scenario(scenario, rec.realisation,
                              power=None if power is None else float(power))
    H = rec.channels.get("mmwave")
    if H is not None and np.shape(H) == task.H.shape:
        task.H = np.asarray(H)
    prof = _board(board)
    q = dequantize(quantize(state, prof), state)

    def metrics(st: ArrayState) -> dict:
        F = hybrid_precoder(st.phases, st.switch, st.f_bb)
        g = beam_gain(task.A, F)
        sn = sinr(task.H, F, task.sigma2)
        return {"sum_rate": sum_rate(sn), "min_sinr": float(sn.min()),
                "min_gain": float(g.min()), **_mmwave_constraints(task, g, F, tol)}

    return {"before": metrics(state), "after": metrics(q),
            "upsilon": np.asarray(task.upsilon, float), "p_max": float(task.power)}


def _lorentzian_bank(profile: BoardProfile) -> tuple[str, NDArray[np.complex128]]:
    """(bank name, table of responses q) of a board's Lorentzian bank."""
    from rfctl.config import LorentzianBank

    banks = [bk for bk in profile.banks if isinstance(bk, LorentzianBank)]
    if len(banks) != 1:
        raise ConfigError(f"{profile.name}: a DMA board needs exactly one Lorentzian bank, "
                          f"found {len(banks)}", field="banks", reason="no Lorentzian bank")
    book = compile_board(profile).codebooks[banks[0].name]
    return banks[0].name, np.asarray(book.table, complex)


def table_arc(table: NDArray[np.complex128]) -> tuple[float, float]:
    """The ψ' span of a Lorentzian table's entries.

    Parameters
    ----------
    table : ndarray, shape (K,) complex
        Responses q of the table.

    Returns
    -------
    (float, float)
        ψ'_min, ψ'_max, rad (ψ' = 0 at resonance, see
        :func:`rfctl.optimize.dma.susceptance_bounds`).
    """
    pp = np.angle(np.exp(1j * (np.angle(2 * np.asarray(table) + 1j) + np.pi / 2)))
    return float(pp.min()), float(pp.max())


def _board(board: BoardProfile | str) -> BoardProfile:
    prof = load_config(board) if isinstance(board, str) else board
    if not isinstance(prof, BoardProfile):
        raise ConfigError(f"{board}: is a scenario, not a board profile", field="board",
                          reason="not a board")
    return prof


def _with_loads(task: DmaTask, loads: NDArray, B: NDArray) -> dict:
    """:meth:`DmaTask.report` of complete loads Y_s (L,) and B."""
    return task.report(task.exact(None, B, loads=loads))


def realised_on_board(task: DmaTask, state: ArrayState, board: BoardProfile | str,
                      *, reoptimise: bool = True) -> dict:
    """Quantize a DMA state to a board's codes and check every constraint exactly.

    The tunings go through the HAL (``quantize`` → ``dequantize``: the realised, possibly
    lossy, loads of the codes). With ``reoptimise`` the digital beamformer is re-solved
    for those loads (the SDR of P2); otherwise the state's B is kept.

    Parameters
    ----------
    task : DmaTask
    state : ArrayState
        With ``dma`` (tunings) and ``dma_b`` (B, shape (N, M + N_s)).
    board : BoardProfile or str
        A board with one Lorentzian bank.
    reoptimise : bool
        Re-solve B for the realised loads (an infeasible SDR is reported in
        ``report["reoptimise_error"]`` and the kept B's report is used).

    Returns
    -------
    dict
        ``report`` (:meth:`DmaTask.report` of the realised design), ``kept`` (the report
        with the state's B), ``state`` (the realised ArrayState: codes' tunings and the
        B used), ``codes`` (shape (L,) int), ``max_q_error`` (largest distance |Δq| of
        an element's response q to its table entry, dimensionless) and
        ``out_of_range`` (elements outside the table's arc).

    Raises
    ------
    ConfigError
        ``board`` is a scenario, or has no (or several) Lorentzian banks.
    """
    prof = _board(board)
    name, _ = _lorentzian_bank(prof)
    img = quantize(state.replace(dma_b=None), prof)
    q = dequantize(img, state)
    loads = q.dma.load
    kept = _with_loads(task, loads, state.dma_b)
    B = state.dma_b
    report = kept
    if reoptimise:
        try:
            B = solve_digital(task.problem(None, loads=loads)).B
            report = _with_loads(task, loads, B)
        except InfeasibleError as exc:
            report = dict(kept, reoptimise_error=str(exc))
    bank = img.banks[name]
    return {"report": report, "kept": kept, "state": q.replace(dma_b=B),
            "codes": np.asarray(bank.codes), "max_q_error": float(bank.max_error),
            "out_of_range": int(bank.out_of_range)}


@dataclass
class BoardDesign:
    """A DMA design finished on a board's codes (:func:`design_dma_for_board`).

    Attributes
    ----------
    continuous : DmaDesign
        The design inside the board's realisable arc, before quantization.
    state : ArrayState
        The realised design: the codes' tunings (lossy table entries kept in
        ``dma.g``), the re-optimised B and the task.
    report : dict
        :meth:`DmaTask.report` of the realised design (exact model).
    continuous_report : dict
    codes : ndarray, shape (L,) int
    psi_range : (float, float)
        The ψ' arc the design was confined to, rad.
    code_search_steps : int
        Element-code changes made by the discrete search (0 if nearest codes sufficed).
    path : str
        ``"arc"`` (designed inside the table's arc) or ``"unconfined"`` (the unconfined
        continuous design finished on the codes: :func:`design_dma_for_board`, step 4).
    """

    continuous: DmaDesign
    state: ArrayState
    report: dict
    continuous_report: dict
    codes: NDArray[np.int64]
    psi_range: tuple[float, float]
    code_search_steps: int = 0
    path: str = "arc"


def _code_search(task: DmaTask, state: ArrayState, table: NDArray, codes: NDArray,
                 max_passes: int = 2) -> tuple[NDArray, int]:
    """Greedy element-by-element code changes that make the re-optimised design feasible
    (or, once feasible, raise its objective), judged by the exact model. An infeasible
    SDR scores by its total violation (:func:`infeasibility`), so each change can be
    judged by how much closer it gets."""
    tun = state.dma

    def score(cs: NDArray) -> tuple[int, float]:
        loads = tun.from_response(table[cs]).load
        p = task.problem(None, loads=loads)
        try:
            B = solve_digital(p).B
        except InfeasibleError:
            return (0, -infeasibility(p))  # graded: total violation at best
        rep = task.report(task.exact(None, B, loads=loads))
        return (1, rep["objective"]) if rep["feasible"] else (0, -len(rep["violations"]))

    best = score(codes)
    steps = 0
    for _ in range(max_passes):
        improved = False
        for el in range(codes.size):
            for c in range(table.size):
                if c == codes[el]:
                    continue
                trial = codes.copy()
                trial[el] = c
                sc = score(trial)
                if sc > best:
                    best, codes, improved = sc, trial, True
                    steps += 1
        if not improved or best[0] == 1:
            break
    return codes, steps


def _finish_on_codes(task: DmaTask, cont: DmaDesign, prof: BoardProfile,
                     table: NDArray, code_search: bool) -> tuple[dict, ArrayState, int]:
    """Quantize a continuous design to the board's codes, re-optimise B, check it and,
    when a constraint fails, run the greedy code search. Returns (the
    :func:`realised_on_board` result, the continuous state, code-search steps)."""
    st0 = tuning_state(task, cont)
    fin = realised_on_board(task, st0, prof)
    steps = 0
    if code_search and not fin["report"]["feasible"]:
        codes, steps = _code_search(task, st0, table, fin["codes"])
        tun = st0.dma.from_response(table[codes])
        try:
            B = solve_digital(task.problem(None, loads=tun.load)).B
        except InfeasibleError:
            B = fin["state"].dma_b  # the search found no feasible SDR: keep its start's B
        fin = realised_on_board(task, st0.replace(dma=tun, dma_b=B), prof)
    return fin, st0, steps


def design_dma_for_board(task: DmaTask, board: BoardProfile | str, *,
                         rng: np.random.Generator, code_search: bool = True,
                         **design_kw) -> BoardDesign:
    """Design a DMA for a board: inside its realisable arc, finished on its codes.

    1. The ψ' span of the board's Lorentzian table (:func:`table_arc`) becomes per-element
       Im Y_s bounds (:func:`rfctl.optimize.dma.susceptance_bounds`) and the alternation
       (:func:`rfctl.optimize.dma.design_dma`) stays inside them.
    2. The tunings are quantized through the HAL to the board's codes (nearest entry;
       the realised loads keep the table's loss), B is re-optimised for those loads and
       every constraint is checked with the exact model.
    3. If a constraint fails, a greedy code search (``code_search``) changes one element's
       code at a time, keeping a change when the re-optimised design gets closer to
       feasible (fewer failed constraints) or, once feasible, better.
    4. If the arc-confined design is infeasible (its SDR at every start, or on the codes
       after the search), the unconfined continuous design — the one
       :func:`rfctl.optimize.dma.design_dma` makes from the same generator state, i.e.
       what ``rfctl optimize dma`` without ``--board`` saves — is finished on the codes
       the same way (steps 2–3): its tunings outside the arc go to the nearest table
       entry, and the re-optimised B may still meet every constraint. The first feasible
       finish is returned (``path`` says which); if neither is feasible, the arc design's
       finish (or, when the arc SDR was infeasible, the unconfined one's) is returned
       with ``report["feasible"] = False``.

    The returned state is exactly the checked design: re-checking it with
    :func:`check_dma_state` on the same board gives the same report.

    Parameters
    ----------
    task : DmaTask
    board : BoardProfile or str
        The board (or its built-in name / TOML path); it needs one Lorentzian bank.
    rng : numpy.random.Generator
        Draws the alternation's starting tunings. The fallback of step 4 starts from a
        copy of its state at entry.
    code_search : bool
        Run the greedy code search when the nearest codes fail a constraint.
    **design_kw
        Passed to :func:`rfctl.optimize.dma.design_dma`.

    Returns
    -------
    BoardDesign

    Raises
    ------
    ConfigError
        ``board`` is a scenario, or has no (or several) Lorentzian banks.
    InfeasibleError
        The SDR is infeasible at every start both inside the arc and unconfined; the
        message gives both reasons.
    """
    prof = _board(board)
    _, table = _lorentzian_bank(prof)
    psi = table_arc(table)
    bounds = susceptance_bounds(task, psi)
    rng_unconfined = copy.deepcopy(rng)  # the stream `design_dma(task, rng=rng)` would use
    tried: list[tuple[str, DmaDesign, dict, ArrayState, int]] = []
    errors: list[str] = []
    for path in ("arc", "unconfined"):
        kw = dict(design_kw, b_bounds=bounds) if path == "arc" else design_kw
        try:
            cont = design_dma(task, rng=rng if path == "arc" else rng_unconfined, **kw)
        except InfeasibleError as exc:
            errors.append(f"{'inside the board arc' if path == 'arc' else 'unconfined'}: "
                          f"{exc}")
            logger.info("board design, %s: %s", path, exc)
            continue
        fin, st0, steps = _finish_on_codes(task, cont, prof, table, code_search)
        tried.append((path, cont, fin, st0, steps))
        logger.info("board design, %s: feasible on the codes: %s", path,
                    fin["report"]["feasible"])
        if fin["report"]["feasible"]:
            break
    if not tried:
        raise InfeasibleError(f"board {prof.name}: the digital beamforming SDP is infeasible "
                              "at every start (" + "; ".join(errors) + ")")
    path, cont, fin, st0, steps = next((t for t in tried if t[2]["report"]["feasible"]),
                                       tried[0])
    state = fin["state"].replace(record=DesignRecord(notes={
        "design": "rfctl.studies.design_dma_for_board", "board": prof.name, "path": path,
        "stop_reason": str(cont.stop_reason), "iterations": cont.iterations}))
    return BoardDesign(continuous=cont, state=state, report=fin["report"],
                       continuous_report=task.report(task.exact(cont.b, cont.B)),
                       codes=np.asarray(fin["codes"]), psi_range=psi,
                       code_search_steps=steps, path=path)


def check_dma_state(state: ArrayState, board: BoardProfile | str | None = None) -> dict:
    """Re-evaluate a saved DMA design with the model (the task recorded in the state).

    Without ``board``, the state's loads (including a lossy ``dma.g``) and B are checked
    as they are. With ``board``, the tunings are first quantized to the board's codes
    (B kept: what programming that board with this state would realise).

    Returns
    -------
    dict
        :meth:`DmaTask.report` (``feasible``, ``violations`` with SI values, …).

    Raises
    ------
    ConfigError
        The state has no DMA tunings, B or task record.
    """
    for name in ("dma", "dma_b", "dma_task"):
        if getattr(state, name) is None:
            raise ConfigError(f"the state has no {name}: not a DMA design saved with its "
                              "task", field=name, reason="missing")
    task = DmaTask.from_record(state.dma_task)
    if board is None:
        return task.report(task.exact(None, state.dma_b, loads=state.dma.load))
    return realised_on_board(task, state, board, reoptimise=False)["report"]


def lorentzian_bits_study(design: DmaDesign, task: DmaTask,
                          bits: Iterable[int] = (1, 2, 3, 4, 8),
                          psi_range: tuple[float, float] | None = None,
                          boards: Iterable[BoardProfile | str] = ()) -> list[dict]:
    """Every constraint of a DMA design after its tunings go through b-bit tables/boards.

    For each bit width, a board with a generated Lorentzian table (2^b responses evenly
    spaced on the ψ' arc ``psi_range``, nearest-entry policy) quantizes the tunings
    through the HAL; each board in ``boards`` is used as it is. The realised loads are
    evaluated exactly with B re-optimised for them (the SDR), and with the design's B
    kept.

    ``psi_range`` is in ψ' (rad, 0 at resonance); the default is
    :func:`rfctl.optimize.dma.resonance_arc` (f₀ within ±10 % of f at Q = 10,
    ψ' ∈ [−0.69π, 0.71π]), centred where real elements operate.

    Returns
    -------
    list of dict
        One row each for the continuous design (``bits`` None), every bit width and every
        board (``board`` = its name): the :meth:`DmaTask.report` keys of the realised
        design with B re-optimised (``objective``, ``min_sinr_ratio``, ``beampattern``,
        ``beta``, ``beta_max``, ``power``, ``p_max``, ``feasible``, ``violations``) plus
        ``why`` (:func:`rfctl.optimize.dma.describe_violations`), ``kept`` (the report
        with the design's B), ``max_q_error`` and ``out_of_range``.
    """
    pp = resonance_arc() if psi_range is None else psi_range
    state = tuning_state(task, design)
    cont = task.report(task.exact(design.b, design.B))
    rows = [dict(cont, bits=None, board=None, why=describe_violations(cont), kept=cont,
                 max_q_error=0.0, out_of_range=0)]
    profiles: list[tuple[int | None, BoardProfile]] = []
    L = design.b.size
    for b in bits:
        profiles.append((b, parse_config({"kind": "board", "name": f"dma-{b}bit", "banks": [
            {"name": "tuning", "kind": "lorentzian", "count": L, "out_of_range": "nearest",
             "arc": {"bits": b, "psi_min": pp[0] - np.pi / 2,
                     "psi_max": pp[1] - np.pi / 2}}]})))
    for brd in boards:
        profiles.append((None, _board(brd)))
    for b, prof in profiles:
        r = realised_on_board(task, state, prof)
        rep = r["report"]
        rows.append(dict(rep, bits=b, board=None if b is not None else prof.name,
                         why=describe_violations(rep), kept=r["kept"],
                         max_q_error=r["max_q_error"], out_of_range=r["out_of_range"]))
    return rows
