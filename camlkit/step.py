"""One CAML training step: the total loss of Eq. 1 and its parts (paper §2, §3).

    L = 0.5 * L_s + lambda_c(t) * l_c + lambda_o(t) * l_o                        (Eq. 1)

* L_s — soft Dice of each branch on the labeled samples, summed (camlkit.losses);
* l_c — cross pseudo supervision between the branches on the whole batch (camlkit.cps);
* l_o — omni-correlation consistency through the memory bank (camlkit.occ, Eq. 2-3);
* lambda_c, lambda_o — Gaussian ramp-ups with beta 1 and 0.05 (camlkit.ramps).

The defaults are the released training iteration (``code/train_caml.py`` of
github.com/Herschel555/CAML), in this order: forward both branches on the batch (labeled samples
first); L_s and l_c from the softmax maps; the memory bank's slots of the labeled samples are
replaced (heads in eval mode, no gradient); j prototypes per class are drawn; the unlabeled
voxels where the branches agree go through each branch's projection and prediction heads (train
mode); the top-i per class by f_v's confidence give the rows of the omni-correlation matrices;
then L. ``tests/test_step_parity.py`` holds this step against a plain-torch transcription of
that iteration: same L, L_s, l_c, l_o, gradients, bank contents and BatchNorm statistics.

Where the release does something a clean reimplementation would not, :class:`StepConfig` names
it and keeps the release's choice as the default (``bank_fa_rows``, ``heads_on``,
``ramp_offset``; :data:`CLEAN_VARIANT` turns all three to the clean form). Where the paper and the
release differ, the release is the default: L_s weighted by 0.5 (the paper writes 1), beta_o =
0.05 (paper 0.1), OCC's dot-product similarity (paper: cosine).

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

from dataclasses import dataclass

import torch
from einops import rearrange

from camlkit import occ, occ_device
from camlkit.caml import eval_mode
from camlkit.cps import cps_loss
from camlkit.losses import dice_loss
from camlkit.ramps import ITERATIONS_PER_EPOCH, loss_weight


@dataclass
class StepConfig:
    """The terms of Eq. 1 and how each is computed. Defaults: the released training step.

    Options whose default is a quirk of the release (``code/train_caml.py``) and whose other value
    is what a clean reimplementation would write:

    * ``bank_fa_rows`` — "scrambled" (released): the bank's g_a projection is fed f_a's decoder
      features reshaped (b, c, h, w, d) -> (-1, c) without moving the channels last, so each row
      holds c consecutive z-positions of one channel, not one voxel's features (f_v's features
      are permuted first, f_a's are not). "per_voxel": one voxel's c features per row.
    * ``heads_on`` — "agreeing" (released): the projection and prediction heads (BatchNorm1d in
      train mode) run on *every* unlabeled voxel where the branches agree, and the top-i rows
      per class are picked afterwards, so BatchNorm's batch and running statistics come from all
      agreeing voxels. "picked": pick the top-i voxels first, run the heads on those alone.
    * ``ramp_offset`` — 1 (released): the release counts iterations from 0 and increments its
      counter before computing lambda, so the ramp's epoch is e = (iteration + 1) // 150.
      0: e = iteration // 150.
    """

    supervised_only: bool = False  # labeled-only V-Net: f_v and L_s alone
    use_cps: bool = True  # l_c
    use_occ: bool = True  # l_o
    weight_s: float = 0.5  # released weight of L_s (the paper writes 1)
    sharpen_T: float = 0.1  # T of l_c's sharpening s(p) (paper Eq. 1, §2.1); camlkit.cps
    detach_targets: bool = False  # released: gradients flow through the sharpened targets
    beta_c: float = 1.0
    beta_o: float = 0.05  # released value; the paper writes 0.1
    ramp_length: float | None = 15  # R in epochs: 40 / 20 / 15 for 4 / 8 / 16 labeled; None: by labeled count
    iterations_per_epoch: int = ITERATIONS_PER_EPOCH
    ramp_offset: int = 1  # released: e = (iteration + 1) // 150; 0: iteration // 150
    j: int = 256  # memory prototypes drawn per class
    top_i: int = 12800  # unlabeled embeddings kept per class
    occ_temperature: float = 0.1  # t of OCC's omni-correlation (paper Eq. 2); camlkit.occ
    similarity: str = "dot"  # "dot" as released, "cosine" as in the paper
    bank_fa_rows: str = "scrambled"  # released; "per_voxel": the clean prototypes
    heads_on: str = "agreeing"  # released; "picked": heads on the top-i voxels only
    warmup: int = 0  # iterations of labeled-only training of both branches before Eq. 1 (released: 0)
    occ_log: str = "eps"  # l_o's log: "eps" log(softmax + 1e-8) as released | "log_softmax" (stable)
    occ_health: bool = True  # camlkit.train logs how the OCC rows look, on logged iterations (diagnostics.health)

    def __post_init__(self):
        if self.bank_fa_rows not in ("scrambled", "per_voxel"):
            raise ValueError(f"bank_fa_rows must be 'scrambled' or 'per_voxel', got {self.bank_fa_rows!r}")
        if self.heads_on not in ("agreeing", "picked"):
            raise ValueError(f"heads_on must be 'agreeing' or 'picked', got {self.heads_on!r}")
        if self.occ_log not in ("eps", "log_softmax"):
            raise ValueError(f"occ_log must be 'eps' or 'log_softmax', got {self.occ_log!r}")
        if self.similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity must be 'dot' or 'cosine', got {self.similarity!r}")


# The clean form of every release quirk above, e.g. ``StepConfig(**CLEAN_VARIANT)``.
CLEAN_VARIANT = {"bank_fa_rows": "per_voxel", "heads_on": "picked", "ramp_offset": 0}


def voxels(t):
    """(b, c, h, w, d) -> (b*h*w*d, c): one row per voxel."""
    return rearrange(t, "b c h w d -> (b h w d) c")


def bank_rows_a(feat_a, layout="scrambled"):
    """f_a's features (c, h, w, d) of one labeled sample as the (h*w*d, c) rows g_a projects.

    "per_voxel": row k is voxel k's c features. "scrambled" (released): the tensor is read in its
    (c, h, w, d) order, c values per row, so row k holds c consecutive z-positions of one channel.
    The rows are paired with voxels in (h, w, d) order either way.
    """
    if layout == "per_voxel":
        return rearrange(feat_a, "c h w d -> (h w d) c")
    return feat_a.reshape(-1, feat_a.shape[0])  # the logical order, whatever the memory format


@torch.no_grad()
def update_memory(net, bank, out, p_v, p_a, label, slots, bank_fa_rows="scrambled"):
    """Replace each labeled case's slot by the embeddings where both branches are right.

    Each stored embedding is the mean of the g_v and g_a projections of that voxel (heads in eval
    mode, no gradient); ``bank_fa_rows`` says which rows g_a sees (see :func:`bank_rows_a`).
    ``slots``: the bank slot of each labeled sample in the batch.
    """
    with eval_mode(net.proj_v, net.proj_a):
        for k, slot in enumerate(slots):
            y = label[k].flatten()
            correct = (p_v[k].argmax(0).flatten() == y) & (p_a[k].argmax(0).flatten() == y)
            if isinstance(bank, occ_device.DeviceBank):  # --fast: every voxel, -1 where not kept (occ_device)
                z = 0.5 * (net.proj_v(voxels(out["feat_v"][k : k + 1]))
                           + net.proj_a(bank_rows_a(out["feat_a"][k], bank_fa_rows)))
                bank.update(int(slot), z.float(), torch.where(correct, y, -1))
                continue
            f_v = voxels(out["feat_v"][k : k + 1])[correct]  # (n, n_filters)
            f_a = bank_rows_a(out["feat_a"][k], bank_fa_rows)[correct]
            z = 0.5 * (net.proj_v(f_v) + net.proj_a(f_a))
            bank.update(int(slot), z.float(), y[correct])


def unlabeled_embeddings(net, feat_v, feat_a, prob_v, prob_a, index, heads_on="agreeing", first=0):
    """z_v, z_a (m, c'): projection then prediction head of each branch at the picked voxels.

    prob_*: (n_voxels, C) of the unlabeled half, index: (m,) picked voxels among them; feat_*:
    decoder features, one row per voxel, unlabeled voxel k at row ``first + k`` (:func:`occ_part`
    passes the whole batch's rows: indexing them, not a slice of them, spares the backward a
    zero-filled copy of the feature map; the same numbers). ``heads_on="agreeing"`` (released)
    runs the heads on every voxel where the branches agree and takes the picked rows; "picked"
    runs them on the picked rows.
    """
    if heads_on == "agreeing":
        agree = occ.agreeing(prob_v, prob_a)  # (n_voxels,)
        rows = torch.nonzero(agree).squeeze(1) + first  # the agreeing voxels' feature rows
        row = torch.cumsum(agree, 0) - 1  # voxel -> its row among the agreeing voxels
        z_v = net.pred_v(net.proj_v(feat_v[rows]))[row[index]]
        z_a = net.pred_a(net.proj_a(feat_a[rows]))[row[index]]
        return z_v, z_a
    rows = index + first
    return net.pred_v(net.proj_v(feat_v[rows])), net.pred_a(net.proj_a(feat_a[rows]))


def occ_part(net, bank, out, p_v, p_a, labeled_bs, cfg: StepConfig):
    """The OCC part of one step (Eq. 2-3) after the bank's update: every piece, or None.

    Training (:func:`caml_step`) and analysis (camlkit.diagnostics.measure.network_occ) both
    call this, so a figure shows the rows training computes. Draws j prototypes per class from ``bank``, picks
    the top-i agreeing unlabeled voxels per class, runs the heads (``cfg.heads_on``) and builds
    both branches' rows (``cfg.similarity``, ``cfg.occ_temperature``) and l_o (``cfg.occ_log``).

    Returns ``{"z_v", "z_a" (m, c'), "z_p" (n, c'), "row_class", "index" (m,), "col_class" (n,),
    "logits_vp", "logits_ap", "sim_vp", "sim_ap" (m, n), "l_o"}``; None when l_o is 0 as
    released: no class with j prototypes, no unlabeled sample, or no class with 2 picked voxels.
    """
    drawn = bank.sample(cfg.j) if cfg.j >= occ.MIN_PROTOTYPES else None
    if drawn is None or p_v.shape[0] == labeled_bs:
        return None
    z_p, col_class = drawn  # (n, c')
    prob_v, prob_a = voxels(p_v[labeled_bs:]), voxels(p_a[labeled_bs:])  # (n_voxels, C)
    picked = occ.sample_unlabeled(prob_v, prob_a, cfg.top_i)
    if picked is None:
        return None
    index, row_class = picked  # m voxels of the unlabeled half
    first = labeled_bs * p_v[0, 0].numel()  # the row of the first unlabeled voxel in the batch's rows
    z_v, z_a = unlabeled_embeddings(net, voxels(out["feat_v"]), voxels(out["feat_a"]), prob_v, prob_a,
                                    index, cfg.heads_on, first)  # (m, c') each
    return {"z_v": z_v, "z_a": z_a, "row_class": row_class, "index": index,
            **occ_rows(z_v, z_a, z_p, col_class, cfg)}


def occ_rows(z_v, z_a, z_p, col_class, cfg: StepConfig):
    """Eq. 2 for both branches against the drawn prototypes, and Eq. 3's l_o.

    z_v, z_a: (m, c') the picked voxels' embeddings; z_p: (n, c') the prototypes, col_class (n,).
    Returns ``{"z_p", "col_class", "logits_vp", "logits_ap", "sim_vp", "sim_ap" (m, n), "l_o"}``.
    """
    z_p = z_p.to(z_v.dtype)
    # Eq. 2, one row per picked voxel, one column per prototype: (m, n) each
    sim_vp, logits_vp = occ.omni_correlation(z_v, z_p, cfg.occ_temperature, cfg.similarity, with_logits=True)
    sim_ap, logits_ap = occ.omni_correlation(z_a, z_p, cfg.occ_temperature, cfg.similarity, with_logits=True)
    log_vp = torch.log_softmax(logits_vp, dim=1) if cfg.occ_log == "log_softmax" else None
    return {"z_p": z_p, "col_class": col_class, "logits_vp": logits_vp, "logits_ap": logits_ap,
            "sim_vp": sim_vp, "sim_ap": sim_ap, "l_o": occ.occ_loss(sim_vp, sim_ap, log_vp)}


def caml_step(net, image, label, labeled_bs, iteration, cfg: StepConfig, bank=None, slots=None,
              watch=None):
    """Forward the batch and return (L, parts) of Eq. 1.

    image: (b, 1, h, w, d) with the ``labeled_bs`` labeled samples first; label: (b, h, w, d)
    (only the labeled rows are read); ``bank``/``slots``: the memory bank and the slot of each
    labeled sample (needed when ``cfg.use_occ``). ``parts`` holds detached tensors: L, L_s, l_c,
    l_o, lambda_c, lambda_o. ``watch``: called as ``watch(part, lambda_o)`` with the step's OCC
    part (:func:`occ_part`) when l_o is computed (camlkit.diagnostics.health.HealthWatch).

    As released, l_o is 0 when :func:`occ_part` finds no rows or no columns.
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

    ramp_iteration = iteration + cfg.ramp_offset
    lambda_c = loss_weight(ramp_iteration, cfg.beta_c, cfg.ramp_length, cfg.iterations_per_epoch)
    l_c = cps_loss(p_v, p_a, cfg.sharpen_T, cfg.detach_targets) if cfg.use_cps else zero

    lambda_o, l_o = 0.0, zero
    if cfg.use_occ:
        if bank is None or slots is None:
            raise ValueError("use_occ needs the memory bank and the labeled samples' slots")
        update_memory(net, bank, out, p_v[:labeled_bs], p_a[:labeled_bs], y, slots, cfg.bank_fa_rows)
        lambda_o = loss_weight(ramp_iteration, cfg.beta_o, cfg.ramp_length, cfg.iterations_per_epoch)
        if isinstance(bank, occ_device.DeviceBank) and p_v.shape[0] > labeled_bs:  # --fast: no host sync
            feats = voxels(out["feat_v"][labeled_bs:]), voxels(out["feat_a"][labeled_bs:])
            probs = voxels(p_v[labeled_bs:]), voxels(p_a[labeled_bs:])
            l_o = occ_device.occ_term(net, bank, *feats, *probs, cfg)  # no watch: its figures would sync
        else:
            part = occ_part(net, bank, out, p_v, p_a, labeled_bs, cfg)
            if part is not None:
                l_o = part["l_o"]
                if watch is not None:
                    watch(part, lambda_o)

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
