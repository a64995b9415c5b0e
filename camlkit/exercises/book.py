"""The exercises of notebooks 2-6, in the order the paper builds the method, by name."""

from camlkit.errors import CamlkitError
from camlkit.exercises.base import Exercise
from camlkit.exercises.correlation import ATTENTION, OCC_LOSS, OMNI, SAMPLING
from camlkit.exercises.eq1 import CPS, DICE, RAMP, SHARPEN, TOTAL

EXERCISES = {e.name: e for e in (DICE, SHARPEN, CPS, ATTENTION, OMNI, OCC_LOSS, SAMPLING, RAMP, TOTAL)}

_MISSING = object()


def find(name: str, default=_MISSING) -> Exercise:
    """The exercise called ``name``; a CamlkitError listing them all if there is none (or ``default``)."""
    if name in EXERCISES:
        return EXERCISES[name]
    if default is not _MISSING:
        return default
    raise CamlkitError(f"no exercise called {name!r}; the exercises are: {', '.join(EXERCISES)}")
