"""Exercises on CAML's two ways of connecting samples: one CMA layer's attention over the samples
of a batch (notebook 4), the omni-correlation matrix, l_o and top-i confident sampling (notebook 5).
References: camlkit.cma, camlkit.occ."""

import math
from types import SimpleNamespace

import torch
from einops import rearrange

from camlkit import occ
from camlkit.cma import attention_weights
from camlkit.exercises.base import Case, Exercise, random_rows, tensor

# ----------------------------------------------------------------------------- 4 · CMA

def inter_sample_attention(a_in, w_q, w_k, heads):
    """E_2's attention over the b samples at each position (camlkit.cma, CMA.forward's patterns).

    The tokens are the pattern CMA.forward uses for E_2; the weights are computed by
    camlkit.cma.attention_weights from the layer's query and key projections w_q, w_k.
    """
    tokens = rearrange(a_in, "b c h w d -> (h w d) b c")  # one sequence of b samples per position
    layer = SimpleNamespace(num_heads=heads, in_proj_weight=torch.cat([w_q, w_k, w_k]), in_proj_bias=None)
    return attention_weights(layer, tokens)  # (h w d, heads, b, b)


def _attention_mistake(pattern, scale=None, dim=-1):
    def wrong(a_in, w_q, w_k, heads):
        q = rearrange(a_in, pattern) @ w_q.T
        k = rearrange(a_in, pattern) @ w_k.T
        q, k = (rearrange(t, "n s (h e) -> n h s e", h=heads) for t in (q, k))
        d = q.shape[-1] if scale is None else scale(q.shape[-1] * heads, q.shape[-1])
        return (q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(dim=dim)
    return wrong


def _attention_random(gen):
    cases = []
    for (b, c, h, w, d), heads, dt in (((3, 8, 2, 2, 2), 2, torch.float32), ((2, 8, 1, 3, 2), 4, torch.float64),
                                      ((4, 4, 2, 1, 1), 1, torch.float32)):
        a_in = torch.randn(b, c, h, w, d, generator=gen, dtype=dt)
        w_q, w_k = (torch.randn(c, c, generator=gen, dtype=dt) / math.sqrt(c) for _ in range(2))
        label = f"random a_in {(b, c, h, w, d)}, heads = {heads} {str(dt)[6:]}"
        cases.append(Case(label, (a_in, w_q, w_k, heads)))
    return cases


ATTENTION = Exercise(
    "inter_sample_attention", "04_cma", ("a_in", "w_q", "w_k", "heads"), inter_sample_attention,
    cases=lambda: [
        Case("q = 0: every sample reads the b samples equally, 1/b",
             (torch.randn(3, 4, 1, 2, 1, generator=torch.Generator().manual_seed(1)), torch.zeros(4, 4),
              torch.eye(4), 2)),
        Case("two samples, one position, identity projections: row 0 = softmax([1, 0] / √2)",
             (tensor(1.0, 0.0, 0.0, 1.0).view(2, 2, 1, 1, 1), torch.eye(2), torch.eye(2), 1)),
        Case("a group of one sample attends to itself with weight 1",
             (torch.ones(1, 4, 2, 1, 1), torch.eye(4), torch.eye(4), 2)),
    ],
    random=_attention_random,
    grad_case=Case("", (torch.randn(2, 4, 1, 2, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64),
                        torch.eye(4, dtype=torch.float64) * 0.7,
                        torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.5, 2)),
    grad_args=(0, 1, 2),
    mistakes=(
        ("intra-sample tokens 'b c h w d -> b (h w d) c': that is E_1's attention within each sample, "
         "E_2 attends over the b samples at one position", _attention_mistake("b c h w d -> b (h w d) c")),
        ("scores not divided by √d_head (the width of one head)",
         _attention_mistake("b c h w d -> (h w d) b c", scale=lambda c, e: 1.0)),
        ("scores divided by √c, the whole width: scale by √d_head = √(c / heads)",
         _attention_mistake("b c h w d -> (h w d) b c", scale=lambda c, e: c)),
    ),
    rows_dim=-1,
)


# ----------------------------------------------------------------------------- 5 · OCC

def _omni_random(gen):
    return [Case(f"random z {m}, z_p {n}, t = {t} {str(dt)[6:]}",
                 (torch.randn(*m, generator=gen, dtype=dt), torch.randn(*n, generator=gen, dtype=dt), t))
            for m, n, t, dt in (((7, 4), (5, 4), 0.1, torch.float32), ((3, 8), (6, 8), 0.5, torch.float64),
                                ((4, 3), (4, 3), 1.0, torch.float32))]


OMNI = Exercise(
    "omni_correlation", "05_occ", ("z", "z_p", "temperature"), occ.omni_correlation,
    cases=lambda: [
        Case("z = [1, 0], z_p = [[1, 0], [0, 1]]: row [1/(1+e^-10), 1/(1+e^10)]",
             (tensor(1.0, 0.0)[None], torch.eye(2), 0.1)),
        Case("a softmax row sums to 1 (three prototypes)",
             (tensor(0.3, -0.2)[None], tensor(1.0, 0.0, 0.9, 0.1, 0.0, 1.0).view(3, 2), 0.5)),
        Case("the default temperature is 0.1",
             (tensor(0.2, 0.4, 0.1, -0.3).view(2, 2), tensor(1.0, 0.5, -0.5, 1.0, 0.0, 2.0).view(3, 2))),
    ],
    random=_omni_random,
    grad_case=Case("", (torch.randn(2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64),
                        torch.randn(3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64), 0.5)),
    grad_args=(0, 1),
    mistakes=(
        ("similarity times the temperature (the paper's 'cos · t'): the logits are divided by t",
         lambda z, z_p, t=0.1: torch.softmax(z @ z_p.T * t, dim=1)),
        ("cosine similarity (the paper's text): the released code, and camlkit's default, takes the plain dot product",
         lambda z, z_p, t=0.1: occ.omni_correlation(z, z_p, t, similarity="cosine")),
        ("the temperature is missing: the logits are divided by t",
         lambda z, z_p, t=0.1: torch.softmax(z @ z_p.T, dim=1)),
    ),
    rows_dim=1,
)


def _occ_random(gen):
    return [Case(f"random rows {s} {str(dt)[6:]}", (random_rows(gen, *s, dtype=dt), random_rows(gen, *s, dtype=dt)))
            for s, dt in (((6, 5), torch.float32), ((3, 8), torch.float64), ((1, 4), torch.float32))]


OCC_LOSS = Exercise(
    "occ_loss", "05_occ", ("sim_v", "sim_a"), occ.occ_loss,
    cases=lambda: [
        Case("the 2x2 of the unit test",
             (tensor(0.5, 0.5, 0.9, 0.1).view(2, 2), tensor(1.0, 0.0, 0.2, 0.8).view(2, 2))),
        Case("a one-hot row matched by the same one-hot: l_o ≈ 0", (tensor(1.0, 0.0)[None], tensor(1.0, 0.0)[None])),
        Case("one-hot rows that disagree: l_o = -log(1e-8) = 18.42", (tensor(1.0, 0.0)[None], tensor(0.0, 1.0)[None])),
    ],
    random=_occ_random,
    grad_case=Case("", (tensor(0.3, 0.7, 0.6, 0.4, dtype=torch.float64).view(2, 2),
                        tensor(0.6, 0.4, 0.1, 0.9, dtype=torch.float64).view(2, 2))),
    grad_args=(0, 1),
    mistakes=(
        ("the branches swapped: Eq. 3 takes sim_ap as the target and log(sim_vp + 1e-8)",
         lambda v, a: occ.occ_loss(a, v)),
        ("a sum over the rows where Eq. 3 takes their mean (1/m)",
         lambda v, a: occ.occ_loss(v, a) * len(v)),
        ("a mean over all m·n entries: sum over the n prototypes of a row, then the mean over the m rows",
         lambda v, a: occ.occ_loss(v, a) / v.shape[1]),
    ),
    nan_hint="log(0) = -inf where a row has a 0: Eq. 3 takes log(sim_vp + 1e-8)",
)


def _sampled_difference(got, want, args, mistakes):
    """What differs between two (index, cls) answers of top-i sampling, or None."""
    for what, wrong in mistakes:
        if wrong is not None and _same_pick(got, wrong) and not _same_pick(got, want):
            return what
    if want is None:
        return None if got is None else "returns voxels where None was expected: no class has 2 picked voxels"
    if got is None:
        return f"returns None, expected {len(want[0])} voxels"
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
        return f"returns {type(got).__name__}, expected a pair of tensors (index, cls)"
    if _same_pick(got, want):
        return None
    index, cls = (t.tolist() for t in got)
    prob_v, prob_a, top_i = args
    agree = (prob_v.argmax(1) == prob_a.argmax(1)).tolist()
    if any(not agree[i] for i in index if 0 <= i < len(agree)):
        return "picks voxels where the branches disagree: keep argmax p_v == argmax p_a"
    for c in sorted(set(cls)):
        if cls.count(c) > top_i:
            return f"keeps {cls.count(c)} voxels of class {c}, more than top_i = {top_i}"
        if cls.count(c) < occ.MIN_ROWS:
            return f"keeps class {c} with {cls.count(c)} voxel: a class needs at least {occ.MIN_ROWS}"
    if sorted(index) == sorted(want[0].tolist()):
        return "the right voxels in another order: class by class, most confident (max p_v) first"
    return f"index differs: got {_short(index)}, expected {_short(want[0].tolist())}"


def _same_pick(a, b):
    if a is None or b is None:
        return a is None and b is None
    return (isinstance(a, tuple) and len(a) == 2 and all(isinstance(t, torch.Tensor) for t in a)
            and all(x.tolist() == y.tolist() for x, y in zip(a, b)))


def _short(values):
    return str(values[:8])[:-1] + (", ...]" if len(values) > 8 else "]")


def _sampling_random(gen):
    cases = []
    for n, c, top_i, dt in ((40, 2, 5, torch.float32), (60, 3, 8, torch.float64), (30, 2, 100, torch.float32)):
        logits = 2 * torch.randn(n, c, generator=gen, dtype=torch.float64)
        noisy = logits + torch.randn(n, c, generator=gen, dtype=torch.float64)
        cases.append(Case(f"random {n} voxels, {c} classes, top_i = {top_i} {str(dt)[6:]}",
                          (logits.softmax(1).to(dt), noisy.softmax(1).to(dt), top_i)))
    return cases


_UNIT = (tensor(0.9, 0.1, 0.6, 0.4, 0.2, 0.8, 0.95, 0.05, 0.3, 0.7, 0.45, 0.55, 0.7, 0.3).view(7, 2),
         tensor(0.8, 0.2, 0.7, 0.3, 0.1, 0.9, 0.4, 0.6, 0.4, 0.6, 0.2, 0.8, 0.9, 0.1).view(7, 2))

SAMPLING = Exercise(
    "sample_unlabeled", "05_occ", ("prob_v", "prob_a", "top_i"), occ.sample_unlabeled,
    cases=lambda: [
        Case("the 7 voxels of the unit test, top_i = 2: index [0, 6, 2, 4]", (*_UNIT, 2)),
        Case("a class with 1 agreeing voxel gives no rows", (_UNIT[0][:3], _UNIT[0][:3], 5)),
        Case("no class with 2 voxels: None", (_UNIT[0][:1], _UNIT[0][:1], 5)),
    ],
    random=_sampling_random,
    mistakes=(
        ("ranks by f_a's confidence: the release ranks by f_v's, max p_v",
         lambda v, a, i: occ.sample_unlabeled(a, v, i)),
        ("least confident first: torch.topk gives the largest first",
         lambda v, a, i: _least_first(occ.sample_unlabeled(v, a, i))),
    ),
    differ=_sampled_difference,
)


def _least_first(picked):
    if picked is None:
        return None
    index, cls = picked
    order = torch.cat([torch.nonzero(cls == c).squeeze(1).flip(0) for c in cls.unique()])
    return index[order], cls[order]
