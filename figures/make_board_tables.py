"""Regenerate the tables shipped in configs/ (deterministic; run from the repo root).

- iq-phase-128.csv: a 7-bit beamformer-IC phase table (2.8125° steps) whose entries carry
  ±0.6° phase ripple and ±0.3 dB amplitude ripple, as measured tables do.
- calibration-196.csv: per-element phase offsets of a 14×14 panel (σ = 20°).
- lorentzian-2bit.csv: a 2-bit Lorentzian tuning table, responses q = ρ(−j + e^{jψ})/2
  with ρ = 0.97 (element loss) at ψ = −135°, −75°, −15°, 45° (away from q = 0 at ψ = 90°).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    rng = np.random.default_rng(20261124)
    n = 128
    ph = 2 * np.pi * np.arange(n) / n + np.deg2rad(0.6) * np.sin(2 * np.pi * 3 * np.arange(n) / n)
    amp = 10 ** (0.3 * np.cos(2 * np.pi * 2 * np.arange(n) / n) / 20)
    iq = amp * np.exp(1j * ph)
    with open(ROOT / "iq-phase-128.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "i", "q"])
        for c in range(n):
            w.writerow([c, repr(float(iq[c].real)), repr(float(iq[c].imag))])
    off = rng.normal(0.0, np.deg2rad(20.0), 196)
    with open(ROOT / "calibration-196.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["element", "phase_offset_rad"])
        for k in range(196):
            w.writerow([k, repr(float(off[k]))])
    psi = np.deg2rad([-135.0, -75.0, -15.0, 45.0])
    q = 0.97 * (-1j + np.exp(1j * psi)) / 2
    with open(ROOT / "lorentzian-2bit.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "re", "im"])
        for c in range(4):
            w.writerow([c, repr(float(q[c].real)), repr(float(q[c].imag))])


if __name__ == "__main__":
    main()
