import math

import torch

from camlkit.losses import dice_loss
from camlkit.ramps import loss_weight, ramp_length, sigmoid_rampup


def test_dice_loss_by_hand():
    p = torch.tensor([1.0, 0.0, 0.5])
    y = torch.tensor([1, 0, 1])
    assert math.isclose(dice_loss(p, y).item(), 1 - 3.0 / 3.5, rel_tol=1e-6)
    assert dice_loss(y.float(), y).item() < 1e-7


def test_dice_loss_of_empty_prediction_and_label_is_zero():
    assert dice_loss(torch.zeros(4), torch.zeros(4)).item() == 0.0


def test_ramp_values_at_start_half_and_after():
    assert math.isclose(sigmoid_rampup(0, 40), math.exp(-5))
    assert math.isclose(sigmoid_rampup(20, 40), math.exp(-1.25))
    assert sigmoid_rampup(40, 40) == 1.0 and sigmoid_rampup(100, 40) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0


def test_loss_weight_uses_epochs_of_150_iterations():
    assert math.isclose(loss_weight(149, 0.05, 40), 0.05 * math.exp(-5))
    assert math.isclose(loss_weight(150 * 20, 0.05, 40), 0.05 * math.exp(-1.25))
    assert math.isclose(loss_weight(150 * 20 + 149, 1.0, 40), math.exp(-1.25))
    assert loss_weight(15000, 1.0, 15) == 1.0


def test_ramp_lengths_by_labeled_count():
    assert [ramp_length(n) for n in (4, 8, 16)] == [40, 20, 15]
