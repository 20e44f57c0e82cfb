"""Matplotlib without a display, and one way to save a figure, for every plot of the project."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only; imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
