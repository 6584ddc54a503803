"""Equity (and price) charts in the terminal, drawn by textual-plotext (a maintained plotext widget)."""

from __future__ import annotations

from typing import Sequence

from textual_plotext import PlotextPlot


class SeriesChart(PlotextPlot):
    """A line chart of (ts_ms, value) points; the x axis is minutes before the newest point (title on the border)."""

    DEFAULT_CSS = """
    SeriesChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self.title = title
        self.points: list[tuple[int, float]] = []

    def on_mount(self) -> None:
        """Draw the empty frame; the title goes on the border to leave every row to the plot."""
        self.border_title = f"{self.title} — x: minutes ago"
        self._draw()

    def set_series(self, points: Sequence[tuple[int, float]]) -> None:
        """Replace the plotted points and redraw."""
        self.points = list(points)
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.points:
            last = self.points[-1][0]
            xs = [(ts - last) / 60_000 for ts, _ in self.points]
            ys = [v for _, v in self.points]
            plt.plot(xs, ys, marker="braille")
        self.refresh()
