"""The command line shared by the Monte Carlo figure scripts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FigureRun", "parse_figure_args"]


@dataclass(frozen=True)
class FigureRun:
    """What to draw and how: the parsed command line.

    Attributes
    ----------
    figures : set of str
        The figures asked for ("all" expanded).
    quick : bool
        Few realisations and x points (the paper's array sizes are kept).
    seeds : range
        Channel realisations.
    workers : int or None
        Sweep processes (1 with ``--quick``).
    out : Path
        Output folder (created).
    plot : bool
        False with ``--no-plot``: write the JSON data only.
    """

    figures: set[str]
    quick: bool
    seeds: range
    workers: int | None
    out: Path
    plot: bool


def parse_figure_args(doc: str, figures: list[str], *, realisations: int,
                      quick_realisations: int, argv: list[str] | None = None) -> FigureRun:
    """Parse ``FIGURE|all [--quick] [--realisations N] [--workers W] [--out DIR]
    [--no-plot]`` for a script whose module docstring is ``doc``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("figure", choices=[*figures, "all"])
    ap.add_argument("--quick", action="store_true",
                    help=f"{quick_realisations} realisation(s), fewer x points; the paper's "
                         "array sizes")
    ap.add_argument("--realisations", type=int, default=realisations)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--no-plot", action="store_true", help="write the JSON data only")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    return FigureRun(set(figures) if a.figure == "all" else {a.figure}, a.quick,
                     range(quick_realisations if a.quick else a.realisations),
                     1 if a.quick else a.workers, a.out, not a.no_plot)
