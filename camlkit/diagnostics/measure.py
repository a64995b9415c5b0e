"""CMA's and OCC's structure figures measured on a network, computed as training computes them.

:func:`network_attention` reads CMA's weights of a CAMLNet on a batch; :func:`network_occ` runs one
training step's OCC part (camlkit.step.occ_part) on crops. Both return the rows or weights with
their figures (camlkit.diagnostics.structure), which notebooks 4 and 5 print and draw.
"""

import copy
import dataclasses

import torch

from camlkit import occ, step
from camlkit.diagnostics.sentences import occ_row_classes
from camlkit.diagnostics.structure import attention_figures, occ_figures, token_atrium


def network_attention(net, image, label) -> dict:
    """CMA's weights of a CAMLNet on a batch and their figures.

    ``image`` (b, 1, h, w, d) and ``label`` (b, h, w, d) as the network was trained
    (camlkit.runtime.trained.matched_crops). Returns ``{"intra", "inter", "atrium" (b, k), "grid",
    "figures"}``; the weights come from CAMLNet.attention (eval mode, CMA forced on).
    """
    grid = tuple(s // 8 for s in image.shape[2:])  # stage 4 is at 1/8 resolution
    attn = net.attention(image)
    atrium = token_atrium(label, grid)
    return {**attn, "atrium": atrium, "grid": grid,
            "figures": attention_figures(attn["intra"], atrium, attn["inter"])}


@torch.no_grad()
def network_occ(net, labeled, unlabeled, step_cfg, seed=0, select=None, draws=1) -> dict:
    """Omni-correlation rows of a CAMLNet on crops, computed by the training step's own code.

    ``labeled``: ``{"image" (b_l, 1, h, w, d), "label" (b_l, h, w, d)}``, ``unlabeled``: images
    (b_u, 1, h, w, d), prepared as the network was trained (camlkit.runtime.trained.matched_crops);
    ``step_cfg``: the run's camlkit.step.StepConfig (camlkit.runtime.trained.TrainedSettings.step). As one
    training step: one forward of the batch (labeled first) in training mode, on a copy so the
    network's running statistics stay as they were (``seed`` seeds its dropout); a fresh memory
    bank with one slot per labeled crop filled by camlkit.step.update_memory; then
    camlkit.step.occ_part — the draw of j prototypes per class, the top-i unlabeled voxels, the
    heads, the rows and l_o, with every option of ``step_cfg`` (heads_on, bank_fa_rows,
    similarity, occ_temperature, occ_log). The one change: a bank filled from a few crops can
    hold fewer than the run's j embeddings of a class, which would leave that class out of the
    columns, so j is capped at the smallest class count (``dataclasses.replace(step_cfg, j=...)``).

    ``select``: another CAMLNet whose predictions choose the voxels and their classes (bank
    contents and unlabeled rows) while ``net`` gives the embeddings — e.g. a random network's
    embeddings at the voxels a trained one picks (a random network predicts one class only).

    ``draws``: how many draws of prototypes from the same bank; draw k is seeded ``seed + k``
    (torch.manual_seed just before it). The picked voxels and their embeddings hold no
    randomness, so the draws after the first reuse them and only draw new prototypes
    (camlkit.step.occ_rows): the heads run once, not once per draw.

    Returns the first draw's ``{"sim_vp", "sim_ap" (m, n), "row_class", "row_conf" (m,),
    "col_class" (n,), "z_v", "z_a" (m, c'), "z_p" (n, c'), "bank", "j", "l_o", "figures"}``
    (figures of sim_vp) and ``"draws"``: ``[{"seed", "l_o", "figures", "by_class"}]`` of every
    draw (``by_class``: camlkit.diagnostics.sentences.occ_row_classes).
    ValueError when a class has no stored prototype or no unlabeled voxel is picked.
    """
    n_l = len(labeled["image"])
    image = torch.cat([labeled["image"], unlabeled])  # (b_l + b_u, 1, h, w, d)
    net = copy.deepcopy(net).train()
    torch.manual_seed(seed)  # dropout masks
    out = net(image)
    chooser = out
    if select is not None:
        torch.manual_seed(seed)
        chooser = copy.deepcopy(select).train()(image)
    p_v = torch.softmax(chooser["logits_v"].float(), dim=1)  # (b, C, h, w, d), as caml_step
    p_a = torch.softmax(chooser["logits_a"].float(), dim=1)
    bank = occ.MemoryBank(n_l, net.config.proj_dim)
    step.update_memory(net, bank, out, p_v[:n_l], p_a[:n_l], labeled["label"], range(n_l),
                       step_cfg.bank_fa_rows)
    cfg = dataclasses.replace(step_cfg, j=min(step_cfg.j, int(bank.class_counts().min())))
    if cfg.j < occ.MIN_PROTOTYPES:
        raise ValueError(f"the memory bank holds {bank.class_counts().tolist()} embeddings per "
                         "class: no prototype of some class (an untrained network?)")
    result = {"bank": bank, "j": cfg.j, "draws": []}
    for k in range(draws):
        torch.manual_seed(seed + k)  # the draw of prototypes
        if k == 0:
            part = first = step.occ_part(net, bank, out, p_v, p_a, n_l, cfg)
            if part is None:
                raise ValueError("no confident unlabeled voxel: the branches never agree on 2 "
                                 "voxels of a class")
        else:  # the same picked voxels and embeddings (no randomness there), new prototypes
            part = {**first, **step.occ_rows(first["z_v"], first["z_a"], *bank.sample(cfg.j), cfg)}
        figures = occ_figures(part["sim_vp"], part["row_class"], part["col_class"])
        by_class = occ_row_classes(part["sim_vp"], part["row_class"], part["col_class"])
        result["draws"].append({"seed": seed + k, "l_o": float(part["l_o"]), "figures": figures,
                                "by_class": by_class})
        if k == 0:
            conf = step.voxels(p_v[n_l:])[part["index"]].max(1).values  # f_v's confidence
            result.update({key: part[key] for key in ("sim_vp", "sim_ap", "row_class",
                                                       "col_class", "z_v", "z_a", "z_p")},
                          row_conf=conf, l_o=float(part["l_o"]), figures=figures)
    return result
