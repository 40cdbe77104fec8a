"""Helpers shared by the command modules: loading profiles, closing devices, and the
report formats (dB and degrees live here, at the edge; the library is SI)."""

from __future__ import annotations

from typing import Any, TextIO

import numpy as np

from rfctl.config import BoardProfile, load_config
from rfctl.errors import RfctlError
from rfctl.hal.image import DeviceImage

__all__ = ["board_profile", "close_quietly", "db", "deg", "print_image_report"]


def db(x: np.ndarray | float) -> np.ndarray:
    """10 log10 of a power ratio (floored at 1e-300), for display only.

    Parameters
    ----------
    x : float or ndarray
        Linear power ratio, or a power in W (then the result is dBW).

    Returns
    -------
    ndarray
        Same shape as ``x``, dB.
    """
    return 10 * np.log10(np.maximum(np.asarray(x, dtype=float), 1e-300))


def deg(x: np.ndarray | float) -> np.ndarray:
    """Radians to degrees, for display only.

    Parameters
    ----------
    x : float or ndarray
        Angle(s), rad.

    Returns
    -------
    ndarray
        Same shape as ``x``, degrees.
    """
    return np.degrees(np.asarray(x, dtype=float))


def board_profile(name: str) -> BoardProfile:
    """A board profile by built-in name or TOML path (a scenario is refused)."""
    cfg = load_config(name)
    if not isinstance(cfg, BoardProfile):
        raise RfctlError(f"{name}: is a scenario; a board profile is needed here")
    return cfg


def close_quietly(*objs: Any) -> None:
    """Close devices and instruments that have a ``close`` method."""
    for x in objs:
        close = getattr(x, "close", None)
        if close is not None:
            close()


def _format_error(row: dict) -> tuple[str, str]:
    if row["unit"] == "rad":
        return f"{deg(row['max_error']):.3f}°", f"{deg(row['rms_error']):.3f}°"
    if row["unit"] == "":
        return "exact", "exact"
    return f"{row['max_error']:.4f}", f"{row['rms_error']:.4f}"


def print_image_report(image: DeviceImage, out: TextIO) -> None:
    """A table per bank: element count, bits, max and RMS error, elements on."""
    rows = image.report()
    header = f"{'bank':<12}{'kind':<15}{'count':>6}{'bits':>6}{'max error':>13}" \
             f"{'RMS error':>13}{'on':>6}"
    print(f"board {image.board} (model {image.model})", file=out)
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        mx, rms = _format_error(r)
        print(f"{r['bank']:<12}{r['kind']:<15}{r['count']:>6}{r['bits']:>6}{mx:>13}"
              f"{rms:>13}{'-' if r['on'] is None else r['on']:>6}", file=out)
        if r["out_of_range"]:
            print(f"  {r['out_of_range']} element(s) outside the table's range "
                  "(nearest entry used)", file=out)
