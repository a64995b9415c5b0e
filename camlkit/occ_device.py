"""OCC (paper §2.3, Eq. 2-3) with fixed shapes: the memory bank and the sampling stay on the GPU.

camlkit.occ follows the release: the bank keeps the voxels where both branches are right, the
rows are the agreeing unlabeled voxels of each class, and a class with too few of either is left
out. Every "keep these" is a boolean index or a ``.tolist()``: a tensor whose size the host must
read before it can queue the next kernel, so a GPU waits for Python several times a step. Here
the same selections are masks over tensors of a size known in advance (``--fast``,
camlkit.runtime.fast):

* :class:`DeviceBank` stores *every* voxel of a labeled patch with its class, or -1 where the
  branches were not both right (the kept rows hold the same embeddings as camlkit.occ's bank:
  the heads run in eval mode, row by row);
* :meth:`DeviceBank.sample` draws j per class uniformly without replacement as the top-j of
  random keys over the kept voxels of that class; a class with fewer than j is masked out of
  the columns instead of dropped;
* :func:`sample_unlabeled` picks the top-i agreeing voxels of each class by a masked top-k and
  says which rows are real;
* :func:`masked_heads` runs a projection or prediction head whose BatchNorm1d (train mode)
  takes its batch statistics over the masked rows only, as the release's heads see only them;
* :func:`occ_loss` is Eq. 3 over the real rows and columns.

Same distributions, same l_o for the same draw (tests/test_occ_device.py holds each piece against
camlkit.occ); the random stream differs. The health figures are not computed in this form.
"""

import torch
import torch.nn.functional as F

from camlkit.occ import LOG_EPS, MIN_PROTOTYPES, MIN_ROWS

FAR = 1e4  # a masked-out column's logit lies this far below the smallest real one: softmax 0


class DeviceBank:
    """Memory bank T with one fixed-size slot per labeled case: every voxel of a patch.

    ``feats[s]`` (n, dim) holds slot s's embeddings, ``labels[s]`` (n,) their classes, -1 where
    a voxel is not kept (or the slot not yet filled). Allocated on the first update, on the
    device of the embeddings.
    """

    def __init__(self, num_slots: int, dim: int, num_classes: int = 2):
        self.num_slots, self.dim, self.num_classes = num_slots, dim, num_classes
        self.feats, self.labels = None, None  # (num_slots, n, dim), (num_slots, n)

    def update(self, slot: int, z: torch.Tensor, y: torch.Tensor) -> None:
        """Replace slot ``slot`` by z (n, dim) of classes y (n,), -1 for a voxel not kept."""
        z, y = z.detach(), y.detach()
        if self.feats is None or self.feats.shape[1] != len(z) or self.feats.device != z.device:
            self.feats = z.new_zeros(self.num_slots, len(z), self.dim, dtype=torch.float32)
            self.labels = torch.full((self.num_slots, len(z)), -1, dtype=torch.long, device=z.device)
        self.feats[slot] = z
        self.labels[slot] = y

    def class_counts(self) -> torch.Tensor:
        """Kept embeddings per class, all slots pooled: (num_classes,), on the device."""
        return torch.stack([(self.labels == c).sum() for c in range(self.num_classes)])

    def sample(self, j: int):
        """j embeddings per class, uniformly without replacement from all slots pooled.

        Returns (z_p (j * C, dim), y_p (j * C,), valid (j * C,) bool): every class's j columns,
        ``valid`` False for the columns of a class that holds fewer than j (camlkit.occ leaves
        that class out). None before the first update.
        """
        if self.feats is None:
            return None
        labels = self.labels.flatten()  # (num_slots * n,)
        keys = torch.rand(labels.shape, device=labels.device)
        z_p, y_p, valid = [], [], []
        for c in range(self.num_classes):  # a Python loop over classes, not over tensor values
            pick = torch.where(labels == c, keys, -1.0).topk(j).indices  # uniform draw of j
            z_p.append(self.feats.flatten(0, 1)[pick])
            y_p.append(torch.full((j,), c, dtype=torch.long, device=labels.device))
            valid.append(((labels == c).sum() >= j).expand(j))
        return torch.cat(z_p), torch.cat(y_p), torch.cat(valid)

    def state_dict(self):
        return {"feats": self.feats.cpu(), "labels": self.labels.cpu()} if self.feats is not None else {}

    def load_state_dict(self, state, device=None):
        if "labels" in state:
            self.feats, self.labels = state["feats"].to(device), state["labels"].to(device)


def sample_unlabeled(prob_v, prob_a, top_i: int, min_rows: int = MIN_ROWS):
    """camlkit.occ.sample_unlabeled with fixed shapes: per class the top ``top_i`` voxels by f_v's
    confidence among those where argmax p_v == argmax p_a == c.

    prob_v, prob_a: (n_voxels, C). Returns (index (C * k,), cls (C * k,), real (C * k,) bool),
    k = min(top_i, n_voxels): ``real`` is False for a padding row (fewer candidates than k) and
    for every row of a class with fewer than ``min_rows`` candidates.
    """
    conf, pred_v = prob_v.detach().max(dim=1)
    agree = pred_v == prob_a.detach().argmax(dim=1)
    k = min(top_i, len(conf))
    index, cls, real = [], [], []
    for c in range(prob_v.shape[1]):
        candidate = agree & (pred_v == c)
        top = torch.where(candidate, conf, -1.0).topk(k)  # confidences are >= 0: -1 is padding
        index.append(top.indices)
        cls.append(torch.full((k,), c, dtype=torch.long, device=conf.device))
        real.append((top.values >= 0) & (candidate.sum() >= min_rows))
    return torch.cat(index), torch.cat(cls), torch.cat(real)


def masked_heads(head, x, mask):
    """``head`` (Linear, BatchNorm1d, ReLU, Linear; camlkit.caml.mlp_head) on every row of x (n, d),
    its BatchNorm in train mode normalising with the statistics of the ``mask`` rows alone and
    updating its running statistics from them, as if only those rows had been passed."""
    linear1, bn, relu, linear2 = head
    h = linear1(x).float()  # (n, c')
    if not bn.training:
        return linear2(relu(bn(h)))
    w = mask.to(h.dtype)[:, None]  # (n, 1)
    n = w.sum()
    enough = n > 1  # BatchNorm1d needs 2 rows; with fewer, nothing uses these rows (l_o is 0)
    n = n.clamp_min(2)
    mean = (h * w).sum(0) / n
    var = ((h - mean) ** 2 * w).sum(0) / n  # biased, for the normalisation
    with torch.no_grad():
        m = bn.momentum
        bn.running_mean.copy_(torch.where(enough, (1 - m) * bn.running_mean + m * mean, bn.running_mean))
        unbiased = var * n / (n - 1)  # BatchNorm1d stores the unbiased variance
        bn.running_var.copy_(torch.where(enough, (1 - m) * bn.running_var + m * unbiased, bn.running_var))
        bn.num_batches_tracked.add_(enough.long())
    h = (h - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
    return linear2(relu(h.to(x.dtype)))


def occ_loss(logits_vp, logits_ap, rows, cols, occ_log="eps"):
    """Eq. 3 over the real rows and columns: the mean over ``rows`` of
    -sum_{n in cols} sim_a * log(sim_v + 1e-8), the softmaxes taken over ``cols`` alone.

    logits_*: (m, n) float; rows (m,), cols (n,) bool. 0 when no row or no column is real.
    """
    far = torch.minimum(logits_vp.detach().amin(), logits_ap.detach().amin()) - FAR
    logits_vp, logits_ap = torch.where(cols, logits_vp, far), torch.where(cols, logits_ap, far)
    sim_v, sim_a = torch.softmax(logits_vp, dim=1), torch.softmax(logits_ap, dim=1)
    log_v = torch.log_softmax(logits_vp, dim=1) if occ_log == "log_softmax" else torch.log(sim_v + LOG_EPS)
    per_row = -(sim_a * log_v * cols).sum(dim=1)  # (m,)
    w = rows.to(per_row.dtype)
    l_o = (per_row * w).sum() / w.sum().clamp_min(1)
    return torch.where(rows.any() & cols.any(), l_o, torch.zeros_like(l_o))


def occ_term(net, bank: DeviceBank, feat_v, feat_a, prob_v, prob_a, cfg):
    """l_o of one step in the fixed-shape form, after the bank's update (camlkit.step.occ_part's).

    feat_*: (n_voxels, n_filters) decoder features of the unlabeled half, prob_*: (n_voxels, C).
    ``cfg``: the step's config (j, top_i, heads_on, similarity, occ_temperature, occ_log).
    """
    drawn = bank.sample(cfg.j) if cfg.j >= MIN_PROTOTYPES else None
    if drawn is None:
        return prob_v.new_zeros(())
    z_p, _, cols = drawn  # (n, c')
    index, _, rows = sample_unlabeled(prob_v, prob_a, cfg.top_i)
    if cfg.heads_on == "agreeing":  # the heads' BatchNorm sees every agreeing voxel, as released
        agree = prob_v.detach().argmax(1) == prob_a.detach().argmax(1)
        z_v = masked_heads(net.pred_v, masked_heads(net.proj_v, feat_v, agree), agree)[index]
        z_a = masked_heads(net.pred_a, masked_heads(net.proj_a, feat_a, agree), agree)[index]
    else:  # "picked": the heads see the picked rows alone
        z_v = masked_heads(net.pred_v, masked_heads(net.proj_v, feat_v[index], rows), rows)
        z_a = masked_heads(net.pred_a, masked_heads(net.proj_a, feat_a[index], rows), rows)
    z_v, z_a, z_p = z_v.float(), z_a.float(), z_p.float()
    if cfg.similarity == "cosine":
        z_v, z_a, z_p = F.normalize(z_v, dim=1), F.normalize(z_a, dim=1), F.normalize(z_p, dim=1)
    logits_vp = z_v @ z_p.T / cfg.occ_temperature  # (m, n)
    logits_ap = z_a @ z_p.T / cfg.occ_temperature
    return occ_loss(logits_vp, logits_ap, rows, cols, cfg.occ_log)
