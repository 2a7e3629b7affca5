"""Figures are drawn from the registry: every member appears with its derivative."""

from __future__ import annotations

import numpy as np

import relukit
from relukit import plot


def test_gallery_has_one_panel_per_member_with_function_and_derivative():
    figure = plot.gallery()
    panels = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title().split()[0] for axes in panels] == [s.name for s in relukit.family()]
    for axes in panels:
        labels = [line.get_label() for line in axes.get_lines()]
        assert any(label.startswith("f'") for label in labels)
        assert any(label.startswith("f") and not label.startswith("f'") for label in labels)


def test_plotted_values_are_the_members_values():
    function = relukit.get("leaky_relu", negative_slope=0.07)
    figure = plot.plot_functions([function], -20, 20)
    x, y = figure.axes[0].get_lines()[0].get_data()
    np.testing.assert_array_equal(y, function(x))
    assert x[0] == -20 and x[-1] == 20


def test_classic_axes_go_through_the_origin():
    figure = plot.plot_functions([relukit.relu])
    axes = figure.axes[0]
    assert axes.spines["left"].get_position() == "zero"
    assert axes.spines["bottom"].get_position() == "zero"
