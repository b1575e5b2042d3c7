"""Matplotlib figures drawn without pyplot, so that the caller's pyplot backend and open
figures are left alone (no ``matplotlib.use``)."""

from __future__ import annotations

from typing import Any


def figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib ``Figure`` (size in inches, 100 dpi) with an Agg canvas: ``savefig``
    writes PNG and other raster files without a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig
