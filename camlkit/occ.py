"""Omni-Correlation Consistency, OCC (paper §2.3, Eq. 2-3).

OCC ties the two branches together through *labeled* features. A memory bank T keeps prototype
embeddings z_p from the labeled cases; for confident unlabeled voxels each branch's embedding
(z_v for f_v, z_a for f_a, at the same voxels) is compared with every prototype, giving a
similarity distribution over the prototypes — a row of the omni-correlation matrix:

    sim_vp[i] = exp(s(z_v, z_p_i) / t) / sum_n exp(s(z_v, z_p_n) / t)        (Eq. 2)
    l_o       = (1/m) sum_rows CE(sim_vp, sim_ap) = mean_rows( -sum_n sim_ap log(sim_vp + 1e-8) )  (Eq. 3)

and l_o asks both branches to relate an unlabeled voxel to the labeled ones in the same way.

The pieces, in the order one training step uses them (the step itself is camlkit.step; in the
release ``code/train_caml.py``, ``code/utils/feature_memory.py``, ``code/utils/correlation.py``):

1. :class:`MemoryBank` — one slot per labeled case. Each time a labeled case is in the batch its
   slot is **replaced** by the embeddings at the voxels that *both* branches predict correctly,
   each the mean of the g_v and g_a projections (heads in eval mode, no gradient).
2. :meth:`MemoryBank.sample` — pool all slots and draw j = 256 embeddings per class at random,
   without replacement (n = j * C prototypes). A class with fewer than j stored embeddings has no
   prototypes this iteration: it is left out of the softmax's columns, the other classes still
   count (as released).
3. :func:`sample_unlabeled` — unlabeled voxels where argmax p_v == argmax p_a; class = f_v's
   prediction; keep the top i = 12,800 per class by f_v's confidence (m <= i * C rows). A class
   with fewer than 2 such voxels gives no rows (as released).
4. :func:`omni_correlation` and :func:`occ_loss`; l_o is 0 only when no row or no column is left.

Paper vs released code:

* similarity: the paper writes exp(cos(z, z_p) · t) with t = 0.1; the release computes the plain
  **dot product divided by** t (``similarity="dot"``, the default). ``similarity="cosine"`` gives
  the normalised variant, also divided by t: cos · 0.1 would squeeze every logit into [-0.1, 0.1]
  and flatten each row to near-uniform over the n prototypes, so "times t" can only be a typo for
  the usual temperature.
* c' = 64 in the paper, 32 in the release (camlkit.caml).

What this bank does differently, on purpose, without changing a result: the release keeps one
NumPy array per slot and concatenates all of them at every draw (0.8 s per iteration at 4
labeled, 4.4 s at 16 on a 2-core CPU); this bank draws by index, O(j * C) whatever it holds. The
drawn set has the same distribution (uniform without replacement over the pooled class), the
columns come in class order as in the release; the random stream differs (the release draws
with Python's ``random.sample``), and l_o does not depend on the column order.
"""

import torch
import torch.nn.functional as F

LOG_EPS = 1e-8
MIN_ROWS = 2  # a class with fewer picked unlabeled voxels gives no rows (released: "> 1")
MIN_PROTOTYPES = 2  # a memory class needs j >= 2 prototypes to give columns (released)


class MemoryBank:
    """Memory bank T: per slot (labeled case), embeddings stored grouped by class.

    ``feats[s, :counts[s].sum()]`` holds slot s's embeddings, class 0 first, then class 1, ...;
    ``counts[s, c]`` how many of class c. Storage is allocated on the first update, on the device
    of the embeddings given (the model's device), and grows if a later update needs more room.
    """

    def __init__(self, num_slots: int, dim: int, num_classes: int = 2):
        self.num_slots, self.dim, self.num_classes = num_slots, dim, num_classes
        self.feats = None  # (num_slots, capacity, dim)
        self.counts = torch.zeros(num_slots, num_classes, dtype=torch.long)

    @property
    def device(self):
        return self.counts.device

    def class_counts(self) -> torch.Tensor:
        """Embeddings stored per class, all slots pooled: (num_classes,)."""
        return self.counts.sum(0)

    def update(self, slot: int, z: torch.Tensor, y: torch.Tensor) -> None:
        """Replace slot ``slot`` by embeddings z (n, dim) of classes y (n,)."""
        z, y = z.detach(), y.detach()
        if self.feats is None or self.feats.shape[1] < len(z) or self.feats.device != z.device:
            self._allocate(max(len(z), 0 if self.feats is None else self.feats.shape[1]), z)
        start = 0
        for c in range(self.num_classes):  # store grouped by class: class 0 first, then 1, ...
            z_c = z[y == c]
            self.feats[slot, start : start + len(z_c)] = z_c.to(self.feats.dtype)
            self.counts[slot, c] = len(z_c)
            start += len(z_c)

    def _allocate(self, capacity, like):
        feats = torch.zeros(self.num_slots, capacity, self.dim, dtype=like.dtype, device=like.device)
        if self.feats is not None:
            old = self.feats.to(like.device)
            feats[:, : old.shape[1]] = old
        self.feats, self.counts = feats, self.counts.to(like.device)

    def sample(self, j: int):
        """Draw j embeddings per class uniformly from all slots pooled, without replacement.

        The plain reading, as released: for each class, put every stored embedding of that class
        from every slot into one pool, and draw j of them at random. (The code below does exactly
        that without building the pool: it draws j positions in the pooled order and finds each
        one's slot from the per-slot counts.)

        Returns (z_p (j * C', dim), y_p (j * C',)) grouped by class, over the C' classes that
        hold at least j embeddings (the others have no prototypes this iteration, as released);
        None when no class does (or the bank is empty).
        """
        if self.feats is None:
            return None
        z_p, y_p = [], []
        for c, total in enumerate(self.class_counts().tolist()):
            if total < j:
                continue
            flat = _draw_without_replacement(total, j, self.device)  # index into class c, pooled
            counts_c = self.counts[:, c]
            ends = counts_c.cumsum(0)
            slot = torch.searchsorted(ends, flat, right=True)
            within = flat - (ends[slot] - counts_c[slot])
            class_start = self.counts[slot, :c].sum(1)  # class c's block follows classes < c
            z_p.append(self.feats[slot, class_start + within])
            y_p.append(torch.full((j,), c, dtype=torch.long, device=self.device))
        if not z_p:
            return None
        return torch.cat(z_p), torch.cat(y_p)

    def slot(self, s: int):
        """Slot s's stored embeddings and their classes: (z (n, dim), y (n,)), class 0 first."""
        counts = self.counts[s]
        y = torch.repeat_interleave(torch.arange(self.num_classes, device=self.device), counts)
        if self.feats is None:
            return torch.zeros(0, self.dim), y
        return self.feats[s, : int(counts.sum())], y

    def state_dict(self):
        if self.feats is None:
            return {"counts": self.counts.cpu()}
        used = int(self.counts.sum(1).max())
        return {"counts": self.counts.cpu(), "feats": self.feats[:, :used].cpu()}

    def load_state_dict(self, state, device=None):
        device = device or self.device
        self.counts = state["counts"].to(device)
        self.feats = state["feats"].to(device) if "feats" in state else None


def _draw_without_replacement(total: int, k: int, device) -> torch.Tensor:
    """k distinct integers from [0, total), uniformly; O(k) work when total >> k."""
    if total <= 4 * k:
        return torch.randperm(total, device=device)[:k]
    picked = torch.unique(torch.randint(total, (k,), device=device))
    while len(picked) < k:  # rare collisions: top up and keep distinct values
        extra = torch.randint(total, (k,), device=device)
        picked = torch.unique(torch.cat([picked, extra]))
    return picked[torch.randperm(len(picked), device=device)[:k]]


def agreeing(prob_v: torch.Tensor, prob_a: torch.Tensor) -> torch.Tensor:
    """(n_voxels,) bool: where the branches predict the same class, argmax p_v == argmax p_a."""
    return prob_v.detach().argmax(dim=1) == prob_a.detach().argmax(dim=1)


def sample_unlabeled(prob_v: torch.Tensor, prob_a: torch.Tensor, top_i: int):
    """Confident-sample voxels of unlabeled data where both branches agree.

    prob_v, prob_a: (n_voxels, C) softmax probabilities. Returns (index (m,), cls (m,)): per class
    (in class order) the voxels where argmax p_v == argmax p_a == c, the top ``top_i`` by f_v's
    confidence max p_v, most confident first. A class with fewer than :data:`MIN_ROWS` picked
    voxels is left out (released: a class needs at least 2); None when no class is left.
    """
    conf, pred_v = prob_v.detach().max(dim=1)
    agree = agreeing(prob_v, prob_a)
    index, cls = [], []
    for c in range(prob_v.shape[1]):
        candidates = torch.nonzero(agree & (pred_v == c)).squeeze(1)
        if min(top_i, len(candidates)) < MIN_ROWS:
            continue
        top = torch.topk(conf[candidates], min(top_i, len(candidates))).indices
        index.append(candidates[top])
        cls.append(torch.full((len(top),), c, dtype=torch.long, device=prob_v.device))
    if not index:
        return None
    return torch.cat(index), torch.cat(cls)


def correlation_logits(z: torch.Tensor, z_p: torch.Tensor, temperature: float = 0.1,
                       similarity: str = "dot") -> torch.Tensor:
    """The logits of Eq. 2: similarity(z, z_p) / temperature, (m, c') x (n, c') -> (m, n).

    ``similarity``: "dot" (released) or "cosine" (paper).
    """
    if similarity == "cosine":
        z, z_p = F.normalize(z, dim=1), F.normalize(z_p, dim=1)
    elif similarity != "dot":
        raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
    return z @ z_p.T / temperature


def omni_correlation(z: torch.Tensor, z_p: torch.Tensor, temperature: float = 0.1,
                     similarity: str = "dot", with_logits: bool = False):
    """Eq. 2: row-wise softmax of similarity(z, z_p) / temperature.

    z: (m, c') unlabeled embeddings (rows), z_p: (n, c') memory prototypes (columns) -> (m, n),
    each row a distribution over the prototypes. ``similarity``: "dot" (released) or "cosine"
    (paper). ``with_logits``: return ``(sim, logits)``, the logits it took the softmax of (the
    training step reads them for l_o's log_softmax form, camlkit.step.occ_part).
    """
    logits = correlation_logits(z, z_p, temperature, similarity)  # (m, n)
    sim = torch.softmax(logits, dim=1)
    return (sim, logits) if with_logits else sim


def occ_loss(sim_v: torch.Tensor, sim_a: torch.Tensor, log_sim_v: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3: l_o = mean over rows of -sum_n sim_a * log(sim_v + 1e-8).

    As released, the gradient flows into both sim_v and sim_a. ``log_sim_v``: log(sim_v) computed
    another way — ``log_softmax`` of the logits (``step.occ_log="log_softmax"``); None (released):
    ``log(sim_v + 1e-8)``. The two agree wherever sim_v is not ~0. Where a row is saturated
    (one-hot) and the branches pick different prototypes, the released form sits at its ceiling
    -log(1e-8) = 18.42 and its gradient with respect to the logits, p(1 - p)/(p + 1e-8), is ~0;
    the log_softmax form keeps a gradient of (1 - p) there
    (camlkit.diagnostics.health.saturation_toy).
    """
    log_v = torch.log(sim_v + LOG_EPS) if log_sim_v is None else log_sim_v
    return -(sim_a * log_v).sum(dim=1).mean()
