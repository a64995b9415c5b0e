"""Two notebook building blocks: :class:`FigureExplorer` (controls above a figure drawn again
whenever a control moves) and :class:`Table` (rows of dicts as HTML or aligned text).

Explorers show plotly figures through an ``ipywidgets.Output`` (JupyterLab's plotly renderer), so
they need neither ``anywidget`` nor a running model. ``explorer.figure`` is the figure last drawn.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np


class Table:
    """Rows of dicts shown as an HTML table in a notebook and as aligned text elsewhere."""

    def __init__(self, rows: Sequence[Mapping], columns: Sequence[str] | None = None,
                 floatfmt: str = ".3f"):
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns) if columns else list(dict.fromkeys(
            k for r in self.rows for k in r))
        self.floatfmt = floatfmt

    def _fmt(self, value) -> str:
        if isinstance(value, (float, np.floating)):
            return format(float(value), self.floatfmt)
        return "" if value is None else str(value)

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        cells = [self.columns] + [[self._fmt(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def _repr_html_(self):
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._fmt(r.get(c))}</td>" for c in self.columns) + "</tr>"
            for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class FigureExplorer:
    """Controls above a figure; ``draw(**control_values)`` makes the figure again on each change.

    ``widget`` is the ipywidgets box to display (the object displays itself in a notebook);
    ``controls`` maps names to the ipywidgets; ``figure`` is the last figure drawn. Works for
    plotly figures and matplotlib figures alike.
    """

    def __init__(self, controls: Mapping, draw: Callable, title: str | None = None):
        import ipywidgets as widgets

        self.controls = dict(controls)
        self._draw = draw
        self.output = widgets.Output()
        self.figure = None
        row = widgets.HBox(list(self.controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap"))
        parts = ([widgets.HTML(f"<b>{title}</b>")] if title else []) + [row, self.output]
        self.widget = widgets.VBox(parts)
        for control in self.controls.values():
            control.observe(lambda _change: self.redraw(), names="value")
        self.redraw()

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def redraw(self):
        from IPython.display import clear_output, display

        self.figure = self._draw(**self.values())
        with self.output:
            clear_output(wait=True)
            display(displayable(self.figure))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def png_bytes(figure, dpi: int = 100) -> bytes:
    """A matplotlib Figure rendered to PNG bytes (no pyplot, no backend switch)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def displayable(figure):
    """What ``display`` should show: a matplotlib Figure as a PNG image, anything else as is."""
    if hasattr(figure, "savefig"):
        from IPython.display import Image

        return Image(data=png_bytes(figure))
    return figure
