"""What differs between a learner's answer and camlkit's, said in one line.

:func:`difference` compares one output with the expected one and names the first thing that
differs, most telling first: a missing value, the type, the shape (a transposed matrix, a
missing reduction), the dtype, NaN or inf, a known mistake of the exercise, then the values
(a sign error, an offset by a constant, a factor, rows that no longer sum to 1 or sum to 1 along
the wrong dimension). None means the two agree.
"""

import math

import torch


def tolerances(dtype) -> dict:
    """rtol/atol for comparing outputs of this dtype (float32 answers may sum in another order)."""
    if dtype == torch.float64:
        return {"rtol": 1e-6, "atol": 1e-9}
    return {"rtol": 1e-4, "atol": 1e-6}


def close(got, want) -> bool:
    """Same shape and values within the dtype's tolerance, NaN equal to NaN."""
    if isinstance(want, torch.Tensor):
        return (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype
                and torch.allclose(got.detach(), want, equal_nan=True, **tolerances(want.dtype)))
    return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)


def number(x) -> str:
    return f"{float(x) + 0.0:.6g}"  # + 0.0: no "-0"


def shape(t) -> str:
    return "a 0-d tensor (a scalar)" if t.dim() == 0 else f"shape {tuple(t.shape)}"


def difference(got, want, mistakes=(), rows_dim=None, nan_hint="") -> str | None:
    """The first thing that differs between ``got`` (the learner's) and ``want`` (camlkit's).

    ``mistakes``: (what to say, the wrong answer's output) pairs, tried before the generic
    diagnoses; ``rows_dim``: the dimension along which ``want`` sums to 1 (a softmax); ``nan_hint``:
    what usually makes NaN or inf in this exercise.
    """
    if got is None:
        return "returns None (is the `return` missing?)"
    if not isinstance(want, torch.Tensor):  # a plain number
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float)):
            return f"returns {type(got).__name__}, expected a number like {number(want)}"
        return None if close(got, want) else _scalar_difference(got, want, mistakes)
    if not isinstance(got, torch.Tensor):
        if isinstance(got, (int, float)) and want.dim() == 0:
            return (f"returns a Python {type(got).__name__} ({number(got)}), expected a 0-d tensor: "
                    ".item() or float() cut the autograd graph")
        return f"returns {type(got).__name__}, expected a torch.Tensor of {shape(want)}"
    got = got.detach()
    for what, wrong in mistakes:  # a known mistake can change the shape too
        if wrong is not None and not close(got, want) and close(got, wrong):
            return what
    if got.shape != want.shape:
        return _shape_difference(got, want)
    if got.dtype != want.dtype:
        return f"returns {_dtype(got)} for {_dtype(want)} inputs (keep the inputs' dtype)"
    bad = ~torch.isfinite(got.float()) & torch.isfinite(want.float())
    if bad.any():
        kind = "NaN" if torch.isnan(got[bad]).any() else "inf"
        where = f" ({int(bad.sum())} of {got.numel()} values)" if got.numel() > 1 else ""
        return f"{kind} in the output{where}, expected {_values(want[bad])}" + (f": {nan_hint}" if nan_hint else "")
    if close(got, want):
        return None
    return _value_difference(got, want.detach(), rows_dim)


def _dtype(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _values(t) -> str:
    t = t.flatten()
    shown = ", ".join(number(v) for v in t[:3].tolist())
    return shown + (", ..." if len(t) > 3 else "")


def _scalar_difference(got, want, mistakes) -> str:
    for what, wrong in mistakes:
        if wrong is not None and math.isclose(got, wrong, rel_tol=1e-6, abs_tol=1e-9):
            return what
    return f"got {number(got)}, expected {number(want)}" + _sign_or_factor(got, want)


def _sign_or_factor(got, want) -> str:
    if want != 0 and math.isclose(got, -want, rel_tol=1e-5):
        return ": a sign error (yours is minus the expected value)"
    if want != 0 and got != 0:
        return f" (yours is {number(got / want)} × the expected value)"
    return ""


def _shape_difference(got, want) -> str:
    if got.dim() == 2 and got.shape == want.shape[::-1] and close(got.T.contiguous(), want):
        return f"transposed: got shape {tuple(got.shape)}, expected {tuple(want.shape)} (rows and columns swapped)"
    if got.numel() == want.numel():
        return f"wrong shape: got {tuple(got.shape)}, expected {tuple(want.shape)} (right number of values: a reshape?)"
    if want.dim() == 0:
        return f"wrong shape: got {tuple(got.shape)}, expected a 0-d tensor (a scalar): is a sum or a mean missing?"
    return f"wrong shape: got {shape(got)}, expected {shape(want)}"


def _value_difference(got, want, rows_dim) -> str:
    if got.dim() == 2 and got.shape[0] == got.shape[1] and close(got.T.contiguous(), want):
        return "transposed: yours is the expected matrix with rows and columns swapped"
    if close(-got, want) and want.abs().max() > 0:
        return "a sign error: yours is minus the expected value"
    if rows_dim is not None:
        found = _rows_difference(got, want, rows_dim)
        if found:
            return found
    if got.numel() > 1:
        offset = got - want
        if torch.allclose(offset, offset.flatten()[0].expand_as(offset), **tolerances(want.dtype)):
            return f"off by a constant: yours - expected = {number(offset.flatten()[0])} everywhere"
        ratio = got / want
        if (want != 0).all() and torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4):
            return f"off by a factor: yours = {number(ratio.flatten()[0])} × expected everywhere"
    if want.numel() == 1:
        return f"got {number(got)}, expected {number(want)}" + _sign_or_factor(float(got), float(want))
    gap = (got - want).abs()
    at = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    return (f"values differ: largest gap at index {at if len(at) > 1 else at[0]}: "
            f"got {number(got[at])}, expected {number(want[at])}")


def _rows_difference(got, want, dim) -> str | None:
    """Rows that should be distributions (sum to 1 along ``dim``) but are not, or are along another dim."""
    ones = torch.ones((), dtype=want.dtype)
    if torch.allclose(got.sum(dim), ones.expand_as(want.sum(dim)), atol=1e-4):
        return None
    dim = dim % got.dim()
    for other in range(got.dim()):
        if other != dim and torch.allclose(got.sum(other), ones.expand_as(got.sum(other)), atol=1e-4):
            return (f"softmax over the wrong dimension: rows should sum to 1 over dim {dim}, "
                    f"yours do over dim {other}")
    sums = got.sum(dim)
    return (f"wrong sum: rows should sum to 1 over dim {dim}, "
            f"yours sum to {number(sums.min())} .. {number(sums.max())}")
