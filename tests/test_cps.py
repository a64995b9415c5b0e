import math

import torch

from camlkit.cps import cps_loss, sharpen


def test_sharpen_fixed_point_and_push_towards_one():
    assert sharpen(torch.tensor(0.5)).item() == 0.5
    expected = 0.9**10 / (0.9**10 + 0.1**10)
    assert math.isclose(sharpen(torch.tensor(0.9), T=0.1).item(), expected, rel_tol=1e-6)
    assert math.isclose(sharpen(torch.tensor(0.6), T=0.5).item(), 0.36 / 0.52, rel_tol=1e-6)
    assert sharpen(torch.tensor(0.1)).item() < 1e-8


def test_cps_loss_on_a_hand_checked_pair():
    p_v = torch.tensor([[0.9, 0.1]])
    p_a = torch.tensor([[0.6, 0.4]])
    s_a = [0.36 / 0.52, 0.16 / 0.52]  # sharpen(p_a, T=0.5)
    s_v = [0.81 / 0.82, 0.01 / 0.82]
    mse_v = ((0.9 - s_a[0]) ** 2 + (0.1 - s_a[1]) ** 2) / 2
    mse_a = ((0.6 - s_v[0]) ** 2 + (0.4 - s_v[1]) ** 2) / 2
    assert math.isclose(cps_loss(p_v, p_a, T=0.5).item(), mse_v + mse_a, rel_tol=1e-5)


def test_gradient_flows_through_targets_unless_detached():
    p_v = torch.tensor([[0.7, 0.3]], requires_grad=True)
    p_a = torch.tensor([[0.4, 0.6]])
    cps_loss(p_v, p_a, T=0.5).backward()
    through_both = p_v.grad.clone()
    p_v.grad = None
    cps_loss(p_v, p_a, T=0.5, detach_targets=True).backward()
    only_prediction = p_v.grad.clone()
    assert not torch.allclose(through_both, only_prediction)
    # detached: d/dp_v MSE(p_v, s(p_a)) = 2 (p_v - s(p_a)) / 2
    s_a = sharpen(p_a, 0.5)
    assert torch.allclose(only_prediction, (p_v - s_a).detach(), atol=1e-6)
