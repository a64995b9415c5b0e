"""camlkit.occ_device, piece by piece against camlkit.occ / camlkit.step (the released form)."""

import copy

import pytest
import torch

from camlkit import occ, occ_device
from camlkit.caml import CAMLNet, mlp_head
from camlkit.occ import MemoryBank
from camlkit.step import StepConfig, caml_step, occ_part


def _probs(n, generator):
    p_v = torch.softmax(torch.randn(n, 2, generator=generator) * 3, dim=1)
    p_a = torch.softmax(torch.randn(n, 2, generator=generator) * 3, dim=1)
    return p_v, p_a


def test_sample_unlabeled_picks_what_the_released_form_picks():
    g = torch.Generator().manual_seed(0)
    p_v, p_a = _probs(500, g)
    for top_i in (5, 40, 1000):
        index, cls = occ.sample_unlabeled(p_v, p_a, top_i)
        d_index, d_cls, real = occ_device.sample_unlabeled(p_v, p_a, top_i)
        assert d_index.shape == d_cls.shape == real.shape == (2 * min(top_i, 500),)
        for c in (0, 1):
            assert set(d_index[real & (d_cls == c)].tolist()) == set(index[cls == c].tolist())


def test_sample_unlabeled_masks_a_class_with_too_few_rows():
    p_v = torch.tensor([[0.9, 0.1]] * 5 + [[0.2, 0.8]])  # class 1: one agreeing voxel
    index, cls, real = occ_device.sample_unlabeled(p_v, p_v.clone(), top_i=3)
    assert real[cls == 0].all() and not real[cls == 1].any()
    assert occ.sample_unlabeled(p_v, p_v.clone(), 3)[1].tolist() == [0, 0, 0]


def test_bank_draws_kept_voxels_of_the_class_without_replacement():
    bank = occ_device.DeviceBank(num_slots=3, dim=4)
    z = torch.arange(3 * 50 * 4, dtype=torch.float32).reshape(3, 50, 4)
    y = torch.tensor([0, 1, -1, 0, 0] * 10)  # 30 of class 0, 10 of class 1, 10 not kept per slot
    for slot in range(3):
        bank.update(slot, z[slot], y)
    z_p, y_p, valid = bank.sample(20)
    assert y_p.tolist() == [0] * 20 + [1] * 20
    assert valid.tolist() == [True] * 40  # 90 of class 0, 30 of class 1 pooled
    stored = {tuple(row.tolist()): int(c) for row, c in zip(z.flatten(0, 1), y.repeat(3))}
    rows = [tuple(row.tolist()) for row in z_p]
    assert len(set(rows)) == 40  # without replacement
    assert all(stored[r] == c for r, c in zip(rows, y_p.tolist()))
    assert bank.sample(31)[2].tolist() == [True] * 31 + [False] * 31  # class 1 holds 30
    assert bank.class_counts().tolist() == [90, 30]


def test_masked_heads_equal_the_head_on_the_masked_rows():
    torch.manual_seed(0)
    head = mlp_head(8, 6).train()
    x, mask = torch.randn(40, 8), torch.rand(40) < 0.6
    plain, masked = copy.deepcopy(head), copy.deepcopy(head)
    expected = plain(x[mask])
    got = occ_device.masked_heads(masked, x, mask)[mask]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(masked[1].running_mean, plain[1].running_mean)
    torch.testing.assert_close(masked[1].running_var, plain[1].running_var)
    none = copy.deepcopy(head)
    occ_device.masked_heads(none, x, torch.zeros(40, dtype=torch.bool))  # nothing to learn from
    torch.testing.assert_close(none[1].running_mean, head[1].running_mean)


@pytest.mark.parametrize("occ_log", ["eps", "log_softmax"])
def test_masked_occ_loss_is_eq3_on_the_real_rows_and_columns(occ_log):
    torch.manual_seed(1)
    logits_v, logits_a = torch.randn(12, 9) * 4, torch.randn(12, 9) * 4
    rows, cols = torch.rand(12) < 0.7, torch.tensor([True] * 6 + [False] * 3)
    sub_v, sub_a = logits_v[rows][:, cols], logits_a[rows][:, cols]
    log_v = torch.log_softmax(sub_v, dim=1) if occ_log == "log_softmax" else None
    expected = occ.occ_loss(torch.softmax(sub_v, 1), torch.softmax(sub_a, 1), log_v)
    torch.testing.assert_close(occ_device.occ_loss(logits_v, logits_a, rows, cols, occ_log), expected)
    nothing = occ_device.occ_loss(logits_v, logits_a, rows, torch.zeros(9, dtype=torch.bool), occ_log)
    assert float(nothing) == 0.0


def _exact_banks(j, dim, generator):
    """The released bank and the device bank holding the same j embeddings of each class."""
    z = torch.randn(2 * j, dim, generator=generator)
    y = torch.tensor([0] * j + [1] * j)
    released, device = MemoryBank(1, dim), occ_device.DeviceBank(1, dim)
    released.update(0, z, y)
    device.update(0, torch.cat([z, torch.randn(5, dim, generator=generator)]),
                  torch.cat([y, torch.full((5,), -1)]))  # 5 voxels not kept
    return released, device


@pytest.mark.parametrize("heads_on", ["agreeing", "picked"])
def test_occ_term_equals_the_released_l_o_when_the_draw_is_the_same(heads_on):
    g = torch.Generator().manual_seed(2)
    net = CAMLNet(n_filters=4, proj_dim=8).train()
    cfg = StepConfig(j=6, top_i=10_000, heads_on=heads_on)
    feat = {k: torch.randn(2, 4, 4, 4, 2, generator=g) for k in ("feat_v", "feat_a")}
    p_v, p_a = (torch.softmax(torch.randn(2, 2, 4, 4, 2, generator=g) * 3, 1) for _ in range(2))
    released, device = _exact_banks(cfg.j, 8, g)
    net_r, net_d = copy.deepcopy(net), copy.deepcopy(net)
    expected = occ_part(net_r, released, feat, p_v, p_a, 1, cfg)["l_o"]
    rows = lambda t: t[1:].movedim(1, -1).flatten(0, -2)  # noqa: E731  the unlabeled voxels
    got = occ_device.occ_term(net_d, device, rows(feat["feat_v"]), rows(feat["feat_a"]),
                              rows(p_v), rows(p_a), cfg)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(net_d.proj_v[1].running_mean, net_r.proj_v[1].running_mean)


def test_a_step_with_the_device_bank_trains():
    torch.manual_seed(3)
    net = CAMLNet(n_filters=2, proj_dim=8).train()
    cfg = StepConfig(j=8, top_i=64, ramp_length=1, iterations_per_epoch=2)
    image, label = torch.randn(4, 1, 16, 16, 16), (torch.rand(4, 16, 16, 16) < 0.3).long()
    bank, released = occ_device.DeviceBank(4, 8), MemoryBank(4, 8)
    z, y = torch.randn(16 * 16 * 16, 8), (torch.rand(16 * 16 * 16) < 0.3).long()
    for slot in (2, 3):  # slots 2 and 3 were filled by earlier steps
        bank.update(slot, z, y)
        released.update(slot, z, y)
    same = copy.deepcopy(net)
    torch.manual_seed(4)  # the same dropout masks on both sides
    loss, parts = caml_step(net, image, label, 2, 5, cfg, bank, [0, 1])
    torch.manual_seed(4)
    _, ref = caml_step(same, image, label, 2, 5, cfg, released, [0, 1])
    assert torch.isfinite(loss) and float(parts["l_o"]) > 0 and float(ref["l_o"]) > 0
    assert float(parts["L_s"]) == float(ref["L_s"]) and float(parts["l_c"]) == float(ref["l_c"])
    loss.backward()
    assert net.pred_v[0].weight.grad.abs().sum() > 0  # l_o reaches the heads
    assert bank.labels.shape == (4, 16 * 16 * 16) and (bank.labels[:2] == -1).any()


def test_bank_state_round_trips_as_a_checkpoint_stores_it():
    bank = occ_device.DeviceBank(2, 3)
    assert bank.state_dict() == {} and bank.sample(1) is None  # empty until the first update
    bank.update(1, torch.randn(7, 3), torch.tensor([0, 1, -1, 0, 1, 1, -1]))
    again = occ_device.DeviceBank(2, 3)
    again.load_state_dict(bank.state_dict(), torch.device("cpu"))
    assert torch.equal(again.feats, bank.feats) and torch.equal(again.labels, bank.labels)
    assert again.labels[0].tolist() == [-1] * 7  # slot 0 not filled yet
