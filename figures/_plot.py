"""Plotting for the figure scripts, on matplotlib's object-oriented API.

Every figure is a :class:`matplotlib.figure.Figure` rendered by its own Agg canvas:
nothing touches pyplot's global state or the user's backend. dB conversion happens in
the scripts (the plot edge), not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

__all__ = ["heat_maps", "line_plot"]


def line_plot(path: Path, x: Sequence[float], series: Mapping[str, Sequence[float]], *,
              xlabel: str, ylabel: str, title: str, dpi: int = 120) -> Path:
    """One curve per entry of ``series`` against ``x``, markers on the points; saves PNG."""
    fig = Figure(figsize=(6, 4.2), layout="tight")
    ax = fig.add_subplot()
    for name, ys in series.items():
        ax.plot(list(x), list(ys), marker="o", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(True, alpha=0.4)
    ax.legend()
    fig.savefig(path, dpi=dpi)
    return path


def heat_maps(path: Path, maps: Mapping[str, NDArray[np.float64]], titles: Mapping[str, str], *,
              extent: tuple[float, float, float, float], span_db: float, xlabel: str,
              ylabel: str, colorbar: str, box: tuple[float, float, float, float] | None = None,
              dpi: int = 110) -> Path:
    """Side-by-side images (one per entry of ``maps``: (n, n) arrays in dB) on a shared colour
    scale spanning ``span_db`` below the largest value, with an optional red
    (x, y, width, height) box on each; saves PNG."""
    fig = Figure(figsize=(3.4 * len(maps), 3.6), layout="constrained")
    axs = fig.subplots(1, len(maps), squeeze=False)[0]
    vmax = max(float(m.max()) for m in maps.values())
    im = None
    for ax, (name, m) in zip(axs, maps.items(), strict=True):
        im = ax.imshow(m, origin="lower", extent=extent, vmin=vmax - span_db, vmax=vmax,
                       cmap="viridis")
        if box is not None:
            ax.add_patch(Rectangle(box[:2], box[2], box[3], fill=False, ec="red", lw=1))
        ax.set_title(titles[name])
        ax.set_xlabel(xlabel)
    axs[0].set_ylabel(ylabel)
    fig.colorbar(im, ax=list(axs), label=colorbar)
    fig.savefig(path, dpi=dpi)
    return path
