"""Run a learner's function against camlkit's on an exercise's cases: one line per case.

The order, as in CS231n's assignments: the hand-checkable cases the unit tests pin, then random
inputs of several shapes and dtypes, then the gradient (float64, autograd against central finite
differences, and against camlkit's gradient). Every line says *what* differs
(camlkit.exercises.diagnose); the learner's own exception is one line too: its type, its message
and the line of their cell it came from. Nothing from camlkit's side raises into the notebook.
"""

import copy
import traceback
import warnings

import torch

from camlkit.exercises.base import Case, Exercise
from camlkit.exercises.book import EXERCISES, find
from camlkit.exercises.diagnose import close, difference, number

PASS, FAIL = "✓", "✗"


def _stub():
    """An exercise as committed: a docstring and ``...``."""
    ...


def is_stub(fn) -> bool:
    """True when fn's body is still the exercise's ``...`` (or ``pass``) after its docstring: it
    compiles to the same code as one, and names nothing."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_code != _stub.__code__.co_code or code.co_names:
        return False
    consts = code.co_consts[1:] if fn.__doc__ and code.co_consts[:1] == (fn.__doc__,) else code.co_consts
    return all(c is None or c is Ellipsis for c in consts)  # returns nothing it computed or wrote down


def check_lines(fn, name: str) -> list[tuple[bool | None, str]]:
    """[(passed, line)] for every case of exercise ``name``; passed is None for a note."""
    exercise = find(name, default=None)
    if exercise is None:
        return [(None, f"no exercise called {name!r}; the exercises are: {', '.join(EXERCISES)}")]
    if not callable(fn):
        return [(None, f"{exercise.name}: pass your function itself, e.g. course.check(my_{exercise.name}, "
                        f"{exercise.name!r}); got {type(fn).__name__}")]
    if is_stub(fn):
        return [(None, f"{exercise.name}: not written yet — replace the `...` with your code and run the cell again")]
    lines = []
    cases = exercise.cases() + exercise.random(torch.Generator().manual_seed(0))
    for k, case in enumerate(cases):
        passed, line = run_case(fn, exercise, case)
        lines.append((passed, f"{exercise.name} · {case.label}" + ("" if passed else f": {line}")))
        if line.startswith("raises") and k == 0:  # fails on the simplest input: the rest would too
            lines.append((None, f"{exercise.name}: {len(cases) - k - 1} more cases not run — fix this first"))
            return lines
    if exercise.grad_case is not None:
        passed, line = gradient_check(fn, exercise)
        lines.append((passed, f"{exercise.name} · gradient (float64): {line}"))
    return lines


def report(fn, name: str) -> str:
    """check_lines as text: a mark per line, then how many passed."""
    lines = check_lines(fn, name)
    marks = {True: PASS, False: FAIL, None: "·"}
    text = [f"{marks[passed]} {line}" for passed, line in lines]
    cases = [p for p, _ in lines if p is not None]
    if cases:
        if all(cases):
            text.append(f"all {len(cases)} checks pass — compare with course.solution({name!r})")
        else:
            text.append(f"{sum(cases)} of {len(cases)} checks pass")
    return "\n".join(text)


def _copy(args):
    return tuple(a.detach().clone() if isinstance(a, torch.Tensor) else copy.deepcopy(a) for a in args)


def _call(fn, args):
    """(output, None) or (None, one line naming the learner's exception and the line of their code)."""
    try:
        with warnings.catch_warnings():  # what a warning would say, the case's line says
            warnings.simplefilter("ignore")
            return fn(*args), None
    except Exception as error:  # the learner's code: any exception becomes a line
        return None, _raised(fn, error)


def _raised(fn, error) -> str:
    message = (str(error).strip().splitlines() or [""])[0][:160]
    code = getattr(fn, "__code__", None)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if code and f.filename == code.co_filename]
    if not frames:
        where = " (when called: does the signature match the exercise's?)" if isinstance(error, TypeError) else ""
        return f"raises {type(error).__name__}: {message}{where}"
    frame = frames[-1]
    cell_line = frame.lineno
    return f"raises {type(error).__name__}: {message} (line {cell_line} of your cell: `{(frame.line or '').strip()}`)"


def _changed_inputs(exercise: Exercise, before, after) -> list[str]:
    names = exercise.params
    changed = []
    for k, (old, new) in enumerate(zip(before, after)):
        if isinstance(old, torch.Tensor) and not (old.shape == new.shape and torch.equal(old, new)):
            changed.append(names[k] if k < len(names) else f"argument {k + 1}")
    return changed


def run_case(fn, exercise: Exercise, case: Case) -> tuple[bool, str]:
    """(passed, what differs) for one case."""
    want = exercise.reference(*_copy(case.args))
    args = _copy(case.args)
    got, error = _call(fn, args)
    if error:
        return False, error
    changed = _changed_inputs(exercise, case.args, args)
    if changed:
        return False, f"changes its input {', '.join(changed)} in place (an in-place op like `+=` or `.clamp_()`)"
    mistakes = []
    for what, wrong in exercise.mistakes:
        try:
            mistakes.append((what, wrong(*_copy(case.args))))
        except Exception:  # a mistake that does not apply to these inputs
            continue
    try:
        if exercise.differ is not None:
            found = exercise.differ(got, want, case.args, mistakes)
        else:
            found = difference(got, want, mistakes, exercise.rows_dim, exercise.nan_hint)
    except Exception as error:  # an output no diagnosis foresaw: still one line, never a traceback
        found = f"differs from the expected output ({type(got).__name__}; {type(error).__name__}: {error})"
    return (False, found) if found else (True, "passed")


def _grad_inputs(exercise: Exercise):
    args = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in exercise.grad_case.args]
    for k in exercise.grad_args:
        args[k].requires_grad_(True)
    return args


def _gradients(fn, args, indices, weight=None):
    """Gradients of sum(weight * fn(*args)) w.r.t. args[indices]; None where no gradient flows."""
    out = fn(*args)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return out, None
    weight = torch.ones_like(out) if weight is None else weight
    grads = torch.autograd.grad((out * weight).sum(), [args[k] for k in indices], allow_unused=True)
    return out, [torch.zeros_like(args[k]) if g is None else g for k, g in zip(indices, grads)]


def _numeric(fn, args, indices, weight, h=1e-6):
    """Central finite differences of sum(weight * fn(*args)), element by element."""
    grads = []
    with torch.no_grad():
        for k in indices:
            x, grad = args[k], torch.zeros_like(args[k])
            for i in range(x.numel()):
                saved = x.view(-1)[i].item()
                x.view(-1)[i] = saved + h
                plus = float((fn(*args) * weight).sum())
                x.view(-1)[i] = saved - h
                minus = float((fn(*args) * weight).sum())
                x.view(-1)[i] = saved
                grad.view(-1)[i] = (plus - minus) / (2 * h)
            grads.append(grad)
    return grads


def relative_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|), CS231n's measure (0 when both are 0)."""
    scale = (a.abs() + b.abs()).max().item()
    return 0.0 if scale == 0 else (a - b).abs().max().item() / scale


def gradient_check(fn, exercise: Exercise) -> tuple[bool | None, str]:
    """Autograd vs finite differences on a small float64 case, and vs camlkit's gradient."""
    with warnings.catch_warnings():  # what a warning would say, the line says
        warnings.simplefilter("ignore")
        return _gradient_check(fn, exercise)


def _gradient_check(fn, exercise: Exercise) -> tuple[bool | None, str]:
    names = exercise.params
    try:
        out, grads = _gradients(fn, _grad_inputs(exercise), exercise.grad_args)
    except Exception as error:
        return False, _raised(fn, error)
    if grads is None:
        return False, ("not differentiable: the output carries no gradient "
                       "(a .detach(), .item(), numpy, an argmax or torch.no_grad() on the way?)")
    if not close(out.detach(), exercise.reference(*_grad_inputs(exercise)).detach()):
        return None, "not checked until the values are right"
    weight = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).view(out.shape)  # mixes every output
    args = _grad_inputs(exercise)
    _, grads = _gradients(fn, args, exercise.grad_args, weight)
    _, want = _gradients(exercise.reference, _grad_inputs(exercise), exercise.grad_args, weight)
    numeric = _numeric(fn, [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args],
                       exercise.grad_args, weight)
    worst = 0.0
    for k, grad, num, ref in zip(exercise.grad_args, grads, numeric, want):
        name = names[k] if k < len(names) else f"argument {k + 1}"
        error = relative_error(grad, num)
        worst = max(worst, error)
        if error > 1e-5:
            zero = " (yours is zero: a .detach() or a constant?)" if not grad.abs().any() else ""
            return False, (f"autograd's gradient w.r.t. {name} disagrees with finite differences: "
                           f"relative error {error:.1e}{zero}")
        if relative_error(grad, ref) > 1e-5:
            return False, (f"the gradient w.r.t. {name} differs from camlkit's (relative error "
                           f"{relative_error(grad, ref):.1e}) although the values agree")
    return True, f"passed (relative error vs finite differences {number(worst)})"
