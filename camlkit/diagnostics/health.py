"""OCC's health: is l_o still teaching? The figures of one step's omni-correlation rows.

What camlkit.train logs beside the parts of Eq. 1 when ``step.occ_health`` is on (the default):
:func:`row_health` of the step's OCC part (camlkit.step.occ_part) and ``occ_grad``, the norm of
l_o's gradient at the embeddings z_v, z_a, read from the step's own backward
(:func:`grad_norm_at_backward`). :class:`HealthWatch` collects both for one step: the training
loop gives it to camlkit.step.caml_step as its ``watch`` on the iterations it logs
(camlkit.train.logged: every ``log_every``-th and the last), since only those rows are written;
on the other iterations, and with health logging off, no watch is given and no hook is
registered. :func:`saturation_toy` shows, on one row, why a saturated
mismatched row teaches nothing in the released form of Eq. 3 (camlkit.occ.occ_loss).

The figures never change what training computes: they are read without gradient, and the hooks
only read the gradients that flow past (tests/test_step_parity.py holds the step bit-identical).
"""

import torch

from camlkit.occ import occ_loss

HEALTH_KEYS = ("occ_saturated", "occ_sat_mismatch", "occ_norm_zv", "occ_norm_za", "occ_norm_zp",
               "occ_logit_gap", "occ_grad")


def saturation_toy(gap: float = 40.0) -> dict:
    """One saturated, mismatched row under both forms of Eq. 3: l_o and its gradient.

    Branch v's logits put ``gap`` on prototype 0, branch a's on prototype 1 (both rows one-hot
    after the softmax). Returns ``{"eps": (l_o, |d l_o / d logits_v|), "log_softmax": (...)}``.
    """
    out = {}
    for form in ("eps", "log_softmax"):
        logits_v = torch.tensor([[gap, 0.0]], requires_grad=True)
        sim_a = torch.softmax(torch.tensor([[0.0, gap]]), dim=1)
        sim_v = torch.softmax(logits_v, dim=1)
        log_v = torch.log_softmax(logits_v, dim=1) if form == "log_softmax" else None
        l_o = occ_loss(sim_v, sim_a, log_v)
        (grad,) = torch.autograd.grad(l_o, logits_v)
        out[form] = (float(l_o.detach()), float(grad.norm()))
    return out


SATURATED = 1 - 1e-6  # a row is saturated when its largest probability is above this


@torch.no_grad()
def row_health(sim_v, sim_a, logits_v, logits_a, z_v, z_a, z_p) -> dict:
    """How the omni-correlation rows of one step look: is OCC still teaching? (0-d tensors)

    * ``occ_saturated`` — share of rows saturated in both branches (max probability > 1 - 1e-6);
    * ``occ_sat_mismatch`` — of those, the share whose argmax differs between the branches
      (NaN when no row is saturated): in the released form such a row's cross-entropy is
      -log(1e-8) = 18.42, with no gradient;
    * ``occ_norm_zv``, ``occ_norm_za``, ``occ_norm_zp`` — mean L2 norm of the embeddings and
      drawn prototypes (with the dot product, nothing bounds a logit but these norms);
    * ``occ_logit_gap`` — mean gap between a row's largest and second-largest logit, both branches
      (NaN with a single column).
    """
    if logits_v.shape[1] > 1:  # the top-2 logits of each row give its argmax, max p and gap
        top_v, top_a = logits_v.detach().topk(2, dim=1), logits_a.detach().topk(2, dim=1)
        gap = torch.cat([top_v.values[:, 0] - top_v.values[:, 1],
                         top_a.values[:, 0] - top_a.values[:, 1]]).float().mean()
        arg_v, arg_a = top_v.indices[:, :1], top_a.indices[:, :1]
    else:
        gap = logits_v.new_tensor(float("nan"))
        arg_v = arg_a = torch.zeros_like(logits_v, dtype=torch.long)
    sat = (sim_v.gather(1, arg_v) > SATURATED) & (sim_a.gather(1, arg_a) > SATURATED)
    sat, differ = sat.squeeze(1), (arg_v != arg_a).squeeze(1)
    return {
        "occ_saturated": sat.float().mean(),
        "occ_sat_mismatch": (sat & differ).sum().float() / sat.sum().float(),  # 0/0: NaN
        "occ_norm_zv": z_v.float().norm(dim=1).mean(),
        "occ_norm_za": z_a.float().norm(dim=1).mean(),
        "occ_norm_zp": z_p.float().norm(dim=1).mean(),
        "occ_logit_gap": gap,
    }


def grad_norm_at_backward(l_o, lambda_o, z_v, z_a):
    """|d l_o / d(z_v, z_a)|, read from the step's own backward at no extra cost.

    z_v and z_a feed nothing but l_o, so the gradient L's backward sends them is lambda_o times
    l_o's. Returns a tensor that is NaN until ``loss.backward()`` has run (and stays NaN when
    lambda_o is 0 or nothing flows back).
    """
    norm = l_o.detach().new_full((), float("nan"))
    if not (l_o.requires_grad and lambda_o > 0):
        return norm
    squares = []

    def hook(grad):
        squares.append(grad.detach().float().pow(2).sum())
        if len(squares) == 2:  # both branches' gradients have arrived
            norm.copy_(torch.sqrt(squares[0] + squares[1]) / lambda_o)

    z_v.register_hook(hook)
    z_a.register_hook(hook)
    return norm


def no_health() -> dict:
    """The figures of a step without OCC rows (a warm-up iteration, l_o = 0): all NaN."""
    return {key: torch.tensor(float("nan")) for key in HEALTH_KEYS}


class HealthWatch:
    """The health figures of one training step, for its log row.

    ``watch(part, lambda_o)`` is what camlkit.step.caml_step calls with the step's OCC part
    (camlkit.step.occ_part) and its weight lambda_o; :meth:`reset` before each step. ``figures``:
    {key of :data:`HEALTH_KEYS`: 0-d tensor}, NaN where the step computed no rows; ``occ_grad``
    is filled in by the step's backward.
    """

    def __init__(self):
        self.figures = no_health()

    def reset(self):
        self.figures = no_health()

    def __call__(self, part: dict, lambda_o: float):
        self.figures = {**row_health(part["sim_vp"], part["sim_ap"], part["logits_vp"], part["logits_ap"],
                                     part["z_v"], part["z_a"], part["z_p"]),
                        "occ_grad": grad_norm_at_backward(part["l_o"], lambda_o, part["z_v"], part["z_a"])}
