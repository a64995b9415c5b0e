"""Exercises: the learner writes a piece of CAML, a checker says what differs from camlkit's.

Notebooks 2-6 end with short cells, each a signature, a docstring stating the rule and the shapes,
and ``...`` for the body. ``course.check(my_occ_loss, "occ_loss")`` runs the learner's function
and camlkit's on the same inputs and prints one line per case; ``course.solution("occ_loss")``
shows camlkit's own code.

* :mod:`camlkit.exercises.book` — the exercises: reference, cases, random inputs, wrong answers;
* :mod:`camlkit.exercises.check` — running a learner's function, case by case, and its gradient;
* :mod:`camlkit.exercises.diagnose` — what differs between two outputs, in one line.
"""

from camlkit.exercises.base import Case, Exercise
from camlkit.exercises.book import EXERCISES, find
from camlkit.exercises.check import check_lines, is_stub, report

__all__ = ["EXERCISES", "Case", "Exercise", "check_lines", "find", "is_stub", "report"]
