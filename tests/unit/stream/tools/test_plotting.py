"""Matplotlib is optional: without it, drawing fails in one line naming the extra."""

from __future__ import annotations

import sys

import pytest

from stream.tools import plotting


def test_without_matplotlib_drawing_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(plotting.PlottingUnavailable, match=r"pip install 'vitalstream\[bench\]'"):
        plotting.pyplot()
    with pytest.raises(plotting.PlottingUnavailable):
        plotting.require()


def test_with_matplotlib_pyplot_draws_headless() -> None:
    plt = plotting.pyplot()
    assert plt.get_backend().lower() == "agg"
