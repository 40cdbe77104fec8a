"""Measurement-driven configuration of a board's phase bank (``rfctl lab optimize``).

:func:`optimize_board` connects the blind methods of :mod:`rfctl.lab.blind` to a board
and a power sensor: every measurement programs the phase bank's codes (stage → latch →
verify, :func:`rfctl.hal.device.program`) and then reads the sensor, so each reading is
taken after the board latched. At the end the best configuration is programmed and
re-measured (``verify`` readings). If anything fails or the run is interrupted, the board
is put back on the image it held before the run and :class:`OptimizeInterruptedError`
carries the measurements taken so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rfctl.config import BoardProfile, PhaseBank
from rfctl.errors import ConfigError, RfctlError
from rfctl.hal.device import Device
from rfctl.hal.image import BankImage, DeviceImage, image_from_bytes, unpack_image
from rfctl.hal.program import program
from rfctl.lab.blind import (
    BlindResult,
    MeasurementLog,
    channel_estimation,
    conditional_sample_mean,
    greedy_flips,
)
from rfctl.lab.instruments import PowerSensor

__all__ = ["METHODS", "OptimizeInterruptedError", "OptimizeResult", "codes_image",
           "optimize_board", "phase_bank", "restore_board"]

log = logging.getLogger(__name__)

METHODS = ("greedy", "csm", "estimate")


def phase_bank(profile: BoardProfile) -> PhaseBank:
    """The profile's phase bank (uniform, with a bit width).

    Raises
    ------
    ConfigError
        No phase bank, or a table bank without a bit width.
    """
    ph = profile.find_bank("phase")
    if ph is None:
        raise ConfigError(f"{profile.name}: the lab routines need a phase bank",
                          field="banks", reason="no phase bank")
    if ph.bits is None:
        raise ConfigError(f"{profile.name}: bank {ph.name!r} is table-based; the lab "
                          "routines need a uniform phase bank (bits)", field="banks",
                          reason="table phase bank")
    return ph


def codes_image(profile: BoardProfile, codes: np.ndarray) -> DeviceImage:
    """An image setting only the phase bank's codes (other banks keep their contents)."""
    ph = phase_bank(profile)
    c = np.asarray(codes, np.int64)
    if c.shape != (ph.count,):
        raise ConfigError(f"codes have shape {c.shape}, bank {ph.name!r} has {ph.count} "
                          "elements", field="codes", reason="wrong size")
    z = np.zeros(c.size)
    return DeviceImage(profile.name, profile.model,
                       {ph.name: BankImage(ph.name, ph.kind, c, ph.bits, c, c, z)})


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize_board`.

    Attributes
    ----------
    codes : ndarray, shape (N,) int
        The configuration left on the board.
    verified_w : list of float
        Re-measurements of it on the board, W.
    initial_w : float
        Power of the board's configuration before the run, W.
    blind : BlindResult
    rows : list of dict
        Every reading (``n``, ``phase``, ``power_w``, ``incumbent_w``).
    elapsed_s : float
    image_before, image_after : bytes
        The board's whole image before and after the run.
    """

    codes: np.ndarray
    verified_w: list[float]
    initial_w: float
    blind: BlindResult
    rows: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    image_before: bytes = b""
    image_after: bytes = b""

    @property
    def power_w(self) -> float:
        """Mean of the verification readings, W."""
        return float(np.mean(self.verified_w))


class OptimizeInterruptedError(RfctlError):
    """The run stopped early; ``rows`` holds the readings taken, and the board was put
    back on its previous image (``restored`` says whether that succeeded)."""

    def __init__(self, message: str, rows: list[dict], restored: bool,
                 image_before: bytes = b"") -> None:
        super().__init__(message)
        self.rows = rows
        self.restored = restored
        self.image_before = image_before


def restore_board(device: Device, profile: BoardProfile, image: bytes) -> bool:
    """Program ``image`` (whole-image bytes) back; True on success (errors are logged)."""
    try:
        program(device, image_from_bytes(image, device.info(), profile.name))
        return True
    except (RfctlError, OSError) as exc:
        log.error("could not restore the board: %s", exc)
        return False


def optimize_board(device: Device, profile: BoardProfile, sensor: PowerSensor, *,
                   method: str = "greedy", budget: int, rng: np.random.Generator,
                   verify: int = 3, groups: int = 4, settle_s: float = 0.0,
                   progress: Callable[[int, int], None] | None = None) -> OptimizeResult:
    """Configure the phase bank from power readings alone.

    Parameters
    ----------
    device : Device
    profile : BoardProfile
        With a uniform phase bank (one-bit or few-bit; no switch bank needed).
    sensor : PowerSensor
    method : {"greedy", "csm", "estimate"}
        Coordinate flips; conditional sample mean (by ``groups``); channel estimation
        then the exact one-bit optimum (few-bit banks: the two states half a turn apart;
        best from about 6N readings, greedy below).
    budget : int
        Readings for the search (≥ 1); ``verify`` more are taken at the end.
    rng : numpy.random.Generator
    verify : int
        Re-measurements of the final configuration (≥ 1).
    settle_s : float
        Wait after each latch before reading, s.
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ConfigError
        Unknown method, budget < 1, verify < 1, or no usable phase bank.
    OptimizeInterruptedError
        Ctrl-C or an error during the run; the board is restored first.
    """
    if method not in METHODS:
        raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}",
                          field="method", reason="unknown method")
    if budget < 1:
        raise ConfigError(f"budget = {budget} must be ≥ 1", field="budget", reason="below 1")
    if verify < 1:
        raise ConfigError(f"verify = {verify} must be ≥ 1", field="verify", reason="below 1")
    if settle_s < 0:
        raise ConfigError(f"settle = {settle_s} s must be ≥ 0", field="settle",
                          reason="negative")
    ph = phase_bank(profile)
    levels = 1 << ph.bits
    n = ph.count
    before = device.read_active()
    device.verified_active = before
    t0 = time.perf_counter()
    total = budget + verify + 1

    def measure(codes: np.ndarray) -> float:
        program(device, codes_image(profile, codes))
        if settle_s:
            time.sleep(settle_s)
        return sensor.read_power()

    meas = MeasurementLog(measure, budget + 1,
                          (lambda d, t: progress(d, total)) if progress else None)
    try:
        start = _codes_of(before, device, ph.name)
        p0 = meas(start, "initial")
        meas.set_incumbent(p0)
        if method == "greedy":
            res = greedy_flips(meas, n, budget=budget + 1, rng=rng, levels=levels, x0=start)
        elif method == "csm":
            res = conditional_sample_mean(meas, n, budget=budget + 1, rng=rng, levels=levels,
                                          groups=min(groups, n), x0=start)
        else:
            res = channel_estimation(meas, n, budget=budget + 1, rng=rng,
                                     high=levels // 2)
        program(device, codes_image(profile, res.codes))
        verified = []
        for k in range(verify):
            if settle_s:
                time.sleep(settle_s)
            verified.append(sensor.read_power())
            meas.rows.append({"n": meas.used + 1, "phase": "verify", "power_w": verified[-1],
                              "incumbent_w": res.power_w})
            if progress is not None:
                progress(budget + 2 + k, total)
    except (KeyboardInterrupt, RfctlError, OSError) as exc:
        restored = restore_board(device, profile, before)
        raise OptimizeInterruptedError(
            f"optimize ({method}) stopped after {meas.used} of {budget} readings "
            f"({type(exc).__name__}: {exc}); board "
            + ("restored to its previous image" if restored else "NOT restored"),
            meas.rows, restored, before) from exc
    after = device.read_active()
    rows = meas.rows
    return OptimizeResult(np.asarray(res.codes), verified, p0, res, rows,
                          time.perf_counter() - t0, before, after)


def _codes_of(image: bytes, device: Device, bank: str) -> np.ndarray:
    return unpack_image(image, device.info())[bank].astype(np.int64)
