"""One released CAML training iteration, written out in plain torch: the oracle and the baseline.

This is our own transcription of one iteration of the authors' training loop
(github.com/Herschel555/CAML, ``code/train_caml.py`` with ``code/utils/feature_memory.py`` and
``code/utils/correlation.py``), in the release's order and with its quirks:

* the memory bank stores, per labeled case, the mean of g_v and g_a at the voxels both branches
  get right; f_v's decoder features are moved channels-last before the projection, f_a's are not
  (each g_a row is c consecutive z-positions of one channel);
* the bank is a Python list with one entry per labeled case, pooled with ``torch.cat`` at every
  draw (the release keeps NumPy arrays and ``np.concatenate``s them: the same work on a CPU);
* the projection and prediction heads (BatchNorm1d, train mode) run on every agreeing unlabeled
  voxel, then the top-i rows per class by f_v's confidence are kept;
* a memory class without prototypes is left out of the columns, an unlabeled class with fewer
  than 2 rows out of the rows;
* the ramp's epoch is (iteration + 1) // 150.

It shares only the network's weights and blocks with camlkit: it runs the V-Net blocks, the CMA
transformer layers and the four heads itself, in the release's order (``code/networks/VNet.py``),
so the wiring of camlkit's forward (skips, CMA's place and reshapes) is checked too; the bank,
the losses, the sampling and the ramp are its own.

Two users: ``tests/test_step_parity.py`` holds camlkit's default step against
:func:`released_iteration`, and ``bench.release_loop`` times a release-equivalent training
loop built on it (``python -m bench.bench_train --versus-release``). The OCC part is a function of its
own (:func:`released_occ`) so the bench can time it alone.

One thing the release does that is left out, as it changes no number: it copies both softmax
maps into freshly allocated host tensors before l_c (``y_ori``, ``y_pseudo_label``), which costs
a little memory traffic on the CPU (and a device-to-host copy on a GPU). Leaving it out can only
make this baseline faster.
"""

import math
import random

import torch

# the released command line's values (``code/train_caml.py``)
LABELED_BS = 2  # labeled samples first in a batch of 4
N_CLASSES = 2  # background, left atrium
SHARPEN_T = 0.1  # --temperature: T of l_c's sharpening
OCC_T = 0.1  # t of the omni-correlation softmax (``code/utils/correlation.py``)
MEMORY_J = 256  # --memory_num: prototypes drawn per class
TOP_I = 12800  # --num_filtered: unlabeled rows kept per class
LAMDA = 0.5  # --lamda: the weight of L_s
BETA_C, BETA_O = 1.0, 0.05  # --consistency, --consistency_o
RAMP = 40.0  # --consistency_rampup at 4 labeled (20 at 8, 15 at 16)


def sharpening(p, T):
    return p ** (1 / T) / (p ** (1 / T) + (1 - p) ** (1 / T))


def released_forward(vnet, x):
    """A V-Net of CAML3d_v1 run block by block in the release's order (``code/networks/VNet.py``):
    encoder stages with 2x2x2 downsamplings, CMA (f_a only) on stage four's output, intra-sample
    then inter-sample, Dropout3d on stage five's output, a decoder that adds the skips and drops
    out the last feature map (the parity test sets every dropout to 0). Returns the logits and
    the last decoder features (the OCC embeddings)."""
    enc, dec = vnet.encoder, vnet.decoder
    x1 = enc.stage1(x)
    x2 = enc.stage2(enc.down1(x1))
    x3 = enc.stage3(enc.down2(x2))
    x4 = enc.stage4(enc.down3(x3))
    if enc.cma is not None:
        b, c, h, w, d = x4.shape
        tokens = x4.permute(0, 2, 3, 4, 1).reshape(b, h * w * d, c)  # one sequence per sample
        tokens = enc.cma.intra(tokens)
        tokens = enc.cma.inter(tokens.transpose(0, 1)).transpose(0, 1)  # one per position
        x4 = tokens.reshape(b, h, w, d, c).permute(0, 4, 1, 2, 3)
    x5 = enc.dropout(enc.stage5(enc.down4(x4)))
    x = dec.dec4(dec.up4(x5) + x4)
    x = dec.dec3(dec.up3(x) + x3)
    x = dec.dec2(dec.up2(x) + x2)
    features = dec.dropout(dec.dec1(dec.up1(x) + x1))
    return dec.out_conv(features), features


def released_occ(net, emb_v, emb_a, soft_v, soft_a, label, idx, memory, j=MEMORY_J, top_i=TOP_I,
                 seed=0, labeled_bs=LABELED_BS, n_classes=N_CLASSES, t=OCC_T):
    """The OCC part of a released iteration: bank update, draw, heads, correlation; returns l_o.

    emb_*: the decoder features (b, c, h, w, d), soft_*: the softmax maps (b, C, h, w, d), labeled
    samples first; ``idx``: the bank slot of each labeled sample. ``memory``: the release's bank,
    a list with one entry per labeled case, None or a pair (features (n, c'), labels (n,)); the
    entries of the labeled samples in the batch are replaced. The draw uses ``random.Random(seed)``
    (the release: Python's global ``random``).
    """
    lb = labeled_bs
    # memory bank update: projections in eval mode; f_a's features are NOT moved channels-last
    truth = label[:lb]
    right = (soft_v[:lb].argmax(1) == truth) & (soft_a[:lb].argmax(1) == truth)  # (lb, h, w, d)
    lab_v = emb_v[:lb].permute(0, 2, 3, 4, 1).contiguous()
    b, h, w, d, c = lab_v.shape
    net.eval()
    proj_v = net.proj_v(lab_v.view(-1, c)).view(b, h, w, d, -1)
    proj_a = net.proj_a(emb_a[:lb].contiguous().view(-1, c)).view(b, h, w, d, -1)
    net.train()
    for i in range(lb):
        stored = (proj_v[i][right[i]] + proj_a[i][right[i]]) / 2
        memory[int(idx[i])] = (stored.detach().clone(), truth[i][right[i]].clone())

    # draw j per class from all slots pooled (None: fewer than j stored)
    pooled_f = torch.cat([m[0] for m in memory if m is not None])
    pooled_y = torch.cat([m[1] for m in memory if m is not None])
    draw = random.Random(seed)
    prototypes = []
    for cls in range(n_classes):
        feats = pooled_f[pooled_y == cls]
        chosen = draw.sample(range(len(feats)), j) if len(feats) >= j else None
        prototypes.append(None if chosen is None else feats[torch.tensor(chosen)])

    # unlabeled voxels where the branches agree; the heads run on all of them (train mode)
    conf_v, pred_v = soft_v[lb:].max(1)
    pred_a = soft_a[lb:].argmax(1)
    agree = pred_v == pred_a  # (b_u, h, w, d)
    rows_cls, rows_conf = pred_v[agree], conf_v[agree]
    unl_v = emb_v[lb:].permute(0, 2, 3, 4, 1)[agree]  # (n_agree, c)
    unl_a = emb_a[lb:].permute(0, 2, 3, 4, 1)[agree]
    z_v = net.pred_v(net.proj_v(unl_v))
    z_a = net.pred_a(net.proj_a(unl_a))

    def correlation(z):
        blocks = []
        for cls in range(n_classes):
            z_cls = z[rows_cls == cls]
            order = torch.sort(rows_conf[rows_cls == cls], descending=True).indices[:top_i]
            z_cls = z_cls[order]
            logits = [z_cls @ proto.T for proto in prototypes
                      if proto is not None and len(z_cls) > 1 and len(proto) > 1]
            if logits:
                blocks.append(torch.softmax(torch.cat(logits, 1) / t, dim=1))
        return torch.cat(blocks) if blocks else None

    corr_v, corr_a = correlation(z_v), correlation(z_a)
    if corr_v is not None and corr_a is not None:
        return (-corr_a * torch.log(corr_v + 1e-8)).sum(1).sum() / corr_a.shape[0]
    return torch.zeros(())


def released_iteration(net, image, label, idx, memory, j=MEMORY_J, top_i=TOP_I, iteration=0,
                       ramp=RAMP, seed=0, labeled_bs=LABELED_BS, n_classes=N_CLASSES, T=SHARPEN_T,
                       t=OCC_T, lamda=LAMDA, beta_c=BETA_C, beta_o=BETA_O):
    """One released training iteration on ``net`` (train mode); returns (L, its parts).

    image: (b, 1, h, w, d), label: (b, h, w, d), the ``labeled_bs`` labeled samples first;
    ``idx``, ``memory``, ``seed``: see :func:`released_occ`; ``iteration``: 0-based, as camlkit
    counts; ``ramp``: R in epochs of 150 iterations. The defaults are the released values.
    """
    lb = labeled_bs
    logits_v, emb_v = released_forward(net.f_v, image)
    logits_a, emb_a = released_forward(net.f_a, image)

    # L_s and l_c
    loss_s, probs, sharp = 0, [], []
    for logits in (logits_v, logits_a):
        p = torch.softmax(logits, dim=1)
        fg, y = p[:lb, 1], (label[:lb] == 1).float()
        loss_s = loss_s + 1 - (2 * (fg * y).sum() + 1e-8) / (fg.sum() + y.sum() + 1e-8)
        probs.append(p)
        sharp.append(sharpening(p, T))
    loss_c = ((probs[0] - sharp[1]) ** 2).mean() + ((probs[1] - sharp[0]) ** 2).mean()
    soft_v, soft_a = probs

    loss_o = released_occ(net, emb_v, emb_a, soft_v, soft_a, label, idx, memory, j, top_i, seed,
                          lb, n_classes, t)

    epoch = (iteration + 1) // 150  # the release increments its counter first

    def ramp_weight(beta):
        return beta * math.exp(-5 * (1 - min(epoch, ramp) / ramp) ** 2)

    loss = lamda * loss_s + ramp_weight(beta_c) * loss_c + ramp_weight(beta_o) * loss_o
    return loss, {"L": loss, "L_s": loss_s, "l_c": loss_c, "l_o": loss_o}
