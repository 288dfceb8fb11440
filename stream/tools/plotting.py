"""Matplotlib for the tools that draw: the benchmark report, the soak's RSS trend and the
dashboard renders.

Owns importing it. Matplotlib is an optional dependency (the ``bench`` extra): the stream
core never draws, so it is imported only when something is drawn, headless (Agg), and its
absence is one line telling how to install it (:class:`PlottingUnavailable`, printed by
:func:`stream.cli.main.main`).
"""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "drawing needs matplotlib: pip install 'vitalstream[bench]'"


class PlottingUnavailable(RuntimeError):
    """Matplotlib is not installed (it comes with the ``bench`` extra)."""


def require() -> None:
    """Fail now, with :data:`INSTALL_HINT`, if nothing could be drawn later."""
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError as exc:
        raise PlottingUnavailable(INSTALL_HINT) from exc


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the headless Agg backend (files only)."""
    require()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
