"""Run records: every lab run writes a snapshot and its data (and plots) to a folder.

The snapshot holds what is needed to reproduce or audit a run: the board profile, the
board's IDENT, the instruments' identities, the versions of rfctl, Python, numpy and
pyvisa, and the run's parameters. The data go to CSV and JSON; the applied codes are
recorded per point.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunRecord"]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, complex):
        return {"re": v.real, "im": v.imag}
    if is_dataclass(v) and not isinstance(v, type):
        return asdict(v)
    return str(v)


class RunRecord:
    """A folder for one run: ``snapshot.json``, ``data.csv``, ``data.json``, ``*.png``.

    Parameters
    ----------
    root : path
        Parent folder; the run gets ``<root>/<kind>-<timestamp>``.
    kind : str
        Run kind (``sweep``, ``beampattern``, ``calibration``).
    """

    def __init__(self, root: str | Path, kind: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.path = Path(root) / f"{kind}-{stamp}"
        n = 1
        while self.path.exists():
            n += 1
            self.path = Path(root) / f"{kind}-{stamp}-{n}"
        self.path.mkdir(parents=True)
        self.kind = kind

    def snapshot(self, *, profile: Any = None, device: Any = None,
                 instruments: list[Any] = (), params: dict | None = None) -> None:
        """Write ``snapshot.json``."""
        import pyvisa

        import rfctl

        info = None
        if device is not None:
            try:
                i = device.info()
                info = {"model": i.model, "firmware": i.firmware, "boot_id": i.boot_id,
                        "banks": [asdict(b) for b in i.banks]}
            except Exception as exc:  # the snapshot must not fail the run
                info = {"error": str(exc)}
        snap = {
            "kind": self.kind,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": {"rfctl": rfctl.__version__, "python": platform.python_version(),
                         "numpy": np.__version__, "pyvisa": pyvisa.__version__},
            "board_profile": profile.model_dump(mode="json") if profile is not None else None,
            "board_ident": info,
            "instruments": [{"name": getattr(i, "name", "?"), "idn": getattr(i, "idn", "?")}
                            for i in instruments],
            "params": params or {},
        }
        (self.path / "snapshot.json").write_text(json.dumps(snap, indent=1, default=_jsonable))

    def data(self, rows: list[dict], extra: dict | None = None) -> None:
        """Write ``data.csv`` (scalar columns) and ``data.json`` (everything)."""
        (self.path / "data.json").write_text(
            json.dumps({"rows": rows, **(extra or {})}, indent=1, default=_jsonable))
        cols = [k for k in (rows[0] if rows else {}) if not isinstance(rows[0][k], list | dict)]
        with open(self.path / "data.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: r[k] for k in cols})

    def plot(self, name: str, x, ys: dict[str, Any], xlabel: str, ylabel: str) -> Path:
        """A line plot ``<name>.png`` (needs matplotlib: ``pip install rfctl[plot]``)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, y in ys.items():
            ax.plot(x, y, marker=".", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.4)
        if len(ys) > 1:
            ax.legend()
        fig.tight_layout()
        path = self.path / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
