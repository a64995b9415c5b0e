"""One CAML training step: the total loss of Eq. 1 and its parts.

    L = 0.5 * L_s + lambda_c(t) * l_c + lambda_o(t) * l_o                        (Eq. 1)

* L_s — soft Dice of each branch on the labeled samples, summed (camlkit.losses);
* l_c — cross pseudo supervision between the branches on the whole batch (camlkit.cps);
* l_o — omni-correlation consistency through the memory bank (camlkit.occ);
* lambda_c, lambda_o — Gaussian ramp-ups with beta 1 and 0.05 (camlkit.ramps).

The paper writes L = L_s + ...; the released code weights L_s by 0.5, which is the default here.

**Warm-up** (``warmup`` iterations, 0 as released; the quick CPU preset uses it): Eq. 1 with both
lambdas held at zero, where the unlabeled half of the batch contributes nothing, so it is not
forwarded: both branches learn from the labeled samples alone (L = 0.5 L_s), at a fraction of a
full step's cost. The ramps start when the warm-up ends, and so do the memory bank's updates.
The batch holds the labeled samples first. Every part can be switched off, so the rows of the
paper's tables are the same code with flags (CMA is a switch of the network, camlkit.caml):

=================  ==============================================================
method             flags
=================  ==============================================================
``supervised``     ``supervised_only=True``: f_v alone, L = Dice on labeled data
``mcnet``          ``use_occ=False`` and a network without CMA (MC-Net baseline)
``mcnet+occ``      a network without CMA
``mcnet+cma``      ``use_occ=False``
``caml``           everything on
=================  ==============================================================
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from einops import rearrange

from camlkit import occ
from camlkit.cps import cps_loss
from camlkit.losses import dice_loss
from camlkit.ramps import ITERATIONS_PER_EPOCH, loss_weight


@dataclass
class StepConfig:
    supervised_only: bool = False  # labeled-only V-Net: f_v and L_s alone
    use_cps: bool = True  # l_c
    use_occ: bool = True  # l_o
    weight_s: float = 0.5  # released weight of L_s (the paper writes 1)
    T: float = 0.1  # sharpening temperature of l_c
    detach_targets: bool = False  # released: gradients flow through the sharpened targets
    beta_c: float = 1.0
    beta_o: float = 0.05  # released value; the paper writes 0.1
    ramp_length: float = 15  # R in epochs: 40 / 20 / 15 for 4 / 8 / 16 labeled
    iterations_per_epoch: int = ITERATIONS_PER_EPOCH
    j: int = 256  # memory prototypes drawn per class
    top_i: int = 12800  # unlabeled embeddings kept per class
    temperature: float = 0.1  # omni-correlation temperature
    similarity: str = "dot"  # "dot" as released, "cosine" as in the paper
    warmup: int = 0  # iterations of labeled-only training of both branches before Eq. 1 (released: 0)


@contextmanager
def eval_mode(*modules):
    """Run modules in eval mode (BatchNorm uses running statistics), then restore."""
    states = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, state in zip(modules, states):
            m.train(state)


def voxels(t):
    """(b, c, h, w, d) -> (b*h*w*d, c): one row per voxel."""
    return rearrange(t, "b c h w d -> (b h w d) c")


@torch.no_grad()
def update_memory(net, bank, out, p_v, p_a, label, slots):
    """Replace each labeled case's slot by the embeddings where both branches are right.

    Each stored embedding is the mean of the g_v and g_a projections of that voxel (heads in eval
    mode, no gradient). ``slots``: the bank slot of each labeled sample in the batch.
    """
    with eval_mode(net.proj_v, net.proj_a):
        for k, slot in enumerate(slots):
            y = label[k].flatten()
            correct = (p_v[k].argmax(0).flatten() == y) & (p_a[k].argmax(0).flatten() == y)
            f_v = voxels(out["feat_v"][k : k + 1])[correct]  # (n, n_filters)
            f_a = voxels(out["feat_a"][k : k + 1])[correct]
            z = 0.5 * (net.proj_v(f_v) + net.proj_a(f_a))
            bank.update(int(slot), z.float(), y[correct])


def occ_term(net, bank, out, p_v, p_a, labeled_bs, cfg: StepConfig):
    """l_o on the unlabeled part of the batch, or a zero when OCC must skip this step."""
    zero = p_v.new_zeros(())
    drawn = bank.sample(cfg.j)
    if drawn is None or p_v.shape[0] == labeled_bs:
        return zero
    z_p, _ = drawn  # (n, c')
    picked = occ.sample_unlabeled(voxels(p_v[labeled_bs:]), voxels(p_a[labeled_bs:]), cfg.top_i)
    if picked is None:
        return zero
    index, _ = picked  # m voxels of the unlabeled half
    z_v = net.pred_v(net.proj_v(voxels(out["feat_v"][labeled_bs:])[index]))  # (m, c')
    z_a = net.pred_a(net.proj_a(voxels(out["feat_a"][labeled_bs:])[index]))
    sim_vp = occ.omni_correlation(z_v, z_p.to(z_v.dtype), cfg.temperature, cfg.similarity)
    sim_ap = occ.omni_correlation(z_a, z_p.to(z_a.dtype), cfg.temperature, cfg.similarity)
    return occ.occ_loss(sim_vp, sim_ap)


def caml_step(net, image, label, labeled_bs, iteration, cfg: StepConfig, bank=None, slots=None):
    """Forward the batch and return (L, parts) of Eq. 1.

    image: (b, 1, h, w, d) with the ``labeled_bs`` labeled samples first; label: (b, h, w, d)
    (only the labeled rows are read); ``bank``/``slots``: the memory bank and the slot of each
    labeled sample (needed when ``cfg.use_occ``). ``parts`` holds detached tensors: L, L_s, l_c,
    l_o, lambda_c, lambda_o.
    """
    y = label[:labeled_bs]
    if cfg.supervised_only:
        p = torch.softmax(net.f_v(image[:labeled_bs]).float(), dim=1)
        loss_s = dice_loss(p[:, 1], y)
        zero = loss_s.new_zeros(())
        return loss_s, _parts(loss_s, loss_s, zero, zero, 0.0, 0.0)

    if iteration < cfg.warmup:
        return warmup_step(net, image[:labeled_bs], y, cfg)
    iteration -= cfg.warmup  # the ramps start after the warm-up

    out = net(image)
    p_v = torch.softmax(out["logits_v"].float(), dim=1)  # (b, C, h, w, d)
    p_a = torch.softmax(out["logits_a"].float(), dim=1)
    loss_s = dice_loss(p_v[:labeled_bs, 1], y) + dice_loss(p_a[:labeled_bs, 1], y)
    zero = loss_s.new_zeros(())

    lambda_c = loss_weight(iteration, cfg.beta_c, cfg.ramp_length, cfg.iterations_per_epoch)
    l_c = cps_loss(p_v, p_a, cfg.T, cfg.detach_targets) if cfg.use_cps else zero

    lambda_o, l_o = 0.0, zero
    if cfg.use_occ:
        if bank is None or slots is None:
            raise ValueError("use_occ needs the memory bank and the labeled samples' slots")
        update_memory(net, bank, out, p_v[:labeled_bs], p_a[:labeled_bs], y, slots)
        lambda_o = loss_weight(iteration, cfg.beta_o, cfg.ramp_length, cfg.iterations_per_epoch)
        l_o = occ_term(net, bank, out, p_v, p_a, labeled_bs, cfg)

    loss = cfg.weight_s * loss_s + lambda_c * l_c + lambda_o * l_o
    return loss, _parts(loss, loss_s, l_c, l_o, lambda_c, lambda_o)


def warmup_step(net, image, y, cfg: StepConfig):
    """Eq. 1 with lambda_c = lambda_o = 0 on the labeled samples only: L = w_s (L_s of f_v + of f_a)."""
    p_v = torch.softmax(net.f_v(image).float(), dim=1)
    p_a = torch.softmax(net.f_a(image).float(), dim=1)
    loss_s = dice_loss(p_v[:, 1], y) + dice_loss(p_a[:, 1], y)
    loss = cfg.weight_s * loss_s
    zero = loss_s.new_zeros(())
    return loss, _parts(loss, loss_s, zero, zero, 0.0, 0.0)


def _parts(loss, loss_s, l_c, l_o, lambda_c, lambda_o):
    return {"L": loss.detach(), "L_s": loss_s.detach(), "l_c": l_c.detach(),
            "l_o": l_o.detach(), "lambda_c": lambda_c, "lambda_o": lambda_o}
