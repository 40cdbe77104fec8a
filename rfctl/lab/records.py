"""Run records: every lab run writes a snapshot and its data (and plots) to a folder.

The snapshot holds what is needed to reproduce or audit a run: the board profile, the
board's IDENT and serial number, the link URL actually used, the calibration table's
contents, the instruments' identities, profiles and settings read back, the versions of
rfctl, Python, numpy, scipy and pyvisa and the git commit (when run from a checkout),
the command line, the run's parameters, and — written by :meth:`RunRecord.finish` — the
end time, the outcome, the board image before and after, the link statistics, and the
errors the instruments reported (their error queues are read at the end of every run,
completed or not; errors found are also logged as warnings). The
readings go to CSV and JSON in SI units. Plots use matplotlib's object-oriented API (a
``Figure`` with an Agg canvas); the global backend is never changed.
"""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunRecord", "load_run", "plot_run", "save_plot"]


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
        # the folders this record creates above its own (removed again by discard())
        self._made = [p for p in (Path(root), *Path(root).parents) if not p.exists()]
        self.path = Path(root) / f"{kind}-{stamp}"
        n = 1
        while self.path.exists():
            n += 1
            self.path = Path(root) / f"{kind}-{stamp}-{n}"
        self.path.mkdir(parents=True)
        self.kind = kind
        #: warnings of the run (e.g. logged by the routines), written into the snapshot
        self.warnings: list[str] = []

    def snapshot(self, *, profile: Any = None, device: Any = None,
                 instruments: list[Any] = (), params: dict | None = None,
                 link_url: str | None = None, argv: list[str] | None = None) -> None:
        """Write ``snapshot.json`` (at the start of a run)."""
        info = None
        image_before = None
        if device is not None:
            try:
                i = device.info()
                info = {"model": i.model, "firmware": i.firmware, "boot_id": i.boot_id,
                        "serial": i.serial or getattr(device, "serial_no", None),
                        "banks": [asdict(b) for b in i.banks]}
                image_before = device.read_active().hex()
            except Exception as exc:  # the snapshot must not fail the run
                info = {"error": str(exc)}
        self._device = device
        self._instruments = list(instruments)
        for inst in self._instruments:  # e.g. the generic dialect of an unknown model,
            for w in getattr(inst, "open_warnings", []):  # also when opened before the run
                if w not in self.warnings:
                    self.warnings.append(w)
        self._stats0 = getattr(device, "stats", None)
        self._stats0 = self._stats0.copy() if self._stats0 is not None else None
        self.snap = {
            "kind": self.kind,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
            "argv": list(sys.argv if argv is None else argv),
            "link_url": link_url or (profile.link.url if profile is not None else None),
            "board_profile": profile.model_dump(mode="json") if profile is not None else None,
            "calibration": _calibration_contents(profile),
            "board_ident": info,
            "image_before": image_before,
            "instruments": [_describe(i) for i in instruments],
            "params": params or {},
            "outcome": "running",
        }
        self._write_snapshot()

    def finish(self, outcome: str, *, image_after: bytes | None = None,
               extra: dict | None = None) -> None:
        """Complete ``snapshot.json``: end time, outcome, image after, link statistics,
        ``instrument_errors`` (each instrument's error queue is read now: errors found
        are logged as warnings) and ``warnings``, when the run logged any."""
        snap = getattr(self, "snap", {"kind": self.kind})
        errors = _instrument_errors(getattr(self, "_instruments", []))
        if errors:
            snap["instrument_errors"] = errors
        snap["end_time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        snap["outcome"] = outcome
        dev = getattr(self, "_device", None)
        if image_after is None and dev is not None:
            try:
                image_after = dev.read_active()
            except Exception as exc:
                snap["image_after_error"] = str(exc)
        snap["image_after"] = image_after.hex() if image_after is not None else None
        stats = getattr(dev, "stats", None)
        if stats is not None:
            snap["link_stats"] = (stats.since(self._stats0) if self._stats0 is not None
                                  else stats).__dict__
        snap.update(extra or {})
        self.snap = snap
        self._write_snapshot()

    def discard(self) -> bool:
        """Remove the folder of a run that ended before its first reading was recorded
        (a refusal): its ``snapshot.json``, the only file then, and the folder itself,
        and the parent folders (``root``) that this record created, when empty.

        Returns
        -------
        bool
            Whether the folder was removed (False, and nothing removed, when it holds
            anything else, such as data or plots).
        """
        try:
            names = {p.name for p in self.path.iterdir()}
            if names - {"snapshot.json"}:
                return False
            (self.path / "snapshot.json").unlink(missing_ok=True)
            self.path.rmdir()
        except OSError:
            return False
        for folder in self._made:  # innermost first; one that is not empty stays
            try:
                folder.rmdir()
            except OSError:
                break
        return True

    def _write_snapshot(self) -> None:
        if self.warnings:
            self.snap["warnings"] = list(self.warnings)
        (self.path / "snapshot.json").write_text(json.dumps(self.snap, indent=1,
                                                            default=_jsonable))

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

    def plot(self, name: str, x, ys: dict[str, Any], xlabel: str, ylabel: str, *,
             kind: str = "line") -> Path:
        """A plot ``<name>.png`` (needs matplotlib: ``pip install rfctl[plot]``).

        ``kind`` is ``line`` or ``bar``; ``ys`` maps a label to values (NaN gaps allowed).
        """
        return save_plot(self.path / f"{name}.png", x, ys, xlabel, ylabel, kind=kind)


def save_plot(path: Path, x, ys: dict[str, Any], xlabel: str, ylabel: str, *,
              kind: str = "line", title: str | None = None) -> Path:
    """Write a line or bar plot with matplotlib's object-oriented API (no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, y in ys.items():
        if kind == "bar":
            ax.bar(x, y, label=label)
        else:
            ax.plot(x, y, marker="." if len(x) < 400 else None, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.4)
    if len(ys) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _versions() -> dict:
    import numpy
    import pyvisa
    import scipy

    import rfctl

    v = {"rfctl": rfctl.__version__, "python": platform.python_version(),
         "numpy": numpy.__version__, "scipy": scipy.__version__, "pyvisa": pyvisa.__version__}
    try:
        import pyvisa_py

        v["pyvisa-py"] = getattr(pyvisa_py, "__version__", "?")
    except ImportError:
        pass
    try:
        root = Path(rfctl.__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0:
            v["git_commit"] = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                                   capture_output=True, text=True, timeout=5)
            v["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return v


def _calibration_contents(profile: Any) -> dict | None:
    """Each phase bank's calibration table: path and the offsets themselves."""
    if profile is None:
        return None
    out = {}
    for b in profile.banks:
        f = getattr(b, "calibration_file", None)
        if f:
            try:
                text = profile.resolve(f).read_text(encoding="utf-8")
            except (OSError, AttributeError) as exc:
                out[b.name] = {"file": f, "error": str(exc)}
                continue
            out[b.name] = {"file": f, "contents": text}
    return out or None


def _instrument_errors(instruments: list[Any]) -> dict:
    """Read each instrument's error queue (``poll_errors``, which logs a warning for any
    error) and list what each reported during the run: ``{name: {"errors": [...],
    "dropped": n, "unread": why}}`` (instruments without an error queue are left out)."""
    out = {}
    for inst in instruments:
        poll = getattr(inst, "poll_errors", None)
        if poll is None:
            continue
        entry: dict[str, Any] = {}
        if getattr(inst, "unanswered", False):
            entry["unread"] = "the instrument stopped answering"
        else:
            try:
                poll()
            except Exception as exc:  # the record must not fail the run
                entry["unread"] = str(exc)
        entry["errors"] = list(getattr(inst, "reported_errors", []))
        entry["dropped"] = getattr(inst, "errors_dropped", 0)
        out[getattr(inst, "name", "?")] = entry
    return out


def _describe(inst: Any) -> dict:
    d = getattr(inst, "describe", None)
    if d is not None:
        try:
            return d()
        except Exception as exc:  # the record must not fail the run
            return {"name": getattr(inst, "name", "?"), "idn": getattr(inst, "idn", "?"),
                    "error": str(exc)}
    return {"name": getattr(inst, "name", "?"), "idn": getattr(inst, "idn", "?")}


def _dbm(w: Any) -> np.ndarray:
    return 10 * np.log10(np.maximum(np.asarray(w, dtype=float), 1e-30)) + 30


def load_run(path: str | Path) -> dict:
    """A run folder's snapshot and data: ``{"snapshot": …, "data": …}``.

    Raises
    ------
    rfctl.errors.ConfigError
        The folder has no readable ``snapshot.json``, or its ``snapshot.json`` or
        ``data.json`` is not what a run writes (the file is named).
    """
    from rfctl.errors import ConfigError

    path = Path(path)
    try:
        snap = json.loads((path / "snapshot.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a run folder (snapshot.json: {exc})", field="run_dir",
                          reason="no snapshot") from None
    if not isinstance(snap, dict) or not isinstance(snap.get("kind", ""), str):
        raise ConfigError(f"{path}: snapshot.json is not a run snapshot (an object with a "
                          "'kind')", field="snapshot", reason="malformed")
    file = path / "data.json"
    if not file.exists():  # a run stopped before any reading
        return {"snapshot": snap, "data": {"rows": []}}
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: unreadable ({exc})", field="data",
                          reason="malformed") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{file}: 'rows' must be a list of readings (objects)",
                          field="rows", reason="malformed")
    return {"snapshot": snap, "data": data}


def plot_run(path: str | Path) -> list[Path]:
    """(Re)draw a run's plots from its records (partial runs too); returns the files.

    sweep/beampattern: power against θ; optimize: every reading and the incumbent's
    estimate against the measurement count; calibration: per-element offsets and the
    readings against the measurement count. Powers in dBm, angles in degrees (plot edge).
    """
    path = Path(path)
    run = load_run(path)
    kind = run["snapshot"].get("kind", "")
    rows = run["data"].get("rows", [])
    out: list[Path] = []
    if not rows:
        return out
    if kind in ("sweep", "beampattern"):
        out.append(save_plot(path / f"{kind}.png", [r["theta"] for r in rows],
                             {"power (dBm)": _dbm([r["power_w"] for r in rows])},
                             "θ (surrogate)", "received power (dBm)"))
    elif kind == "optimize":
        n = [r["n"] for r in rows]
        out.append(save_plot(path / "objective.png", n, {
            "reading": _dbm([r["power_w"] for r in rows]),
            "incumbent (estimate)": _dbm([r["incumbent_w"] if r["incumbent_w"] is not None
                                          else np.nan for r in rows])},
            "measurements", "received power (dBm)"))
    elif kind in ("calibrate", "calibration"):
        # rows: every reading; "offsets": the per-element table (completed runs only;
        # runs recorded before the readings became the rows kept the table as rows)
        offsets = run["data"].get("offsets")
        readings = rows
        if offsets is None and "element" in rows[0] and "phase_offset_deg" in rows[0]:
            offsets, readings = rows, run["data"].get("readings", [])
        if offsets:
            out.append(save_plot(path / "offsets.png", [r["element"] for r in offsets],
                                 {"offset (deg)": [r["phase_offset_deg"] for r in offsets]},
                                 "element", "phase offset (deg)", kind="bar"))
        if isinstance(readings, list) and readings:
            out.append(save_plot(path / "readings.png", [r["n"] for r in readings],
                                 {"reading": _dbm([r["power_w"] for r in readings])},
                                 "measurements", "received power (dBm)"))
    return out
