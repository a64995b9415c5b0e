"""The course's colour language: what each colour means, the same in every figure.

Label, prediction, false positive and false negative each keep one colour in slice overlays,
contours, error maps and 3-D views, and the two branches of CAML (f_v, the V-Net decoder, and
f_a, the attention decoder, §2.1) have colours of their own that none of the four uses. The
colours are from the Okabe-Ito palette, which stays distinguishable with the common kinds of
colour blindness. Titles and legends name each colour with :func:`describe`.

    label           green   (0, 158, 115)    ground truth, the atrium
    prediction      yellow  (240, 228, 66)   what the network says is atrium
    false positive  red-orange (213, 94, 0)  predicted, not in the label
    false negative  blue    (0, 114, 178)    in the label, missed
    f_v             sky     (86, 180, 233)   the V-Net branch's prediction
    f_a             purple  (204, 121, 167)  the attention branch's prediction

Per class (histograms, OCC's memory): background grey, atrium the label's green; a class a
network predicts (OCC's unlabeled rows): background dark grey, atrium the prediction's yellow.
"""

from __future__ import annotations

from typing import NamedTuple


class Ink(NamedTuple):
    """One meaning and its colour: ``name`` for legends, ``rgb`` 0-255, ``word`` for titles."""

    name: str
    rgb: tuple[int, int, int]
    word: str

    def plotly(self, alpha: float | None = None) -> str:
        """``rgb(r, g, b)`` or ``rgba(r, g, b, alpha)``, as plotly takes it."""
        r, g, b = self.rgb
        return f"rgb({r}, {g}, {b})" if alpha is None else f"rgba({r}, {g}, {b}, {alpha})"

    def mpl(self, alpha: float = 1.0) -> tuple[float, float, float, float]:
        """(r, g, b, a) in 0..1, as matplotlib takes it."""
        return tuple(c / 255 for c in self.rgb) + (alpha,)


LABEL = Ink("label", (0, 158, 115), "green")
PRED = Ink("prediction", (240, 228, 66), "yellow")
FP = Ink("false positive", (213, 94, 0), "red-orange")
FN = Ink("false negative", (0, 114, 178), "blue")
F_V = Ink("f_v (V-Net branch)", (86, 180, 233), "sky blue")
F_A = Ink("f_a (attention branch)", (204, 121, 167), "purple")
INKS = (LABEL, PRED, FP, FN, F_V, F_A)

# the RGB tuples under their earlier names
LABEL_COLOR, PRED_COLOR, FP_COLOR, FN_COLOR = LABEL.rgb, PRED.rgb, FP.rgb, FN.rgb
CLASS_NAMES = ("background", "atrium")
BACKGROUND = Ink("background", (140, 140, 140), "grey")
CLASS_INKS = (BACKGROUND, Ink("atrium", LABEL.rgb, LABEL.word))  # per class, e.g. in histograms


# per class as a network *predicts* it (e.g. OCC's unlabeled rows, notebook 5): atrium in the
# prediction's yellow, background darker than the label's grey, so neither is read as a label
PREDICTED_CLASS_INKS = (Ink("background (predicted)", (64, 64, 64), "dark grey"),
                        Ink("atrium (predicted)", PRED.rgb, PRED.word))


def predicted_ink(value: int) -> Ink:
    """The ink of predicted class ``value`` (0 dark grey, 1 the prediction's yellow)."""
    value = int(value)
    if 0 <= value < len(PREDICTED_CLASS_INKS):
        return PREDICTED_CLASS_INKS[value]
    return Ink(f"class {value} (predicted)", (0, 0, 0), "black")


def class_ink(value: int) -> Ink:
    """The ink of class ``value`` (0 background grey, 1 atrium green; others black)."""
    value = int(value)
    if 0 <= value < len(CLASS_INKS):
        return CLASS_INKS[value]
    return Ink(f"class {value}", (0, 0, 0), "black")


def describe(*inks: Ink) -> str:
    """Words for a title: ``describe(LABEL, PRED)`` -> ``"label green, prediction yellow"``."""
    return ", ".join(f"{ink.name} {ink.word}" for ink in inks)


def legend_html() -> str:
    """The colour language as one line of HTML swatches (for a notebook's first cell)."""
    swatch = ('<span style="display:inline-block;width:0.9em;height:0.9em;background:{};'
              'margin:0 0.3em 0 0.9em;vertical-align:middle"></span>{}')
    return "".join(swatch.format(ink.plotly(), ink.name) for ink in INKS)
