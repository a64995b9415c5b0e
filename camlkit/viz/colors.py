"""The course's colour language: what each colour means, the same in every figure.

Label, prediction, false positive and false negative each keep one colour in slice overlays,
contours, error maps and 3-D views; the two branches f_v (V-Net decoder) and f_a (attention
decoder) have colours of their own. Colours are RGB 0-255 tuples; ``rgb(...)`` and ``mpl(...)``
give plotly and matplotlib spellings.
"""

from __future__ import annotations

LABEL_COLOR = (255, 60, 60)  # ground truth / atrium
PRED_COLOR = (40, 200, 255)  # prediction
FP_COLOR = "rgb(230, 50, 50)"  # false positive voxels
FN_COLOR = "rgb(50, 90, 230)"  # false negative voxels
CLASS_NAMES = ("background", "atrium")
