"""Training curves: the loss parts of Eq. 1 and their ramped weights lambda(t), from the run log."""

from __future__ import annotations

from typing import Mapping, Sequence


def split_curve_keys(rows: Sequence[Mapping], x: str = "iteration"):
    """Numeric keys of the log rows split into (loss keys, weight keys); weights start 'lambda'."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r)
            if k != x and all(isinstance(r.get(k, 0.0), (int, float)) for r in rows)]
    weights = [k for k in keys if k.startswith("lambda")]
    losses = [k for k in keys if k not in weights and k not in ("epoch", "lr", "time", "seconds")]
    return losses, weights


def loss_curves(rows: Sequence[Mapping], x: str = "iteration", log_y: bool = False):
    """Loss parts (left) and their ramped weights lambda (right) against the iteration.

    ``rows``: dicts such as {"iteration": 10, "loss": .., "loss_s": .., "lambda_c": ..}, i.e.
    the training log's rows.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = list(rows)
    losses, weights = split_curve_keys(rows, x)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                        subplot_titles=("losses", "weights lambda(t)"))
    xs = [r.get(x) for r in rows]
    for col, keys in ((1, losses), (2, weights)):
        for k in keys:
            fig.add_trace(go.Scatter(x=xs, y=[r.get(k) for r in rows], mode="lines", name=k),
                          row=1, col=col)
        fig.update_xaxes(title_text=x, row=1, col=col)
    if log_y:
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(width=940, height=380, margin=dict(t=40))
    return fig


class LiveLossCurves:
    """A loss-curve figure that redraws while training runs: pass ``update`` as the callback.

    >>> live = LiveLossCurves(every=10); display(live)     # doctest: +SKIP
    >>> train(config, callback=live.update)                # doctest: +SKIP
    """

    def __init__(self, every: int = 1, x: str = "iteration", log_y: bool = False):
        import ipywidgets as widgets

        self.rows: list[dict] = []
        self.every, self.x, self.log_y = every, x, log_y
        self.output = widgets.Output()
        self.figure = None

    def update(self, row: Mapping):
        self.rows.append(dict(row))
        if len(self.rows) % self.every == 0:
            self.redraw()

    def redraw(self):
        from IPython.display import clear_output, display

        if not self.rows:
            return
        self.figure = loss_curves(self.rows, self.x, self.log_y)
        with self.output:
            clear_output(wait=True)
            display(self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.output._repr_mimebundle_(**kwargs)
