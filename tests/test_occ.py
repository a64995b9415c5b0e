import math

import pytest
import torch

from camlkit.occ import MemoryBank, occ_loss, omni_correlation, sample_unlabeled


def _bank_with(counts_by_slot, dim=3):
    """A bank whose every embedding says where it came from: (slot, class, serial)."""
    bank = MemoryBank(num_slots=len(counts_by_slot), dim=dim)
    for slot, counts in enumerate(counts_by_slot):
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
        z = torch.stack([torch.full_like(y, slot), y, torch.arange(len(y))], 1).float()
        perm = torch.randperm(len(y))  # arrive unordered; the bank groups them
        bank.update(slot, z[perm], y[perm])
    return bank


def test_update_replaces_the_slot():
    bank = MemoryBank(num_slots=2, dim=2)
    bank.update(0, torch.ones(5, 2), torch.tensor([0, 1, 1, 0, 1]))
    bank.update(1, torch.full((2, 2), 7.0), torch.tensor([1, 1]))
    bank.update(0, torch.full((3, 2), 3.0), torch.tensor([1, 0, 0]))
    assert bank.counts.tolist() == [[2, 1], [0, 2]]
    assert torch.equal(bank.feats[0, :3], torch.full((3, 2), 3.0))
    assert torch.equal(bank.feats[1, :2], torch.full((2, 2), 7.0))
    assert bank.class_counts().tolist() == [2, 3]


def test_draw_sizes_classes_and_distinct_entries():
    torch.manual_seed(0)
    bank = _bank_with([(10, 4), (3, 9), (50, 2)])
    z_p, y_p = bank.sample(j=6)
    assert z_p.shape == (12, 3)
    assert y_p.tolist() == [0] * 6 + [1] * 6
    assert torch.equal(z_p[:, 1].long(), y_p)  # each drawn embedding is of its class
    assert len({tuple(row.tolist()) for row in z_p}) == 12  # without replacement


def test_a_class_with_fewer_than_j_embeddings_has_no_prototypes():
    bank = _bank_with([(10, 2), (10, 3)])
    z_p, y_p = bank.sample(j=6)  # class 1 holds only 5: class 0's prototypes alone, as released
    assert y_p.tolist() == [0] * 6 and torch.equal(z_p[:, 1], torch.zeros(6))
    assert bank.sample(j=5)[1].tolist() == [0] * 5 + [1] * 5
    assert bank.sample(j=21) is None  # no class holds 21
    assert MemoryBank(2, 3).sample(j=1) is None  # empty bank


def test_slot_returns_what_was_stored_grouped_by_class():
    bank = MemoryBank(num_slots=2, dim=2)
    z = torch.arange(10.0).view(5, 2)
    bank.update(1, z, torch.tensor([1, 0, 1, 0, 0]))
    z_1, y_1 = bank.slot(1)
    assert y_1.tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(z_1, z[[1, 3, 4, 0, 2]])
    assert len(bank.slot(0)[0]) == 0


def test_draw_is_uniform_over_pooled_slots():
    torch.manual_seed(0)
    bank = _bank_with([(100, 100), (300, 100)])
    from_slot_1 = sum((bank.sample(j=40)[0][:40, 0] == 1).sum().item() for _ in range(200))
    assert abs(from_slot_1 / (200 * 40) - 0.75) < 0.03


def test_bank_state_round_trip():
    bank = _bank_with([(4, 2), (1, 5)])
    other = MemoryBank(2, 3)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.counts, bank.counts)
    assert torch.equal(other.feats[:, :6], bank.feats[:, :6])


def test_unlabeled_sampling_agreement_and_top_i_by_confidence():
    prob_v = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05],
                           [0.3, 0.7], [0.45, 0.55], [0.7, 0.3]])
    prob_a = torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.1, 0.9], [0.4, 0.6],
                           [0.4, 0.6], [0.2, 0.8], [0.9, 0.1]])
    index, cls = sample_unlabeled(prob_v, prob_a, top_i=2)
    # voxel 3 disagrees; class 0 agreed: 0 (0.9), 1 (0.6), 6 (0.7); class 1: 2 (0.8), 4, 5
    assert index.tolist() == [0, 6, 2, 4]
    assert cls.tolist() == [0, 0, 1, 1]


def test_unlabeled_sampling_leaves_out_a_class_with_fewer_than_2_voxels():
    prob = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    index, cls = sample_unlabeled(prob, prob, top_i=5)  # class 1 has one voxel: no rows
    assert index.tolist() == [0, 1] and cls.tolist() == [0, 0]
    assert sample_unlabeled(prob[:1], prob[:1], top_i=5) is None  # no class has 2


def test_omni_correlation_rows_are_softmax_over_memory():
    torch.manual_seed(0)
    sim = omni_correlation(torch.randn(7, 4), torch.randn(5, 4))
    assert sim.shape == (7, 5)
    assert torch.allclose(sim.sum(1), torch.ones(7))
    z, z_p = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = 1 / (1 + math.exp(-10))  # logits (1, 0) / 0.1
    assert math.isclose(omni_correlation(z, z_p)[0, 0].item(), expected, rel_tol=1e-6)


def test_dot_product_depends_on_norm_but_cosine_does_not():
    z, z_p = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    dot, dot2 = omni_correlation(z, z_p), omni_correlation(3 * z, z_p)
    cos, cos2 = (omni_correlation(z, z_p, similarity="cosine"),
                 omni_correlation(3 * z, z_p, similarity="cosine"))
    assert not torch.allclose(dot, dot2)
    assert torch.allclose(cos, cos2) and torch.allclose(cos, torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError):
        omni_correlation(z, z_p, similarity="l2")


def test_occ_loss_hand_computed_2x2():
    sim_v = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    sim_a = torch.tensor([[1.0, 0.0], [0.2, 0.8]])
    row1 = -math.log(0.5 + 1e-8)
    row2 = -(0.2 * math.log(0.9 + 1e-8) + 0.8 * math.log(0.1 + 1e-8))
    assert math.isclose(occ_loss(sim_v, sim_a).item(), (row1 + row2) / 2, rel_tol=1e-6)


def test_occ_loss_gradient_reaches_both_branches():
    sim_v = torch.tensor([[0.3, 0.7]], requires_grad=True)
    sim_a = torch.tensor([[0.6, 0.4]], requires_grad=True)
    occ_loss(sim_v, sim_a).backward()
    assert sim_v.grad.abs().sum() > 0 and sim_a.grad.abs().sum() > 0
