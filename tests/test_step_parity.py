"""Step parity: camlkit's default step (the `paper` preset's) is the released training iteration.

The oracle (``bench.release_step``, which the release-equivalent bench loop also runs) is one
iteration of the authors' training loop (github.com/Herschel555/CAML, ``code/train_caml.py`` with
``code/utils/feature_memory.py`` and ``code/utils/correlation.py``), written out in plain torch in
the release's order and with its quirks:

* the memory bank stores, per labeled case, the mean of g_v and g_a at the voxels both branches
  get right; f_v's decoder features are moved channels-last before the projection, f_a's are not
  (each g_a row is c consecutive z-positions of one channel);
* the projection and prediction heads (BatchNorm1d, train mode) run on every agreeing unlabeled
  voxel, then the top-i rows per class by f_v's confidence are kept;
* a memory class without prototypes is left out of the columns, an unlabeled class with fewer
  than 2 rows out of the rows;
* the ramp's epoch is (iteration + 1) // 150.

The oracle shares only the network's weights and blocks: it runs the V-Net blocks, the CMA
transformer layers and the four heads itself, in the release's order (``code/networks/VNet.py``),
so the wiring of camlkit's forward (skips, CMA's place and reshapes) is checked too; the bank, the
losses, the sampling and the ramp are its own.

Determinism: every dropout is off, and the bank is filled so that after this iteration's update
each class holds exactly j embeddings: the draw of j per class is then a permutation, and l_o does
not depend on the column order. Real LA crops, a tiny patch, the released network sizes.
"""

import copy

import pytest
import torch
from torch import nn

from bench.release_step import released_iteration  # bench/ is a package of the repository root (pytest's pythonpath)
from camlkit.caml import CAMLNet
from camlkit.data import case_path, read_case, read_list
from camlkit.occ import MemoryBank
from camlkit.step import CLEAN_VARIANT, StepConfig, caml_step

PATCH = (32, 32, 16)
STRIDE = 3  # subsample the cases so that a 32x32x16 crop holds the whole atrium and background
LABELED_BS = 2
TOP_I = 128  # fewer than the agreeing voxels per class: the top-i pick matters
ITERATION = 149  # released e = 150 // 150 = 1; with R = 1 both lambdas are at full weight
RAMP = 1
TOLERANCE = {"parts": 1e-5, "grad": 1e-4, "grad_all": 1e-4, "bank": 1e-5, "buffers": 1e-5}  # relative


# ----------------------------------------------------------------------------- the setting

def _crop(path, with_label):
    image, label = read_case(path)
    image, label = image[::STRIDE, ::STRIDE, ::STRIDE], label[::STRIDE, ::STRIDE, ::STRIDE]
    centre = [int(round(a.mean())) for a in label.nonzero()]
    window = []
    for centre_k, size, p in zip(centre, image.shape, PATCH):
        start = min(max(centre_k - p // 2, 0), size - p)
        window.append(slice(start, start + p))
    image, label = torch.from_numpy(image[tuple(window)].copy()), torch.from_numpy(label[tuple(window)].copy())
    return image, label.long() if with_label else torch.zeros_like(label).long()


@pytest.fixture(scope="module")
def batch(la_dir):
    cases = read_list(la_dir / "train.list")
    picks = [cases[0], cases[1], cases[40], cases[60]]  # 2 labeled, then 2 unlabeled
    crops = [_crop(case_path(la_dir, case), k < LABELED_BS) for k, case in enumerate(picks)]
    image = torch.stack([im for im, _ in crops])[:, None].float()  # (4, 1, 32, 32, 16)
    label = torch.stack([lab for _, lab in crops])  # (4, 32, 32, 16), unlabeled rows zero
    assert 0.05 < label[:LABELED_BS].float().mean() < 0.6  # both classes in the labeled crops
    return image, label


def _network(image):
    """The released CAML3d_v1 sizes, every dropout off, the output biases set so that each
    branch predicts both classes (an untrained net predicts one class almost everywhere)."""
    torch.manual_seed(0)
    net = CAMLNet()
    for module in net.modules():
        if isinstance(module, (nn.Dropout, nn.Dropout3d)):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0
    with torch.no_grad():
        probe = copy.deepcopy(net).train()
        for branch, out_branch in ((probe.f_v, net.f_v), (probe.f_a, net.f_a)):
            logits = branch(image)
            margin = (logits[:, 1] - logits[:, 0]).median()
            out_branch.decoder.out_conv.bias[1] -= margin
    return net


def _bank_filled_to_j(net, image, label, short_class):
    """Banks (camlkit's and the oracle's) of 3 slots whose classes hold exactly j embeddings once
    this iteration has replaced slots 0 and 1; with ``short_class`` class 1 stays below j.

    Slot 2 (a labeled case not in this batch) and the stale contents of slots 0 and 1 are real
    projections too: the eval-mode g_v/g_a mean of the unlabeled crops' voxels, so that the
    omni-correlation logits have the size they have in training.
    """
    with torch.no_grad():
        probe = copy.deepcopy(net).train()
        out = probe(image)
        truth = label[:LABELED_BS]
        right = ((out["logits_v"][:LABELED_BS].argmax(1) == truth)
                 & (out["logits_a"][:LABELED_BS].argmax(1) == truth))
        probe.eval()
        feats = [out[key][LABELED_BS:].permute(0, 2, 3, 4, 1).reshape(-1, net.config.n_filters)
                 for key in ("feat_v", "feat_a")]
        realistic = 0.5 * (probe.proj_v(feats[0]) + probe.proj_a(feats[1]))  # (n, c')
    counts = [int((truth[right] == cls).sum()) for cls in (0, 1)]
    j = max(counts) + 50
    fill = [j - counts[0], 0 if short_class else j - counts[1]]
    rows = torch.randperm(len(realistic), generator=torch.Generator().manual_seed(1))
    stale, z2 = realistic[rows[:30]], realistic[rows[30 : 30 + sum(fill)]]
    bank, memory = MemoryBank(num_slots=3, dim=net.config.proj_dim), [None] * 3
    for slot in (0, 1):
        stale_y = torch.arange(30) % 2
        bank.update(slot, stale, stale_y)
        memory[slot] = (stale, stale_y)
    y2 = torch.cat([torch.zeros(fill[0], dtype=torch.long), torch.ones(fill[1], dtype=torch.long)])
    bank.update(2, z2, y2)
    memory[2] = (z2, y2)
    return bank, memory, j


def released(batch, short_class):
    """The starting state (network, camlkit's bank, j) and the oracle's iteration from it:
    (net, bank, j, oracle_net after backward, its parts, its bank)."""
    image, label = batch
    net = _network(image)
    bank, memory, j = _bank_filled_to_j(net, image, label, short_class)
    oracle_net = copy.deepcopy(net).train()
    loss_o, parts_o = released_iteration(oracle_net, image, label, [0, 1], memory, j, TOP_I,
                                         ITERATION, RAMP, seed=0, labeled_bs=LABELED_BS)
    loss_o.backward()
    return net, bank, j, oracle_net, parts_o, memory


@pytest.fixture(scope="module")
def oracle(batch):
    """released(batch, short_class), computed once per case for the module."""
    cache = {}

    def get(short_class=False):
        if short_class not in cache:
            cache[short_class] = released(batch, short_class)
        return cache[short_class]

    return get


def run_both(batch, oracle, short_class=False, **options):
    """camlkit's step (``options`` on StepConfig) from the oracle's starting state, compared with
    the oracle: {name: max abs difference / scale} per compared quantity, and the raw maxima."""
    image, label = batch
    net, bank, j, oracle_net, parts_o, memory = oracle(short_class)
    bank = copy.deepcopy(bank)  # camlkit updates its bank in place; keep the start for the next run
    kit_net = copy.deepcopy(net).train()
    cfg = StepConfig(j=j, top_i=TOP_I, ramp_length=RAMP, **options)
    loss_k, parts_k = caml_step(kit_net, image, label, LABELED_BS, ITERATION, cfg, bank, slots=[0, 1])
    loss_k.backward()

    diffs, scales = {}, {}
    for key in ("L", "L_s", "l_c", "l_o"):
        diffs[key] = abs(float(parts_k[key]) - float(parts_o[key].detach()))
        scales[key] = abs(float(parts_o[key].detach()))
    # gradients: relative to each parameter's own gradient where that is not (up to rounding)
    # zero, and to the largest gradient of the network everywhere (a bias feeding a train-mode
    # BatchNorm has a zero gradient in exact arithmetic, rounding noise here)
    grads_o = {name: p.grad for name, p in oracle_net.named_parameters()}
    largest = max(float(g.abs().max()) for g in grads_o.values() if g is not None)
    grad_rel, grad_all = 0.0, 0.0
    for name, p in kit_net.named_parameters():
        g_k, g_o = p.grad, grads_o[name]
        assert (g_k is None) == (g_o is None), name
        if g_o is None:
            continue
        error, own = float((g_k - g_o).abs().max()), float(g_o.abs().max())
        grad_all = max(grad_all, error / largest)
        if own > 1e-3 * largest:
            grad_rel = max(grad_rel, error / own)
    bank_diff, bank_scale = 0.0, 0.0
    for slot in range(3):
        z_k, y_k = bank.slot(slot)
        z_o, y_o = memory[slot]
        order = torch.sort(y_o, stable=True).indices  # camlkit stores class 0 first, then 1
        assert torch.equal(y_k, y_o[order]), f"slot {slot}: stored classes differ"
        bank_diff = max(bank_diff, float((z_k - z_o[order]).abs().max()))
        bank_scale = max(bank_scale, float(z_o.abs().max()))
    buffers_o = dict(oracle_net.named_buffers())
    buffer_rel = max(float((b.float() - buffers_o[n].float()).abs().max()
                           / (buffers_o[n].float().abs().max() + 1e-12))
                     for n, b in kit_net.named_buffers())
    relative = {key: diffs[key] / max(scales[key], 1e-12) for key in diffs}
    return {"parts": max(relative.values()), **relative, "grad": grad_rel, "grad_all": grad_all,
            "bank": bank_diff / bank_scale, "buffers": buffer_rel, "abs": diffs,
            "l_o_value": float(parts_o["l_o"].detach()), "j": j}


def _within_tolerance(result):
    return {key: result[key] <= tol for key, tol in TOLERANCE.items()}


# ----------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("short_class", [False, True], ids=["both-classes", "class-1-short"])
def test_default_step_is_the_released_iteration(batch, oracle, short_class):
    result = run_both(batch, oracle, short_class)
    assert result["l_o_value"] > 0  # OCC took part (with class 1 short: class-0 columns only)
    assert all(_within_tolerance(result).values()), result


@pytest.mark.parametrize("option", [*CLEAN_VARIANT, "all"])
def test_each_clean_variant_fails_the_same_comparison(batch, oracle, option):
    options = CLEAN_VARIANT if option == "all" else {option: CLEAN_VARIANT[option]}
    result = run_both(batch, oracle, **options)
    worst = max(result[key] / tol for key, tol in TOLERANCE.items())
    assert worst > 100, result  # far outside the tolerance the release passes
