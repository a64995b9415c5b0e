"""What an exercise is: camlkit's reference, the cases it is checked on, the typical wrong answers.

Each :class:`Exercise` names camlkit's own function as the reference (or, where training computes
the piece inline, a few lines built from camlkit's functions), the hand-checkable cases the unit
tests pin, random inputs of several shapes and dtypes, a small float64 case for the gradient where
the piece is trained through, and the typical wrong answers with what to say about each.
"""

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Case:
    label: str  # what the checker's line calls it
    args: tuple


@dataclass(frozen=True)
class Exercise:
    name: str
    notebook: str
    params: tuple  # the learner's parameter names, in order (the lines name an input by them)
    reference: Callable
    cases: Callable  # () -> [Case]: hand-checkable
    random: Callable  # (torch.Generator) -> [Case]
    grad_case: Case | None = None  # float64, small: None where nothing is trained through
    grad_args: tuple = ()  # which args the gradient is taken for
    mistakes: tuple = ()  # (what to say, the wrong answer as a function of the same args)
    rows_dim: int | None = None  # the output's rows sum to 1 along this dim (a softmax)
    nan_hint: str = ""
    differ: Callable | None = None  # (got, want, args, mistakes) -> str | None, for non-tensor outputs


def uniform(gen, *shape, dtype=torch.float32, low=0.0, high=1.0):
    return (low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(dtype)


def random_rows(gen, *shape, dim=1, dtype=torch.float32, scale=2.0):
    return torch.softmax(scale * torch.randn(*shape, generator=gen, dtype=torch.float64), dim=dim).to(dtype)


def tensor(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)
