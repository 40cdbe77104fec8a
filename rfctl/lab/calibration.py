"""Phase calibration by rotating one element at a time (the rotating-element method).

The beam points at the probe, using the current estimate of the offsets. For each
element n, its phase is stepped through M equally spaced states ψ_k = 2πk/M while the
received power P_k is measured. With the field R of all the other elements,

    P(ψ) = |R + g_n e^{j(ψ + γ_n)}|² = c₀ + 2 g_n |R| cos(ψ + γ_n − ∠R),

so the first Fourier coefficients b = (2/M) Σ P_k cos ψ_k and c = (2/M) Σ P_k sin ψ_k
give γ_n − ∠R = atan2(−c, b). Here γ_n is the element's uncompensated phase error at
ψ = 0. That includes the quantization error of its base code, which the HAL reports
and which is therefore subtracted. Adding the rest to the estimate aligns element n
with the others. ∠R is common to all
elements, and the global phase is irrelevant, so the circular mean is removed. Two or
three passes converge; the first corrects offsets of any size.

Noise: with complex receiver noise σ (in units of one element's field), the phase
estimate of element n has standard deviation ≈ σ / (g_n √M) radians, whatever |R| is.
The tests derive their tolerance from this.

The result is a calibration table (CSV ``element,phase_offset_rad``). A board profile
points at it (``calibration_file``), and the HAL then quantizes φ − δ̂_n.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfctl.config import BoardProfile, PhaseBank
from rfctl.errors import ConfigError
from rfctl.hal import CompiledBoard, compile_board, quantize
from rfctl.hal.codebooks import UniformPhaseCodebook
from rfctl.hal.device import Device, program
from rfctl.lab.instruments import PowerSensor
from rfctl.lab.sweeps import steering_state

__all__ = ["CalibrationResult", "phase_calibration", "write_calibration"]

log = logging.getLogger(__name__)


@dataclass
class CalibrationResult:
    """Outcome of :func:`phase_calibration`.

    Attributes
    ----------
    offsets : ndarray, shape (N,)
        Estimated phase offsets δ̂_n, rad (circular mean removed).
    passes : list of ndarray
        The estimate after each pass.
    measurements : int
        Power readings taken.
    power_before_w, power_after_w : float
        Power at the probe with the plain steering beam, and with the calibrated one.
    amplitudes : ndarray, shape (N,)
        Fitted cosine amplitudes 2 g_n |R| of the last pass (relative element gains).
    """

    offsets: np.ndarray
    passes: list[np.ndarray] = field(default_factory=list)
    measurements: int = 0
    power_before_w: float = float("nan")
    power_after_w: float = float("nan")
    amplitudes: np.ndarray | None = None


def _with_offsets(profile: BoardProfile, offsets: np.ndarray) -> CompiledBoard:
    """The profile's code books with the phase bank calibrated by ``offsets``."""
    cb = compile_board(profile)
    ph = next(b for b in profile.banks if isinstance(b, PhaseBank))
    book = cb.codebooks[ph.name]
    if not isinstance(book, UniformPhaseCodebook):
        raise ConfigError("phase calibration needs a uniform phase bank", field="banks",
                          reason="table phase bank")
    cb.codebooks[ph.name] = UniformPhaseCodebook(book.bits, book.count, offsets)
    return cb


def phase_calibration(
    device: Device, profile: BoardProfile, sensor: PowerSensor, *, rows: int, cols: int,
    probe: tuple[float, float] = (0.0, 0.0), states: int = 8, passes: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> CalibrationResult:
    """Estimate every element's phase offset from power measurements at a fixed probe.

    Parameters
    ----------
    device : Device
        The board (one RF chain feeds all elements during calibration).
    profile : BoardProfile
        With a uniform ``phase`` bank and a ``switch_matrix`` bank.
    sensor : PowerSensor
    rows, cols : int
        Array geometry (row-major elements).
    probe : (θ, φ)
        Where the probe is (surrogate angles).
    states : int
        Phase states M per element; must divide 2^bits so that each state is exact.
    passes : int
        Passes over all elements.

    Returns
    -------
    CalibrationResult
    """
    ph = next(b for b in profile.banks if isinstance(b, PhaseBank))
    if ph.bits is None or (1 << ph.bits) % states:
        raise ConfigError(f"states = {states} must divide 2^bits of the phase bank",
                          field="states", reason="not representable")
    n = rows * cols
    base = steering_state(rows, cols, *probe)
    step = 2 * np.pi / states
    psi = step * np.arange(states)
    est = np.zeros(n)
    history: list[np.ndarray] = []
    count = 0
    total = passes * n * states
    amps = np.zeros(n)

    def measure(board: CompiledBoard, phases: np.ndarray) -> float:
        nonlocal count
        program(device, quantize(base.replace(phases=phases), board))
        count += 1
        if progress is not None:
            progress(count, total + 2)
        return sensor.read_power()

    def base_error(board: CompiledBoard) -> np.ndarray:
        """Quantization error of the base beam per element (realised − wanted), rad."""
        return quantize(base, board).banks[ph.name].error

    power_before = measure(compile_board(profile), base.phases)
    for _ in range(passes):
        board = _with_offsets(profile, est)
        qerr = base_error(board)  # the element's phase at ψ = 0 is off by this much too
        for e in range(n):
            P = np.empty(states)
            for k in range(states):
                phases = base.phases.copy()
                phases[e] += psi[k]
                P[k] = measure(board, phases)
            b = 2 / states * np.sum(P * np.cos(psi))
            c = 2 / states * np.sum(P * np.sin(psi))
            # element error relative to the rest (+ ∠R), less its known quantization error
            est[e] += np.arctan2(-c, b) - qerr[e]
            amps[e] = np.hypot(b, c)
        est = np.angle(np.exp(1j * est) * np.exp(-1j * np.angle(np.mean(np.exp(1j * est)))))
        history.append(est.copy())
        log.info("calibration pass %d: %d measurements so far", len(history), count)
    power_after = measure(_with_offsets(profile, est), base.phases)
    return CalibrationResult(est, history, count, power_before, power_after, amps)


def write_calibration(path: str | Path, offsets: np.ndarray) -> Path:
    """Write a calibration table the HAL reads (``element,phase_offset_rad``)."""
    path = Path(path)
    lines = ["element,phase_offset_rad"] + [f"{k},{float(v)!r}" for k, v in enumerate(offsets)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
