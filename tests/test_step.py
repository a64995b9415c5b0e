import math

import pytest
import torch

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.occ import MemoryBank
from camlkit.step import CLEAN_VARIANT, StepConfig, bank_rows_a, caml_step, unlabeled_embeddings

SIZE = (32, 32, 16)


def _setup(use_cma=True, seed=0):
    torch.manual_seed(seed)
    net = CAMLNet(n_filters=4, proj_dim=8, cma_heads=2, cma_feedforward=16, use_cma=use_cma)
    x = torch.randn(4, 1, *SIZE)
    y = torch.zeros(4, *SIZE, dtype=torch.long)
    y[:, 8:24, 8:24, 4:12] = 1
    return net, x, y, MemoryBank(num_slots=3, dim=8)


def test_total_loss_is_eq1_and_reaches_every_parameter():
    net, x, y, bank = _setup(seed=4)  # a seed whose untrained branches agree on both classes
    cfg = StepConfig(j=4, top_i=32, ramp_length=40)
    iteration = 150 * 20  # half of the ramp
    # first call fills the memory bank, the second one can use it
    caml_step(net, x, y, 2, iteration, cfg, bank, slots=[0, 2])
    net.zero_grad()
    loss, parts = caml_step(net, x, y, 2, iteration, cfg, bank, slots=[0, 2])
    assert parts["l_o"].item() > 0 and parts["l_c"].item() > 0
    assert math.isclose(parts["lambda_c"], math.exp(-1.25))
    assert math.isclose(parts["lambda_o"], 0.05 * math.exp(-1.25))
    expected = (0.5 * parts["L_s"] + parts["lambda_c"] * parts["l_c"]
                + parts["lambda_o"] * parts["l_o"])
    assert torch.allclose(loss, expected)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []
    assert bank.counts[1].sum() == 0 and bank.counts[0].sum() > 0  # slots 0 and 2 written


def test_occ_is_skipped_until_the_bank_holds_j_per_class():
    net, x, y, bank = _setup()
    _, parts = caml_step(net, x, y, 2, 0, StepConfig(j=10**9), bank, slots=[0, 1])
    assert parts["l_o"].item() == 0.0


def test_supervised_only_trains_f_v_on_labeled_data_alone():
    net, x, y, _ = _setup()
    loss, parts = caml_step(net, x, y, 2, 0, StepConfig(supervised_only=True, use_occ=False))
    loss.backward()
    assert parts["l_c"].item() == 0 and parts["l_o"].item() == 0
    assert all(p.grad is None for p in net.f_a.parameters())
    assert all(p.grad is not None for p in net.f_v.parameters())
    x2 = x.clone()
    x2[2:] = 0  # unlabeled samples are not read
    assert torch.equal(caml_step(net.eval(), x2, y, 2, 0, StepConfig(supervised_only=True))[0],
                       caml_step(net, x, y, 2, 0, StepConfig(supervised_only=True))[0])


def test_warmup_trains_both_branches_on_labeled_data_and_delays_the_ramps():
    net, x, y, bank = _setup(seed=4)
    cfg = StepConfig(j=4, top_i=32, ramp_length=40, warmup=100)
    net.eval()  # no dropout: the two calls below must see the same network
    x2 = x.clone()
    x2[2:] = 0  # unlabeled samples are not read during the warm-up
    loss, parts = caml_step(net, x, y, 2, 99, cfg, bank, slots=[0, 1])
    assert torch.equal(loss, caml_step(net, x2, y, 2, 99, cfg, bank, slots=[0, 1])[0])
    assert parts["lambda_c"] == parts["lambda_o"] == 0.0 and torch.equal(loss, 0.5 * parts["L_s"])
    assert bank.counts.sum() == 0  # the bank is not written either
    net.train()  # CMA (part of f_a's encoder) runs in training mode only
    net.zero_grad()
    caml_step(net, x, y, 2, 99, cfg, bank, slots=[0, 1])[0].backward()
    assert all(p.grad is not None for p in net.f_v.parameters())
    assert all(p.grad is not None for p in net.f_a.parameters())
    assert all(p.grad is None for p in net.proj_v.parameters())
    # the first step after the warm-up is iteration 0 of the ramps: lambda = beta * exp(-5)
    _, parts = caml_step(net, x, y, 2, 100, cfg, bank, slots=[0, 1])
    assert math.isclose(parts["lambda_c"], math.exp(-5))
    assert bank.counts.sum() > 0


def test_mcnet_baseline_has_no_occ_and_no_cma():
    net, x, y, _ = _setup(use_cma=False)
    loss, parts = caml_step(net, x, y, 2, 0, StepConfig(use_occ=False))
    loss.backward()
    assert parts["l_o"].item() == 0 and parts["l_c"].item() > 0
    assert all(p.grad is None for p in net.proj_v.parameters())


def test_occ_needs_its_bank():
    net, x, y, _ = _setup()
    with pytest.raises(ValueError, match="memory bank"):
        caml_step(net, x, y, 2, 0, StepConfig())


def test_ramp_counts_like_the_release_unless_asked_not_to():
    net, x, y, bank = _setup()
    # iteration 149 (0-based) is the release's 150th: its epoch is already 1
    _, released = caml_step(net, x, y, 2, 149, StepConfig(ramp_length=1), bank, slots=[0, 1])
    _, clean = caml_step(net, x, y, 2, 149, StepConfig(ramp_length=1, ramp_offset=0), bank,
                         slots=[0, 1])
    assert released["lambda_c"] == 1.0 and math.isclose(released["lambda_o"], 0.05)
    assert math.isclose(clean["lambda_c"], math.exp(-5))


def test_bank_rows_of_f_a_as_released_and_per_voxel():
    feat = torch.arange(3 * 2 * 2 * 3.0).view(3, 2, 2, 3)  # (c=3, h=2, w=2, d=3)
    per_voxel = bank_rows_a(feat, "per_voxel")
    assert per_voxel.shape == (12, 3) and torch.equal(per_voxel[1], feat[:, 0, 0, 1])
    scrambled = bank_rows_a(feat, "scrambled")  # c consecutive z-positions of one channel
    assert scrambled.shape == (12, 3) and torch.equal(scrambled[0], feat[0, 0, 0, :])
    assert torch.equal(scrambled[1], feat[0, 0, 1, :])
    channels_last = feat[None].to(memory_format=torch.channels_last_3d)[0]
    assert torch.equal(bank_rows_a(channels_last, "scrambled"), scrambled)  # logical order


def test_occ_counts_the_classes_that_have_prototypes():
    net, x, y, bank = _setup(seed=4)
    bank.update(2, torch.randn(40, 8), torch.zeros(40, dtype=torch.long))  # class 0 only
    cfg = StepConfig(j=30, top_i=32)
    y[:2] = 0  # the labeled crops hold background only: the bank gets no class-1 embedding
    _, parts = caml_step(net, x, y, 2, 0, cfg, bank, slots=[0, 1])
    assert bank.class_counts()[1] == 0 and parts["l_o"].item() > 0  # class-0 columns alone


def test_step_options_are_checked():
    with pytest.raises(ValueError, match="bank_fa_rows"):
        StepConfig(bank_fa_rows="voxel")
    with pytest.raises(ValueError, match="heads_on"):
        StepConfig(heads_on="all")
    assert StepConfig(**CLEAN_VARIANT).heads_on == "picked"


@pytest.mark.parametrize("heads_on", ["agreeing", "picked"])
def test_unlabeled_embeddings_read_the_unlabeled_rows_of_the_whole_batch(heads_on):
    """Given the batch's rows and ``first``, the heads see the same rows as given the unlabeled
    half's alone: the same z, the same gradient there, none at the labeled rows."""
    torch.manual_seed(0)
    net = CAMLNet(CAMLConfig(n_filters=2, proj_dim=4)).train()
    feat = torch.randn(10, 2, requires_grad=True)  # 4 labeled rows, then 6 unlabeled
    prob_v = torch.tensor([[.9, .1], [.2, .8], [.7, .3], [.4, .6], [.6, .4], [.1, .9]])
    prob_a = torch.tensor([[.8, .2], [.3, .7], [.2, .8], [.1, .9], [.9, .1], [.3, .7]])  # voxel 2 disagrees
    index = torch.tensor([0, 4, 5])
    z_whole = unlabeled_embeddings(net, feat, feat, prob_v, prob_a, index, heads_on, first=4)
    (grad_whole,) = torch.autograd.grad(sum(z.pow(2).sum() for z in z_whole), feat)
    z_half = unlabeled_embeddings(net, feat[4:], feat[4:], prob_v, prob_a, index, heads_on)
    (grad_half,) = torch.autograd.grad(sum(z.pow(2).sum() for z in z_half), feat)
    assert all(torch.equal(a, b) for a, b in zip(z_whole, z_half))
    assert torch.equal(grad_whole, grad_half)
    assert not grad_whole[:4].any() and grad_whole[4:].abs().sum(1).gt(0).sum() >= 3
